"""Detection on a picture already decoded (a camera frame): the same answer as an upload's."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from edge_server.config.settings import Settings
from edge_server.core.errors import BadImage
from edge_server.core.region import Region
from edge_server.serving.schemas import DetectResponse

from conftest import DETECTOR, SMALL_MODEL
from support.services import running_service

Photo = Callable[[str], bytes]


def _objects(answer: DetectResponse) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    return [
        (d.label, d.score, (d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max))
        for d in answer.detections
    ]


@pytest.mark.parametrize("name", ["kite_and_cold.jpg", "grace_hopper.jpg"])
def test_a_decoded_frame_gives_the_detections_of_its_png_upload(
    settings_for: Callable[..., Settings], photo: Photo, name: str
) -> None:
    """A photo decoded to RGB and given as a frame finds the objects, scores and pixel boxes
    that /detect's pipeline finds in the same pixels sent as a PNG, with and without a region,
    and sub labels through the same classifier."""
    rgb = np.asarray(Image.open(io.BytesIO(photo(name))).convert("RGB"))
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, "PNG")
    region = Region(0.1, 0.0, 0.9, 1.0)
    with running_service(settings_for([DETECTOR, SMALL_MODEL])) as (service, loop):

        def both(
            region: Region | None, classify: str | None = None
        ) -> tuple[DetectResponse, DetectResponse]:
            async def run() -> tuple[DetectResponse, DetectResponse]:
                upload = await service.detect(
                    png.getvalue(),
                    min_score=0.3,
                    max_results=50,
                    started=0.0,
                    region=region,
                    classify=classify,
                )
                frame = await service.detect_picture(
                    rgb,
                    model=None,
                    min_score=0.3,
                    wanted=None,
                    max_results=50,
                    region=region,
                    classify=classify,
                )
                return upload, frame

            return loop.run_until_complete(run())

        for part in (None, region):
            upload, frame = both(part)
            assert upload.detections, f"nothing found in {name}"
            assert _objects(frame) == _objects(upload)
            assert (frame.image.width, frame.image.height) == (rgb.shape[1], rgb.shape[0])
            assert frame.image.format == "RGB"
        upload, frame = both(None, SMALL_MODEL)
        assert [(d.sub_label, d.sub_score) for d in frame.detections] == [
            (d.sub_label, d.sub_score) for d in upload.detections
        ]
        assert all(d.sub_label for d in frame.detections)


def test_a_picture_that_is_not_rgb_is_refused(settings_for: Callable[..., Settings]) -> None:
    """A grey (H, W) array is a BadImage naming the shape, not a crash in the fit."""
    with running_service(settings_for([DETECTOR])) as (service, loop):
        grey = np.zeros((120, 160), np.uint8)
        with pytest.raises(BadImage, match=r"\(120, 160\)"):
            loop.run_until_complete(
                service.detect_picture(grey, region=None, model=None, min_score=0.5, wanted=None)
            )
