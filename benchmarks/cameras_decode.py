"""What reading a camera costs per frame, side by side: H.264 (PyAV, as the RTSP feed decodes)
and MJPEG (Pillow, as the MJPEG and snapshot feeds decode), at 640x480 and 1920x1080.

    python -m benchmarks.cameras_decode [--images ../shared/images] [--rounds 5]

Clips are made here with ffmpeg from coffee.png with sensor noise (15 fps, x264 veryfast, one
keyframe a second, as a camera's stream), and their frames encoded as JPEG (quality 80) for
MJPEG. Each round times every variant over the same frames in turn, so load that comes and
goes falls on all alike; the median round is printed, as process CPU time per frame (what a
camera costs a core, decoder threads included) and wall time. Variants:

- h264 decode: the decoder alone; + luma: and the Y plane copied out (what the feed does);
  + gray: to_ndarray("gray") instead; + rgb: and the RGB conversion (only frames a model sees)
- mjpeg L: Pillow decoding to grey with draft("L") (what the feed does); RGB: a full decode

Ratios printed: what the feed adds to a bare decode, what RGB would add to every frame, 1080p
against 640x480, MJPEG against H.264. A Pi 4's figures are not measured here: see
docs/cameras.md for how to estimate them.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from edge_server.cameras.rtsp import luma_of
from edge_server.cameras.streams import jpeg_picture

SIZES = {"640x480": (640, 480), "1080p": (1920, 1080)}
FPS = 15
SECONDS = 4


def make_clip(images: Path, folder: Path, size: tuple[int, int]) -> Path:
    """A camera-like H.264 clip of the still scene with sensor noise."""
    width, height = size
    out = folder / f"scene-{width}x{height}.mp4"
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is not installed (deploy/test-deps.sh installs it)")
    subprocess.run(  # noqa: S603 - ffmpeg from PATH, on a file this script names
        [
            ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-loop", "1",
            "-i", str(images / "coffee.png"),
            "-vf", f"scale={width}:{height},setsar=1,fps={FPS},noise=alls=8:allf=t",
            "-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS), "-pix_fmt", "yuv420p",
            "-t", str(SECONDS), str(out),
        ],
        check=True,
        timeout=300,
    )  # fmt: skip
    return out


def timed(run: Callable[[], int]) -> tuple[float, float]:
    """(CPU ms, wall ms) per frame of one run that returns its frame count."""
    cpu, wall = time.process_time(), time.perf_counter()
    frames = run()
    return (
        (time.process_time() - cpu) * 1000 / frames,
        (time.perf_counter() - wall) * 1000 / frames,
    )


def h264_variant(clip: Path, then: Callable[[av.VideoFrame], object] | None) -> Callable[[], int]:
    def run() -> int:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            frames = 0
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if then is not None:
                        then(frame)
                    frames += 1
        return frames

    return run


def mjpeg_variant(jpegs: list[bytes], grey: bool) -> Callable[[], int]:
    def run() -> int:
        for data in jpegs:
            if grey:
                jpeg_picture(data)
            else:
                with Image.open(io.BytesIO(data)) as image:
                    np.asarray(image.convert("RGB"))
        return len(jpegs)

    return run


def jpegs_of(clip: Path) -> list[bytes]:
    jpegs = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            buffer = io.BytesIO()
            Image.fromarray(frame.to_ndarray(format="rgb24")).save(buffer, "JPEG", quality=80)
            jpegs.append(buffer.getvalue())
    return jpegs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=Path("../shared/images"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    variants: dict[str, Callable[[], int]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, size in SIZES.items():
            clip = make_clip(args.images, Path(folder), size)
            jpegs = jpegs_of(clip)
            variants[f"{name} h264 decode"] = h264_variant(clip, None)
            variants[f"{name} h264 + luma"] = h264_variant(clip, luma_of)
            variants[f"{name} h264 + gray"] = h264_variant(
                clip, lambda f: f.to_ndarray(format="gray")
            )
            variants[f"{name} h264 + rgb"] = h264_variant(
                clip, lambda f: f.to_ndarray(format="rgb24")
            )
            variants[f"{name} mjpeg L"] = mjpeg_variant(jpegs, grey=True)
            variants[f"{name} mjpeg RGB"] = mjpeg_variant(jpegs, grey=False)
            kb = statistics.mean(len(j) for j in jpegs) / 1024
            print(
                f"{name}: {clip.stat().st_size / SECONDS / 1024:.0f} KB/s H.264, {kb:.0f} KB a JPEG"
            )
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for key, run in variants.items():
                samples[key].append(timed(run))
    cpu = {k: statistics.median(c for c, _ in v) for k, v in samples.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in samples.items()}
    print(f"\n{'variant':24} {'CPU ms/frame':>13} {'wall ms':>8} {'frames/s a core':>16}")
    for key in variants:
        print(f"{key:24} {cpu[key]:13.2f} {wall[key]:8.2f} {1000 / cpu[key]:16.0f}")
    print("\nratios (CPU):")
    for name in SIZES:
        luma = cpu[f"{name} h264 + luma"]
        rows = {
            "feed (decode + luma) / decode": luma / cpu[f"{name} h264 decode"],
            "decode + rgb / decode + luma": cpu[f"{name} h264 + rgb"] / luma,
            "decode + gray / decode + luma": cpu[f"{name} h264 + gray"] / luma,
            "mjpeg L / h264 + luma": cpu[f"{name} mjpeg L"] / luma,
            "mjpeg RGB / mjpeg L": cpu[f"{name} mjpeg RGB"] / cpu[f"{name} mjpeg L"],
        }
        for what, ratio in rows.items():
            print(f"  {name:8} {what:32} {ratio:.2f}")
    for kind in ("h264 + luma", "mjpeg L"):
        ratio = cpu[f"1080p {kind}"] / cpu[f"640x480 {kind}"]
        print(f"  1080p / 640x480, {kind:23} {ratio:.2f}")
    print(f"  (1080p has {1920 * 1080 / (640 * 480):.2f}x the pixels)")


if __name__ == "__main__":
    main()
