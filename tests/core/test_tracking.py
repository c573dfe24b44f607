"""The IoU tracker: one id per object across frames, misses, stationary objects."""

from __future__ import annotations

from edge_server.core.tracking import Observation, Tracker, iou


def _person(x: int, score: float = 0.8) -> Observation:
    return Observation("person", score, (x, 100, x + 80, 300))


def test_a_walking_person_keeps_one_track_and_ends_after_the_misses() -> None:
    """A box moving 15 px a frame is one track; it ends on the (max_disappeared + 1)th frame
    it is looked for and not found, not before."""
    tracker = Tracker(max_disappeared=3)
    started, ended = tracker.update([_person(0)], 0.0)
    assert len(started) == 1 and ended == []
    number = started[0].number
    for n in range(1, 20):
        started, ended = tracker.update([_person(15 * n)], n / 5)
        assert started == [] and ended == []
    assert [t.number for t in tracker.tracks] == [number]
    for n in range(3):
        assert tracker.update([], 4 + n / 5) == ([], [])
    _, ended = tracker.update([], 5.0)
    assert [t.number for t in ended] == [number] and tracker.tracks == []


def test_labels_are_matched_apart_and_a_far_box_is_a_new_object() -> None:
    """A dog on the person's box does not take the person's track; a person far away starts
    a second track."""
    tracker = Tracker()
    (first,), _ = tracker.update([_person(0)], 0.0)
    dog = Observation("dog", 0.9, (5, 100, 85, 300))
    started, _ = tracker.update([_person(10), dog, _person(400)], 0.2)
    assert sorted((t.label, t.box[0]) for t in started) == [("dog", 5), ("person", 400)]
    assert tracker.tracks[0].number == first.number and tracker.tracks[0].box[0] == 10


def test_an_object_that_stops_becomes_stationary_and_moving_clears_it() -> None:
    """A box within 1 px for `stationary_frames` frames is stationary; a step away is not."""
    tracker = Tracker(stationary_frames=5)
    tracker.update([_person(100)], 0.0)
    for n in range(1, 5):
        tracker.update([_person(100 + n % 2)], n)
        assert not tracker.tracks[0].stationary
    tracker.update([_person(100)], 5)
    assert tracker.tracks[0].stationary and tracker.tracks[0].motionless_since == 5
    tracker.update([_person(140)], 6)
    assert not tracker.tracks[0].stationary


def test_an_object_not_looked_for_is_not_missed() -> None:
    """A track outside the regions searched keeps its misses at 0 and its scores unchanged."""
    tracker = Tracker(max_disappeared=1)
    tracker.update([_person(0)], 0.0)
    for n in range(5):
        assert tracker.update([], n + 1, looked=[(300, 0, 640, 360)]) == ([], [])
    track = tracker.tracks[0]
    assert track.missed == 0 and list(track.scores) == [0.8]


def test_the_median_counts_missed_frames_as_zero() -> None:
    """Scores 0.9, 0.8, then two misses: the median of (0.9, 0.8, 0, 0) is 0.4."""
    tracker = Tracker(max_disappeared=5)
    tracker.update([_person(0, 0.9)], 0)
    tracker.update([_person(5, 0.8)], 1)
    tracker.update([], 2)
    tracker.update([], 3)
    assert tracker.tracks[0].median_score == 0.4


def test_iou_of_boxes() -> None:
    """Identical boxes 1, disjoint 0, half-overlapping in one direction 1/3."""
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 0, 30, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == 50 / 150


def test_a_fast_mover_is_matched_by_distance_when_boxes_no_longer_overlap() -> None:
    """A box that jumps 70 px (no overlap) keeps its track; one 3 box-sides away, or of a
    quarter of the size, does not."""
    tracker = Tracker()
    (first,), _ = tracker.update([_person(0)], 0.0)
    started, _ = tracker.update([_person(85)], 0.2)
    assert started == [] and tracker.tracks[0].number == first.number
    started, _ = tracker.update([_person(85 + 3 * 200)], 0.4)
    assert len(started) == 1
    small = Tracker()
    small.update([_person(0)], 0.0)
    started, _ = small.update([Observation("person", 0.8, (90, 100, 130, 200))], 0.2)
    assert len(started) == 1
