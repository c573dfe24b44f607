"""Which people a camera names by their faces, and when it tries.

A camera's `faces` option (`[cameras.NAME] faces = true|false`) is on by default whenever the
face service is, because it costs little: only confirmed `person` objects are looked at (never
a frame with no person, never an object still below the threshold), only while anybody is
registered, and each object at most once a second and at most FACE_TRIES times in all; once
named it gets NAMED_TRIES more looks for a surer view, then none. A try is one or two
BlazeFace invokes (the frame, then the person's box if the frame showed no face in it) and one
dlib description per face found, on the same owners, core budget and dlib workers as the
face routes; the watcher runs it beside its analysis, one at a time, so a slow description
spaces the tries and never holds the camera's frames.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from ..config.cameras import CameraConfig
from ..serving.service import Service

PERSON = "person"  # the label whose objects are named by their faces
FACE_INTERVAL = 1.0  # seconds between two tries on one object
FACE_TRIES = 10  # tries on one object in all
NAMED_TRIES = 3  # more tries once an object is named, for a surer recognition


def faces_on(config: CameraConfig, service: Service) -> bool:
    """Whether the camera names people: its `faces` option, else whether faces are served
    (`faces = true` without the face service is off)."""
    return config.faces is not False and service.faces is not None


@dataclass
class _Tries:
    count: int = 0
    named: int = 0  # tries since the object was first named
    at: float = -math.inf


class FaceTries:
    """When each object of one camera is due a face try (keyed by event id, in frame time)."""

    def __init__(self) -> None:
        self._tries: dict[str, _Tries] = {}

    def due(self, object_id: str, now: float, *, named: bool) -> bool:
        """Whether the object may be tried on the frame of time `now`."""
        tries = self._tries.get(object_id)
        if tries is None:
            return True
        if tries.count >= FACE_TRIES or (named and tries.named >= NAMED_TRIES):
            return False
        return now - tries.at >= FACE_INTERVAL

    def tried(self, object_id: str, now: float, *, named: bool) -> None:
        """One try made on the object (`named`: it had a name before this try)."""
        tries = self._tries.setdefault(object_id, _Tries())
        tries.count += 1
        tries.named += 1 if named else 0
        tries.at = now

    def keep(self, alive: Collection[str]) -> None:
        """Forget the objects no longer alive."""
        for gone in [i for i in self._tries if i not in alive]:
            del self._tries[gone]
