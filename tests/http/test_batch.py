"""`POST /classify/batch`: several images in one request, answered item by item, in order."""

from __future__ import annotations

from collections.abc import Callable

import httpx

Photo = Callable[[str], bytes]


def test_each_image_gets_its_answer_or_its_problem_in_order(
    http: httpx.Client, photo: Photo
) -> None:
    """A file that is not an image becomes a per-item problem; the photos around it classify."""
    response = http.post(
        "/classify/batch",
        params={"top_k": 2},
        files=[
            ("images", ("grace_hopper.jpg", photo("grace_hopper.jpg"))),
            ("images", ("notes.txt", b"just some text")),
            ("images", ("parrot.jpg", photo("parrot.jpg"))),
        ],
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["file"], i["status"]) for i in items] == [
        ("grace_hopper.jpg", 200),
        ("notes.txt", 400),
        ("parrot.jpg", 200),
    ]
    assert "not an image" in items[1]["problem"]["detail"]
    assert items[1]["problem"]["instance"] == "/classify/batch"
    labels = [i["result"]["predictions"][0]["label"] for i in (items[0], items[2])]
    assert labels == ["military uniform", "macaw"]
    assert all(len(i["result"]["predictions"]) == 2 for i in (items[0], items[2]))
    assert "result" not in items[1] and "problem" not in items[0]


def test_a_text_value_in_the_images_field_is_a_malformed_form(
    http: httpx.Client, photo: Photo
) -> None:
    """A text part where an image file belongs makes the whole request a 400."""
    response = http.post(
        "/classify/batch",
        data={"images": "grace_hopper.jpg"},
        files=[("images", ("parrot.jpg", photo("parrot.jpg")))],
    )
    assert response.status_code == 400
    assert "holds text" in response.json()["detail"]


def test_a_form_without_images_is_400(http: httpx.Client, photo: Photo) -> None:
    """Sending `image` instead of the repeated `images` field is a 400 that names the field."""
    response = http.post("/classify/batch", files={"image": photo("coffee.png")})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "no 'images' field" in response.json()["detail"]


def test_more_images_than_the_limit_is_413(http: httpx.Client) -> None:
    """More files than EDGE_MAX_BATCH_IMAGES (16) is a 413 naming the setting, before decoding."""
    files = [("images", (f"{i}.jpg", b"x")) for i in range(17)]
    response = http.post("/classify/batch", files=files)
    assert response.status_code == 413
    assert "EDGE_MAX_BATCH_IMAGES" in response.json()["detail"]


def test_batch_needs_multipart(http: httpx.Client) -> None:
    """A raw body on the batch route is a 415 problem+json showing the multipart form."""
    response = http.post(
        "/classify/batch", content=b"\xff\xd8", headers={"Content-Type": "image/jpeg"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert "-F images=@a.jpg" in response.json()["detail"]
