"""A small client of a running edge-server, for scripts on the LAN: HTTP with the standard
library's urllib, answers checked against the service's own schemas (pydantic), and
python-zeroconf to find servers.

from edge_server.client import Client
answer = Client("http://192.168.1.20:8080").classify(open("photo.jpg", "rb").read())
print(answer.predictions[0].label)
people = Client("http://192.168.1.20:8080").segment(open("photo.jpg", "rb").read()).classes
servers = Client.discover()  # found by mDNS: [Instance(name='edge-server on pi', ...)]
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from .serving.schemas import (
    ClassifyResponse,
    DetectResponse,
    LearnedModelDescription,
    LearnedModelList,
    ModelList,
    PeopleImport,
    PeopleList,
    PersonRegistration,
    SegmentResponse,
)

if TYPE_CHECKING:
    from .lan.browser import Instance

# A named region's corners: (x, y) as fractions 0..1 of the image's width and height.
Corners = Sequence[Sequence[float]]

# Statuses that are about the image sent, not the server or the credentials: other images of
# the same run may still succeed.
IMAGE_STATUSES = frozenset({400, 413, 415, 422})

Answer = TypeVar("Answer", bound=BaseModel)


class ClientError(Exception):
    """The request failed; the message says what happened and, where it can, what to do."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(ClientError):
    """No HTTP answer: wrong address, server down, or a timeout."""


class Refused(ClientError):
    """The server answered with an error status."""


