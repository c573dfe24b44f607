"""What watching cameras costs, side by side in one run.

    python -m benchmarks.cameras [--models-dir ../shared/models] [--images ../shared/images]
                                 [--seconds 8] [--smoke]

Clips are made first with ffmpeg from the shared photos, H.264 at 15 fps as a camera streams
them (one GOP a second, no B-frames): a still scene with sensor noise ("idle": nothing moves)
and the same scene with a person crossing back and forth the whole time ("busy": motion and a
tracked object on every frame), at 640x480 and 1920x1080; each also as MJPEG (the same frames
as JPEGs, ffmpeg's quality 5, as an ESP32-CAM or an IP camera's MJPEG URL sends them). A
camera here is the file read in this process at the stream's pace, decoded as the readers
decode after the network (H.264 by PyAV, as the RTSP reader: the luma kept, RGB only when
asked; MJPEG parts framed as a multipart body, cut by the MJPEG reader's parser and decoded
straight to grey by Pillow, RGB only when asked) and a watcher analysing it at the default
5 fps, with the real detector served by an in-process Service. Prints:

1. CPU per camera: this process's CPU time over wall time (100 % = one core) for each clip,
   decode only (the feed, no watcher) and decode plus analysis (the watcher), RTSP and MJPEG
   one after the other and their ratio, with the nothing-running baseline of the same run.
2. Event latency: seconds from the person's first frame to the `new` event, over a few
   walk-ins at 640x480.
3. Motion per frame: the median time of `Motion.detect` on 60 decoded frames of each idle
   and busy clip (the issue's budget: about a millisecond).
4. `/classify`'s data plane (`Service.classify_upload`, what the route calls, grace_hopper.jpg)
   at c=1 with 0, 2 and 4 busy 640x480 cameras running, p50 and p95 and their ratio to no
   camera; the blocks alternate (0, 2, 4, 4, 2, 0, ...) so load that drifts on a shared
   machine falls on all alike.

5. Through a server process (`--http`): GStreamer's RTSP server (the tests' script, run by
   the system's python3) streaming the busy 640x480 clip, and `edge-server serve` started
   with EDGE_CAMERAS naming 0, 2 and 4 cameras on it: POST /classify c=1 p50 and p95 from a
   real client, and the server process's CPU over wall time for 3 s before the requests
   (the cameras alone: RTSP decode, motion, the detector), blocks alternating as in 4.

The figures are this machine's; a Pi 4 estimate scales them (docs/cameras.md says how).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import numpy as np

from benchmarks.flags import add_model_flags
from benchmarks.servers import ServerProcess, free_port, python_command
from edge_server.cameras.event_store import EventStore
from edge_server.cameras.events import CameraEvent
from edge_server.cameras.frames import Frame, frame_of
from edge_server.cameras.mjpeg import Parts
from edge_server.cameras.streams import Picture, jpeg_picture
from edge_server.cameras.watcher import Watcher
from edge_server.config.cameras import CameraConfig
from edge_server.config.settings import Settings
from edge_server.core.motion import Motion
from edge_server.serving.auth import ApiKeys
from edge_server.serving.metrics import Metrics
from edge_server.serving.service import Service
from edge_server.serving.specs import model_specs

DETECTOR = "ssd_mobilenet_v1_coco_quant"
CLASSIFIER = "mobilenet_v2_1.0_224_quant"
SCENE = "coffee.png"
PERSON = "faces/obama/obama.jpg"
FPS = 15
SIZES = ((640, 480), (1920, 1080))


@dataclass(frozen=True)
class Clip:
    """An H.264 file and what is in it."""

    path: Path
    width: int
    height: int
    person_in: float | None  # the first second the person shows (walk-ins)
    mjpeg: bool = False  # JPEG frames (an MJPEG stream) rather than H.264


def _ffmpeg(graph: list[str], out: Path, seconds: float) -> None:
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *graph,
        "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-bf", "0",
        "-g", str(FPS), "-pix_fmt", "yuv420p", "-r", str(FPS), "-t", f"{seconds}", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=300)  # noqa: S603 - ffmpeg with our own arguments


def as_mjpeg(clip: Clip) -> Clip:
    """The clip's frames as JPEGs (an MJPEG stream's parts), in an AVI file."""
    out = clip.path.with_suffix(".avi")
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip.path),
        "-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=300)  # noqa: S603 - ffmpeg with our own arguments
    return Clip(out, clip.width, clip.height, clip.person_in, mjpeg=True)


def multipart(jpeg: bytes) -> bytes:
    """A JPEG framed as the ESP32 CameraWebServer sends an MJPEG part."""
    head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
    return b"\r\n--frame\r\n" + head + jpeg


def make_clip(images: Path, folder: Path, size: tuple[int, int], kind: str, seconds: float) -> Clip:
    """ "idle" (the still scene), "busy" (a person crossing back and forth throughout) or
    "walk" (the person slides in at 2 s and stays)."""
    width, height = size
    out = folder / f"{kind}-{width}x{height}.mp4"
    scene = f"scale={width}:{height},setsar=1,fps={FPS}"
    if kind == "idle":
        _ffmpeg(
            ["-loop", "1", "-i", str(images / SCENE), "-vf", f"{scene},noise=alls=8:allf=t"],
            out,
            seconds,
        )
        return Clip(out, width, height, None)
    tall = round(height * 0.8) // 2 * 2
    wide = round(tall * 910 / 1137) // 2 * 2
    span = width - wide
    if kind == "busy":
        x = f"abs(mod(t*{span / 3:.0f},{2 * span})-{span})"  # across in 3 s, and back
        enable = "1"
    else:
        x = f"if(lt(t,2.5),-{wide}+({span // 2}+{wide})*(t-2)/0.5,{span // 2})"
        enable = "gte(t,2)"
    graph = (
        f"[0:v]{scene}[bg];[1:v]scale={wide}:{tall},setsar=1[p];"
        f"[bg][p]overlay=x='{x}':y={height - tall}:eval=frame:enable='{enable}',"
        "noise=alls=8:allf=t"
    )
    _ffmpeg(
        ["-loop", "1", "-i", str(images / SCENE), "-loop", "1", "-i", str(images / PERSON),
         "-filter_complex", graph],
        out,
        seconds,
    )  # fmt: skip
    return Clip(out, width, height, 2.0 if kind == "walk" else None)


class FileFeed:
    """A camera stand-in: the clip decoded in its own thread at the stream's pace, looping,
    the latest frame kept (luma from the decoder, RGB converted only when asked); an MJPEG
    clip's JPEGs go through the MJPEG reader's part parser and JPEG decode."""

    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.started = 0.0
        self._latest: Frame | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.started = time.time()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def latest(self, after: int = 0, timeout: float = 1.0) -> Frame | None:
        with self._changed:
            self._changed.wait_for(
                lambda: self._latest is not None and self._latest.number > after, timeout
            )
            frame = self._latest
        return frame if frame is not None and frame.number > after else None

    def _run(self) -> None:
        number = 0
        began = time.monotonic()
        while not self._stopping.is_set():
            for picture in self._mjpeg() if self.clip.mjpeg else self._h264():
                if self._stopping.is_set():
                    return
                number += 1
                wait = began + (number - 1) / FPS - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                with self._changed:
                    self._latest = frame_of(number, picture)
                    self._changed.notify_all()

    def _h264(self) -> Iterator[Picture]:
        with av.open(str(self.clip.path)) as container:
            for decoded in container.decode(video=0):
                luma = decoded.to_ndarray(format="gray")

                def rgb(frame: av.VideoFrame = decoded) -> object:
                    return frame.to_ndarray(format="rgb24")

                yield Picture(luma, rgb)  # type: ignore[arg-type]

    def _mjpeg(self) -> Iterator[Picture]:
        parts = Parts("frame")
        with av.open(str(self.clip.path)) as container:
            for packet in container.demux(video=0):
                if packet.size == 0:
                    continue
                parts.feed(multipart(bytes(packet)))
                for part in parts.parts():
                    yield jpeg_picture(part)


class Heard:
    """Events as they come, with when."""

    def __init__(self) -> None:
        self.news: list[float] = []

    def on_event(self, event: CameraEvent) -> None:
        if event.type == "new" and event.label == "person":
            self.news.append(time.time())

    def on_motion(self, camera: str, moving: bool) -> None:
        pass

    def on_counts(self, camera: str, counts: Mapping[str, int]) -> None:
        pass


@contextmanager
def served(models_dir: Path, runtime: str) -> Iterator[tuple[Service, asyncio.AbstractEventLoop]]:
    """The detector and the classifier in an in-process Service, its loop on a thread."""
    settings = Settings(model=[CLASSIFIER, DETECTOR], models_dir=models_dir, runtime=runtime)
    service = Service(settings, Metrics(), ApiKeys.from_settings(settings))
    for spec in model_specs(settings):
        service.models.install(spec, spec.load())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield service, loop
    finally:
        asyncio.run_coroutine_threadsafe(service.shutdown(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@contextmanager
def cameras(
    service: Service,
    loop: asyncio.AbstractEventLoop,
    clips: list[Clip],
    *,
    watch: bool = True,
    heard: Heard | None = None,
) -> Iterator[list[FileFeed]]:
    """Feeds over `clips` and (with `watch`) a watcher each, running until the block ends."""
    feeds = [FileFeed(clip) for clip in clips]
    watchers = []
    for n, feed in enumerate(feeds):
        feed.start()
        if watch:
            config = CameraConfig(name=f"cam{n}", url="rtsp://127.0.0.1/bench")
            watcher = Watcher(f"cam{n}", config, feed, service, loop, EventStore())
            if heard is not None:
                watcher.add_listener(heard)
            asyncio.run_coroutine_threadsafe(watcher.start(), loop).result(30)
            watchers.append(watcher)
    try:
        yield feeds
    finally:
        for watcher in watchers:
            asyncio.run_coroutine_threadsafe(watcher.stop(), loop).result(60)
        for feed in feeds:
            feed.stop()


def motion_ms(clip: Clip, frames: int = 60) -> float:
    """The median milliseconds of motion on a clip's frames, after its first second."""
    motion = Motion(clip.width, clip.height)
    took = []
    with av.open(str(clip.path)) as container:
        for n, decoded in enumerate(container.decode(video=0)):
            luma = np.asarray(decoded.to_ndarray(format="gray"), np.uint8)
            started = time.perf_counter()
            motion.detect(luma)
            if n >= FPS:
                took.append((time.perf_counter() - started) * 1000)
            if len(took) >= frames:
                break
    return statistics.median(took)


