"""Objects followed across a camera's frames: a small IoU tracker.

Each frame's detections are matched to the objects already tracked, label by label, greedily
by box overlap (intersection over union, best pair first): at a few frames a second a walking
person's box overlaps its last one far more than any other object's, which is all a Hungarian
assignment would add here (and `norfair`, the library Frigate uses, pins numpy < 2). A
detection that matches nothing starts a track; a track not seen for `max_disappeared` frames in
which its place was looked at ends. A track whose box barely moves (IoU with where it settled
at least `stationary_iou`) for `stationary_frames` frames is stationary: a parked car, which
the watcher re-checks at an interval instead of on every frame.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .zones import Box

SCORE_HISTORY = 10  # recent scores whose median confirms an object (Frigate's)


@dataclass(frozen=True)
class Observation:
    """One detection in one frame: label, score and box in the frame's pixels."""

    label: str
    score: float
    box: Box


@dataclass
class Track:
    """One object followed across frames."""

    number: int  # the tracker's own count, 1, 2, ... (events name objects otherwise)
    label: str
    box: Box
    score: float
    first_seen: float
    last_seen: float
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=SCORE_HISTORY))
    missed: int = 0  # frames in a row its place was looked at and it was not found
    still: int = 0  # frames in a row its box barely moved from `anchor`
    anchor: Box | None = None
    stationary: bool = False
    motionless_since: float | None = None

    @property
    def median_score(self) -> float:
        """The median of the recent scores, missing frames counted as 0 (as Frigate does)."""
        ordered = sorted(self.scores)
        middle = len(ordered) // 2
        if not ordered:
            return 0.0
        if len(ordered) % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) / 2


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two pixel boxes (0 for boxes without area)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _jump(a: Box, b: Box) -> float:
    """How far b's centre lies from a's, in a's longer side; infinite when their sizes differ
    by more than half (not the same object seen again)."""
    aw, ah, bw, bh = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    side = max(aw, ah)
    if side <= 0 or not 0.5 <= (bw * bh) / max(1, aw * ah) <= 2.0:
        return float("inf")
    dx = (b[0] + b[2] - a[0] - a[2]) / 2
    dy = (b[1] + b[3] - a[1] - a[3]) / 2
    return float((dx * dx + dy * dy) ** 0.5 / side)


def _inside(box: Box, regions: Sequence[Box]) -> bool:
    """Whether the box's centre lies in one of the regions."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(r[0] <= cx < r[2] and r[1] <= cy < r[3] for r in regions)


class Tracker:
    """The objects of one camera, updated with each analysed frame's detections."""

    def __init__(
        self,
        *,
        min_iou: float = 0.2,
        max_disappeared: int = 10,
        stationary_frames: int = 10,
        stationary_iou: float = 0.9,
        max_jump: float = 1.0,
    ) -> None:
        self.min_iou = min_iou
        self.max_jump = max_jump
        self.max_disappeared = max_disappeared
        self.stationary_frames = stationary_frames
        self.stationary_iou = stationary_iou
        self.tracks: list[Track] = []
        self._numbers = itertools.count(1)

    def update(
        self,
        observations: Iterable[Observation],
        now: float,
        looked: Sequence[Box] | None = None,
    ) -> tuple[list[Track], list[Track]]:
        """Match one frame's detections: (tracks started, tracks ended).

        `looked` are the regions the detector searched (None: the whole frame); a track
        whose centre lies outside them was not looked for, so it is not missed either.
        """
        found = list(observations)
        pairs = [
            (iou(track.box, seen.box), t, s)
            for t, track in enumerate(self.tracks)
            for s, seen in enumerate(found)
            if track.label == seen.label
        ]
        pairs.sort(key=lambda pair: -pair[0])
        matched_tracks: set[int] = set()
        matched_found: set[int] = set()
        for overlap, t, s in pairs:
            if overlap < self.min_iou:
                break
            if t in matched_tracks or s in matched_found:
                continue
            matched_tracks.add(t)
            matched_found.add(s)
            self._seen(self.tracks[t], found[s], now)
        # What overlaps nothing it was: a fast mover between two analysed frames (someone
        # crossing the picture in a second, seen five times) may still be the nearest box.
        jumps = [
            (jump, t, s)
            for t, track in enumerate(self.tracks)
            if t not in matched_tracks
            for s, seen in enumerate(found)
            if s not in matched_found
            and track.label == seen.label
            and (jump := _jump(track.box, seen.box)) <= self.max_jump
        ]
        jumps.sort(key=lambda pair: pair[0])
        for _, t, s in jumps:
            if t in matched_tracks or s in matched_found:
                continue
            matched_tracks.add(t)
            matched_found.add(s)
            self._seen(self.tracks[t], found[s], now)
        ended: list[Track] = []
        kept: list[Track] = []
        for t, track in enumerate(self.tracks):
            if t not in matched_tracks and (looked is None or _inside(track.box, looked)):
                track.missed += 1
                track.scores.append(0.0)
                if track.missed > self.max_disappeared:
                    ended.append(track)
                    continue
            kept.append(track)
        started: list[Track] = []
        for s, seen in enumerate(found):
            if s in matched_found:
                continue
            track = Track(next(self._numbers), seen.label, seen.box, seen.score, now, now)
            track.anchor = seen.box
            track.scores.append(seen.score)
            started.append(track)
        self.tracks = kept + started
        return started, ended

    def _seen(self, track: Track, seen: Observation, now: float) -> None:
        track.box, track.score, track.last_seen = seen.box, seen.score, now
        track.scores.append(seen.score)
        track.missed = 0
        if track.anchor is not None and iou(track.anchor, seen.box) >= self.stationary_iou:
            track.still += 1
            if track.still >= self.stationary_frames and not track.stationary:
                track.stationary = True
                track.motionless_since = now
        else:
            track.anchor, track.still = seen.box, 0
            track.stationary, track.motionless_since = False, None

    def clear(self) -> list[Track]:
        """End every track (the camera stopped); the tracks that were open."""
        ended, self.tracks = self.tracks, []
        return ended
