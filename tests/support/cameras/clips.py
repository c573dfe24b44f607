"""H.264 clips made at test time with ffmpeg from the shared photos: a still scene with sensor
noise, and the same scene with a person who slides in at a known second and out later.

The scene is coffee.png (a cup and a table: nothing the default labels track); the person is
faces/obama/obama.jpg, which the COCO detector finds as a person with a score above 0.7 on the
whole frame once pasted (of the shared portraits, the one that scores highest at this size;
tests/cameras/test_clips.py checks it).
Each clip is one GOP a second with no B-frames, as cameras stream: a reader that joins at any
moment gets a picture within a second.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# In the shared photos folder (conftest's images_dir).
SCENE = "coffee.png"
PERSON = "faces/obama/obama.jpg"

# The pasted portrait's size against the frame's height, and how long it takes to slide in.
PERSON_HEIGHT = 0.8
SLIDE_SECONDS = 0.5


@dataclass(frozen=True)
class Clip:
    """A clip on disk and what is in it, in seconds from its start."""

    path: Path
    width: int
    height: int
    fps: int
    seconds: float
    person_in: float | None = None  # the first frame the person shows in
    person_out: float | None = None  # the first frame after it left

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)


def ffmpeg() -> str:
    """The ffmpeg command; a clear failure when it is missing (deploy/test-deps.sh installs it)."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise RuntimeError("ffmpeg is not installed: run deploy/test-deps.sh")
    return found


def _encode(graph: list[str], out: Path, fps: int, seconds: float) -> None:
    command = [
        ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *graph,
        "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-bf", "0",
        "-g", str(fps), "-pix_fmt", "yuv420p", "-r", str(fps), "-t", f"{seconds}",
        "-movflags", "+faststart", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=120)


def still_clip(
    images: Path,
    folder: Path,
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 10,
    seconds: float = 12.0,
    noise: int = 8,
) -> Clip:
    """The scene, still, with temporal sensor noise of strength `noise` (ffmpeg's `noise`)."""
    out = folder / f"still-{width}x{height}-{fps}fps-{seconds:g}s.mp4"
    scene = f"scale={width}:{height},setsar=1,fps={fps},noise=alls={noise}:allf=t"
    _encode(["-loop", "1", "-i", str(images / SCENE), "-vf", scene], out, fps, seconds)
    return Clip(out, width, height, fps, seconds)


def walk_in_clip(
    images: Path,
    folder: Path,
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 10,
    seconds: float = 12.0,
    person_in: float = 3.0,
    person_out: float = 8.0,
    noise: int = 8,
    person: str = PERSON,
) -> Clip:
    """The still scene where the person (a photo in the shared folder) slides in from the left
    at `person_in`, stands in the middle, and slides out to the right, gone from `person_out`
    on."""
    from PIL import Image

    who = "" if person == PERSON else f"-{Path(person).stem}"
    out = folder / (
        f"walk{who}-{width}x{height}-{fps}fps-{seconds:g}s-{person_in:g}-{person_out:g}.mp4"
    )
    tall = round(height * PERSON_HEIGHT) // 2 * 2
    with Image.open(images / person) as photo:
        wide = round(tall * photo.width / photo.height) // 2 * 2
    centre = (width - wide) // 2
    leave = person_out - SLIDE_SECONDS
    # x: from off-screen left to the centre over SLIDE_SECONDS, stay, then off-screen right.
    x = (
        f"if(lt(t,{person_in + SLIDE_SECONDS}),"
        f"-{wide}+({centre}+{wide})*(t-{person_in})/{SLIDE_SECONDS},"
        f"if(lt(t,{leave}),{centre},{centre}+({width}-{centre})*(t-{leave})/{SLIDE_SECONDS}))"
    )
    graph = (
        f"[0:v]scale={width}:{height},setsar=1,fps={fps}[bg];"
        f"[1:v]scale={wide}:{tall},setsar=1[person];"
        f"[bg][person]overlay=x='{x}':y={height - tall}:eval=frame:"
        f"enable='between(t,{person_in},{person_out})',"
        f"noise=alls={noise}:allf=t"
    )
    _encode(
        ["-loop", "1", "-i", str(images / SCENE), "-loop", "1", "-i", str(images / person),
         "-filter_complex", graph],
        out, fps, seconds,
    )  # fmt: skip
    return Clip(out, width, height, fps, seconds, person_in, person_out)


def clip_jpegs(clip: Clip, quality: int = 80) -> list[bytes]:
    """Every frame of `clip` as a JPEG, as a camera that serves JPEGs would send it."""
    import io

    import av
    from PIL import Image

    jpegs = []
    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            buffer = io.BytesIO()
            Image.fromarray(frame.to_ndarray(format="rgb24")).save(buffer, "JPEG", quality=quality)
            jpegs.append(buffer.getvalue())
    return jpegs
