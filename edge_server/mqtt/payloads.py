"""What edge-server publishes: results, Home Assistant events and problems, as JSON bytes."""

from __future__ import annotations

import json
from typing import Any

from ..core.errors import title_of
from ..serving.schemas import ClassifyResponse, DetectResponse, Problem, SegmentResponse

EVENT_TYPE = "classified"
DETECTED = "detected"
SEGMENTED = "segmented"
Answer = ClassifyResponse | DetectResponse | SegmentResponse


def dumps(document: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def result(answer: Answer, topic: str, **extra: Any) -> bytes:
    """The `/classify`, `/detect` or `/segment` answer plus the topic the image came from (and
    any extra facts)."""
    return dumps({**answer.model_dump(exclude_none=True), "topic": topic, **extra})


def event(answer: Answer, topic: str) -> bytes:
    """A Home Assistant `event` entity payload: the event type and the top prediction, the
    objects found and how many of each label, or the share of the frame each class covers."""
    if isinstance(answer, SegmentResponse):
        return dumps(
            {
                "event_type": SEGMENTED,
                "fractions": {c.label: c.fraction for c in answer.classes},
                "model": answer.model.name,
                "topic": topic,
            }
        )
    if isinstance(answer, DetectResponse):
        counts: dict[str, int] = {}
        for d in answer.detections:
            counts[d.label] = counts.get(d.label, 0) + 1
        return dumps(
            {
                "event_type": DETECTED,
                "count": len(answer.detections),
                "labels": counts,
                "model": answer.model.name,
                "topic": topic,
            }
        )
    top = answer.predictions[0] if answer.predictions else None
    return dumps(
        {
            "event_type": EVENT_TYPE,
            "label": top.label if top else None,
            "score": top.score if top else None,
            "model": answer.model.name,
            "topic": topic,
        }
    )


def problem(status: int, detail: str, topic: str) -> bytes:
    """RFC 9457 problem details, as the HTTP API answers them; `instance` is the source topic."""
    body = Problem(title=title_of(status), status=status, detail=detail, instance=topic)
    return dumps(body.model_dump(exclude_none=True))