def cpu_share(seconds: float) -> float:
    """This process's CPU time over `seconds` of wall time, as a share of one core."""
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(seconds)
    return (time.process_time() - cpu) / (time.monotonic() - wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_flags(parser, images_help="folder of the shared photos")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds a case")
    parser.add_argument("--smoke", action="store_true", help="short run: does it work")
    parser.add_argument(
        "--http", action="store_true", help="also measure a server process over real RTSP"
    )
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    seconds = 2.0 if args.smoke else args.seconds
    walk_ins = 1 if args.smoke else 3
    turns = 1 if args.smoke else 3
    requests = 10 if args.smoke else 40
    sizes = SIZES[:1] if args.smoke else SIZES
    with (
        tempfile.TemporaryDirectory() as folder,
        served(args.models_dir, args.runtime.value) as (service, loop),
    ):
        made = Path(folder)
        clips = {
            (size, kind): make_clip(args.images, made, size, kind, 20.0)
            for size in sizes
            for kind in ("idle", "busy")
        }
        mjpegs = {case: as_mjpeg(clip) for case, clip in clips.items()}
        walk = make_clip(args.images, made, SIZES[0], "walk", 12.0)

        print(f"1. CPU per camera ({FPS} fps stream, analysed at 5 fps), % of one core")
        baseline = cpu_share(seconds) * 100
        print(f"   nothing running: {baseline:5.1f} %")
        for (size, kind), clip in clips.items():
            shares: dict[str, list[float]] = {"RTSP": [], "MJPEG": []}
            for protocol, played in (("RTSP", clip), ("MJPEG", mjpegs[(size, kind)])):
                for watch in (False, True):
                    with cameras(service, loop, [played], watch=watch):
                        time.sleep(2.0)  # warmed: the decoder, calibration, the first invokes
                        shares[protocol].append(cpu_share(seconds) * 100)
                decode, analysed = shares[protocol]
                print(
                    f"   {size[0]}x{size[1]} {kind:4} {protocol:5}: decode {decode:5.1f} %, "
                    f"decode + analysis {analysed:5.1f} % (analysis {analysed - decode:+5.1f} %)"
                )
            (h264, h264_analysed), (jpeg, jpeg_analysed) = shares["RTSP"], shares["MJPEG"]
            print(
                f"   {size[0]}x{size[1]} {kind:4} MJPEG/RTSP: decode {jpeg / h264:4.2f}x, "
                f"decode + analysis {jpeg_analysed / h264_analysed:4.2f}x"
            )

        print(f"   load average after: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")

        print("2. Event latency (640x480, the person slides in over 0.5 s)")
        delays = []
        for _ in range(walk_ins):
            heard = Heard()
            with cameras(service, loop, [walk], heard=heard) as (feed,):
                deadline = time.monotonic() + 12.0
                while not heard.news and time.monotonic() < deadline:
                    time.sleep(0.05)
                if heard.news:
                    assert walk.person_in is not None
                    delays.append(heard.news[0] - (feed.started + walk.person_in))
        shown = ", ".join(f"{d:.2f}" for d in delays) or "none came"
        print(f"   new after the person's first frame: {shown} s")

        print("3. Motion per frame (median of 60 frames)")
        for (size, kind), clip in clips.items():
            print(f"   {size[0]}x{size[1]} {kind:4}: {motion_ms(clip):5.2f} ms")

        print("4. classify c=1 (Service.classify_upload, grace_hopper.jpg) beside cameras")
        photo = (args.images / "grace_hopper.jpg").read_bytes()
        busy = clips[(SIZES[0], "busy")]
        times: dict[int, list[float]] = {0: [], 2: [], 4: []}
        order = [0, 2, 4] * turns
        for turn in range(turns):
            for count in order[turn * 3 : turn * 3 + 3][:: 1 if turn % 2 == 0 else -1]:
                with cameras(service, loop, [busy] * count):
                    time.sleep(1.0)
                    for _ in range(requests):
                        started = time.perf_counter()
                        asyncio.run_coroutine_threadsafe(
                            service.classify_upload(photo), loop
                        ).result(60)
                        times[count].append((time.perf_counter() - started) * 1000)
        base = statistics.median(times[0])
        for count, measured in times.items():
            ordered = sorted(measured)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            p50 = statistics.median(ordered)
            print(f"   {count} cameras: p50 {p50:6.1f} ms ({p50 / base:4.2f}x), p95 {p95:6.1f} ms")
        if args.http:
            rtsp_clip = make_clip(args.images, made, SIZES[0], "busy", 120.0)
            over_http(args, rtsp_clip, made, turns=turns, requests=requests)


RTSP_SCRIPT = Path(__file__).resolve().parent.parent / "tests/support/cameras/rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-gi: GStreamer's bindings


def over_http(
    args: argparse.Namespace, clip: Clip, folder: Path, *, turns: int, requests: int
) -> None:
    """/classify c=1 through a server process watching 0, 2 and 4 RTSP cameras."""
    port = free_port()
    command = [SYSTEM_PYTHON, str(RTSP_SCRIPT), str(clip.path), str(port), "stream"]
    rtsp = subprocess.Popen(  # noqa: S603 - the tests' RTSP server script on our clip
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert rtsp.stdout is not None
        if rtsp.stdout.readline().strip() != "ready":
            raise RuntimeError("the RTSP server did not start")
        url = f"rtsp://127.0.0.1:{port}/stream"
        photo = (args.images / "grace_hopper.jpg").read_bytes()
        times: dict[int, list[float]] = {0: [], 2: [], 4: []}
        cpu: dict[int, list[float]] = {0: [], 2: [], 4: []}
        analysed: dict[int, list[int]] = {0: [], 2: [], 4: []}
        print("5. POST /classify c=1 to a server process watching RTSP cameras")
        for turn in range(turns):
            for count in [0, 2, 4][:: 1 if turn % 2 == 0 else -1]:
                env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
                env.update(
                    EDGE_MODELS_DIR=str(args.models_dir),
                    EDGE_RUNTIME=args.runtime.value,
                    EDGE_MODEL=f"{CLASSIFIER},{DETECTOR}",
                    EDGE_LOG_LEVEL="warning",
                )
                if count:
                    env["EDGE_CAMERAS"] = ",".join(f"cam{n}={url}" for n in range(count))
                server_port = free_port()
                server = ServerProcess.start(
                    f"{count} cameras",
                    python_command(
                        "-m", "edge_server", "serve", "--host", "127.0.0.1",
                        "--port", str(server_port),
                    ),
                    env,
                    server_port,
                    folder / f"server-{count}.log",
                )  # fmt: skip
                try:
                    with httpx.Client(base_url=f"http://127.0.0.1:{server_port}") as client:
                        time.sleep(2.0)  # the cameras connected and calibrated
                        used, wall = server.cpu_s(), time.monotonic()
                        time.sleep(3.0)  # the cameras alone
                        cpu[count].append((server.cpu_s() - used) / (time.monotonic() - wall) * 100)
                        for _ in range(requests):
                            started = time.perf_counter()
                            answer = client.post("/classify", files={"image": photo})
                            answer.raise_for_status()
                            times[count].append((time.perf_counter() - started) * 1000)
                        watched = client.get("/v1/cameras").json()["cameras"]
                        analysed[count].append(sum(c["frames"]["analysed"] for c in watched))
                finally:
                    server.stop()
        base = statistics.median(times[0])
        for count, measured in times.items():
            ordered = sorted(measured)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            p50 = statistics.median(ordered)
            print(
                f"   {count} cameras: p50 {p50:6.1f} ms ({p50 / base:4.2f}x), p95 {p95:6.1f} ms; "
                f"the server's CPU without requests {statistics.median(cpu[count]):5.1f} % of a "
                f"core, frames analysed {sum(analysed[count])}"
            )
    finally:
        rtsp.kill()
        rtsp.wait()


if __name__ == "__main__":
    main()