@dataclass(frozen=True)
class Client:
    """An edge-server at `url` (e.g. http://192.168.1.20:8080), optionally with an API key."""

    url: str
    api_key: str | None = None
    timeout: float = 60.0

    @staticmethod
    def discover(timeout: float = 3.0) -> list[Instance]:
        """The edge-servers that answer on the LAN (mDNS/DNS-SD) within `timeout` seconds, by
        name; each has a `url` to make a Client with."""
        # Imported on use: a script that never discovers never loads zeroconf.
        from .lan.browser import discover

        try:
            return discover(timeout)
        except (OSError, RuntimeError) as exc:  # no interface to listen on, port 5353 refused
            raise ClientError(f"cannot look for edge-servers by mDNS: {exc}") from exc

    def __post_init__(self) -> None:
        scheme = urllib.parse.urlsplit(self.url).scheme
        if scheme not in ("http", "https"):
            raise ClientError(f"{self.url!r} is not an http:// or https:// URL")

    def classify(
        self,
        image: bytes,
        *,
        top_k: int | None = None,
        threshold: float | None = None,
        crop: str | None = None,
        model: str | None = None,
        resize: str | None = None,
    ) -> ClassifyResponse:
        """Classify one encoded image (JPEG, PNG, ...) with the default model or the one named;
        `resize` (squash, center-crop, letterbox) overrides the model's fit. Raises
        ClientError on failure."""
        parameters = (
            ("top_k", top_k),
            ("threshold", threshold),
            ("crop", crop),
            ("model", model),
            ("resize", resize),
        )
        query = {name: str(value) for name, value in parameters if value is not None}
        path = "/classify" + ("?" + urllib.parse.urlencode(query) if query else "")
        # A raw body: no multipart encoding to get wrong, and the server sniffs the format.
        answer = self._request("POST", path, image, {"Content-Type": "application/octet-stream"})
        return _parsed(ClassifyResponse, answer, self.url)

    def detect(
        self,
        image: bytes,
        *,
        min_score: float | None = None,
        max_results: int | None = None,
        labels: Sequence[str] | None = None,
        crop: str | None = None,
        model: str | None = None,
        resize: str | None = None,
    ) -> DetectResponse:
        """The objects in one encoded image, from the first served detector or the one named;
        boxes in pixels of the upright image; `resize` as `classify` takes it. Raises
        ClientError on failure."""
        parameters = (
            ("min_score", min_score),
            ("max_results", max_results),
            ("labels", ",".join(labels) if labels else None),
            ("crop", crop),
            ("model", model),
            ("resize", resize),
        )
        query = {name: str(value) for name, value in parameters if value is not None}
        path = "/detect" + ("?" + urllib.parse.urlencode(query) if query else "")
        answer = self._request("POST", path, image, {"Content-Type": "application/octet-stream"})
        return _parsed(DetectResponse, answer, self.url)

    def segment(
        self,
        image: bytes,
        *,
        mask: bool = False,
        regions: Mapping[str, Corners] | None = None,
        crop: str | None = None,
        model: str | None = None,
        resize: str | None = None,
    ) -> SegmentResponse:
        """Which pixels of one encoded image are what, from the first served segmenter or the
        one named: every class present with its share and box; with `regions` (name ->
        corners as fractions, e.g. {"driveway": [(0.1, 0.5), (0.6, 0.5), (0.6, 1), (0.1, 1)]})
        what covers each; with `mask` the full-size class map (a base64 palette PNG, `mask.data`).
        Raises ClientError on failure."""
        query = _query(
            ("mask", "png" if mask else None),
            ("regions", _regions(regions)),
            ("crop", crop),
            ("model", model),
            ("resize", resize),
        )
        answer = self._request(
            "POST", "/segment" + query, image, {"Content-Type": "application/octet-stream"}
        )
        return _parsed(SegmentResponse, answer, self.url)

    def segment_picture(
        self,
        image: bytes,
        *,
        format: str = "overlay",
        labels: Sequence[str] | None = None,
        crop: str | None = None,
        model: str | None = None,
        resize: str | None = None,
    ) -> bytes:
        """A picture of the segmentation: `overlay` (JPEG, the classes tinted over the photo),
        `cutout` (PNG, the `labels` classes on transparency; default every class but
        background), `blur` or `fill` (JPEG, the `labels` classes hidden; default person).
        Raises ClientError on failure."""
        query = _query(
            ("format", format),
            ("labels", ",".join(labels) if labels else None),
            ("crop", crop),
            ("model", model),
            ("resize", resize),
        )
        headers = {"Content-Type": "application/octet-stream", "Accept": "image/*"}
        picture: bytes = self._request("POST", "/segment" + query, image, headers, raw=True)
        return picture

    def learn(
        self, name: str, label: str, images: Sequence[bytes], *, crop: str | None = None
    ) -> LearnedModelDescription:
        """Teach learned model `name` the class `label` from encoded photos (created on first
        use); needs the server's API key. Raises ClientError on failure."""
        fields: list[tuple[str, str, bytes]] = [("label", "", label.encode())]
        if crop is not None:
            fields.append(("crop", "", crop.encode()))
        fields += [("image", f"photo{n}", data) for n, data in enumerate(images)]
        body, content_type = _multipart(fields)
        path = f"/v1/learned/{urllib.parse.quote(name, safe='')}/examples"
        answer = self._request("POST", path, body, {"Content-Type": content_type})
        return _parsed(LearnedModelDescription, answer, self.url)

    def learned(self) -> LearnedModelList:
        """The learned models, their classes and example counts (`GET /v1/learned`)."""
        return _parsed(LearnedModelList, self._request("GET", "/v1/learned"), self.url)

    def export_learned(self, name: str) -> bytes:
        """A learned model's export file (everything needed to rebuild it elsewhere)."""
        path = f"/v1/learned/{urllib.parse.quote(name, safe='')}/export"
        raw: bytes = self._request("GET", path, raw=True)
        return raw

    def import_learned(self, name: str, export: bytes) -> LearnedModelDescription:
        """Create or replace learned model `name` from an export file; needs the API key."""
        path = f"/v1/learned/{urllib.parse.quote(name, safe='')}"
        answer = self._request("PUT", path, export, {"Content-Type": "application/octet-stream"})
        return _parsed(LearnedModelDescription, answer, self.url)

    def add_person(self, name: str, photos: Sequence[bytes]) -> PersonRegistration:
        """Register encoded photos of `name` (created on first use; every photo is added);
        needs the server's API key. Raises ClientError on failure (400: a photo with no face,
        and nothing was stored)."""
        fields = [("name", "", name.encode())]
        fields += [("image", f"photo{n}", data) for n, data in enumerate(photos)]
        body, content_type = _multipart(fields)
        answer = self._request("POST", "/v1/faces", body, {"Content-Type": content_type})
        return _parsed(PersonRegistration, answer, self.url)

    def people(self) -> PeopleList:
        """The people registered (`GET /v1/faces`)."""
        return _parsed(PeopleList, self._request("GET", "/v1/faces"), self.url)

    def remove_person(self, name: str) -> None:
        """Forget `name` and their face descriptors; needs the API key (404: nobody so named)."""
        self._request("DELETE", f"/v1/faces/{urllib.parse.quote(name, safe='')}", raw=True)

    def export_people(self) -> bytes:
        """Every registered person's face descriptors, as a file `import_people` takes."""
        raw: bytes = self._request("GET", "/v1/faces/export", raw=True)
        return raw

    def import_people(self, export: bytes) -> PeopleImport:
        """Add the people of an export file to those registered; needs the API key."""
        headers = {"Content-Type": "application/octet-stream"}
        answer = self._request("POST", "/v1/faces/import", export, headers)
        return _parsed(PeopleImport, answer, self.url)

    def models(self) -> ModelList:
        """The loaded models, the default first, and how they run (`GET /v1/models`)."""
        return _parsed(ModelList, self._request("GET", "/v1/models"), self.url)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        raw: bool = False,
    ) -> Any:
        all_headers = {"Accept": "application/json", **(headers or {})}
        if self.api_key:
            all_headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.url.rstrip("/") + path
        # The scheme was checked to be http(s) when the client was made (S310's concern).
        request = urllib.request.Request(url, data=body, headers=all_headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer = response.read()
        except urllib.error.HTTPError as exc:
            raise _refusal(exc, self.url) from exc
        except urllib.error.URLError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc.reason}") from exc
        except TimeoutError as exc:
            raise Unreachable(f"no answer from {self.url} within {self.timeout:g} s") from exc
        except OSError as exc:  # connection reset mid-answer and the like
            raise Unreachable(f"the connection to {self.url} failed: {exc}") from exc
        if raw:
            return answer
        try:
            return json.loads(answer)
        except ValueError as exc:
            raise ClientError(f"{self.url} answered something that is not JSON") from exc


