"""`POST /classify` with JSON `{"image": "<base64>"}`, for clients that cannot send multipart."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest

Photo = Callable[[str], bytes]


def test_base64_json_classifies(http: httpx.Client, photo: Photo) -> None:
    """Plain base64 and a line-wrapped data: URL both classify (charset parameter allowed)."""
    data = photo("coffee.png")
    bodies = [
        {"image": base64.b64encode(data).decode()},
        {"image": "data:image/png;base64," + base64.encodebytes(data).decode()},
    ]
    for body in bodies:
        response = http.post(
            "/classify",
            content=json.dumps(body),
            headers={"Content-Type": "application/json; charset=utf-8"},
            params={"top_k": 1},
        )
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["label"] == "espresso"


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("not json", b"{image:", 400, "cannot be parsed"),
    ("no image member", b'{"picture": "AAAA"}', 400, 'no "image" member'),
    ("a list", b'["AAAA"]', 400, 'no "image" member'),
    ("image not a string", b'{"image": 12}', 400, "base64 string"),
    ("bad base64", b'{"image": "@@not base64@@"}', 400, "not valid base64"),
    ("empty image", b'{"image": ""}', 400, "empty"),
    ("not an image", b'{"image": "aGVsbG8gd29ybGQ="}', 400, "not an image"),
    ("too big", b'{"image": "' + b"A" * 2_100_000 + b'"}', 413, "EDGE_MAX_UPLOAD_BYTES"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "detail"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES]
)
def test_bad_json_bodies_are_4xx_problem_json(
    http: httpx.Client, case: str, body: bytes, status: int, detail: str
) -> None:
    """Each bad JSON body gets its 4xx problem+json with the same limits as other uploads."""
    response = http.post("/classify", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
