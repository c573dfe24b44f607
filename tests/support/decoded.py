"""A clip's frames decoded in the test process (PyAV, as the RTSP feed decodes), with where
the walk-in clip's person is in each, for tests that feed frames straight to motion or to a
watcher."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

from support.cameras.clips import PERSON_HEIGHT, SLIDE_SECONDS, Clip

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Decoded:
    """Every frame of a clip: its luma (the decoder's grey plane) and its RGB."""

    clip: Clip
    luma: list[npt.NDArray[np.uint8]]
    rgb: list[npt.NDArray[np.uint8]]

    @property
    def fps(self) -> int:
        return self.clip.fps

    def person(self, n: int) -> Box | None:
        """The person's box in frame n (the clip maker's overlay, clipped to the frame)."""
        clip = self.clip
        if clip.person_in is None or clip.person_out is None:
            return None
        t = n / clip.fps
        if not clip.person_in <= t <= clip.person_out:
            return None
        tall = round(clip.height * PERSON_HEIGHT) // 2 * 2
        wide = round(tall * 910 / 1137) // 2 * 2
        centre = (clip.width - wide) // 2
        leave = clip.person_out - SLIDE_SECONDS
        if t < clip.person_in + SLIDE_SECONDS:
            x = -wide + (centre + wide) * (t - clip.person_in) / SLIDE_SECONDS
        elif t < leave:
            x = centre
        else:
            x = centre + (clip.width - centre) * (t - leave) / SLIDE_SECONDS
        x0, x1 = max(0, int(x)), min(clip.width, int(x) + wide)
        if x1 <= x0:
            return None
        return (x0, clip.height - tall, x1, clip.height)


def decoded(clip: Clip) -> Decoded:
    """The clip's frames, decoded."""
    luma: list[npt.NDArray[np.uint8]] = []
    rgb: list[npt.NDArray[np.uint8]] = []
    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            luma.append(np.asarray(frame.to_ndarray(format="gray"), np.uint8))
            rgb.append(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8))
    return Decoded(clip, luma, rgb)