def _query(*parameters: tuple[str, object]) -> str:
    """`?name=value&...` of the parameters given (None left out), or "" when none is."""
    query = {name: str(value) for name, value in parameters if value is not None}
    return "?" + urllib.parse.urlencode(query) if query else ""


def _regions(regions: Mapping[str, Corners] | None) -> str | None:
    """`regions=`'s compact JSON: the server reads at most 4,096 characters of it."""
    if not regions:
        return None
    document = {name: [[x, y] for x, y in corners] for name, corners in regions.items()}
    return json.dumps(document, separators=(",", ":"))


def _multipart(fields: Sequence[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (field, file name or "" for text, value), and its type."""
    boundary = "edge-server-" + secrets.token_hex(12)
    parts: list[bytes] = []
    for field, filename, value in fields:
        disposition = f'form-data; name="{field}"'
        if filename:
            disposition += f'; filename="{filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if filename:
            head += "Content-Type: application/octet-stream\r\n"
        parts.append(head.encode() + b"\r\n" + value + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _refusal(exc: urllib.error.HTTPError, url: str) -> Refused:
    status = exc.code
    detail = ""
    try:
        body = json.loads(exc.read())
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("error") or "")
    except (ValueError, OSError):
        pass
    message = f"{url} refused the request: {status} {exc.reason}"
    if detail:
        message += f": {detail}"
    if status in (401, 403):
        message += " (check the API key: --api-key)"
    return Refused(message, status=status)


def _parsed(model: type[Answer], answer: object, url: str) -> Answer:
    try:
        return model.model_validate(answer)
    except ValidationError as exc:
        raise ClientError(f"{url} answered in an unexpected shape; is it an edge-server?") from exc
