"""The cameras to watch: `EDGE_CAMERAS` (name=URL pairs), the events' dialect and webhooks, and
one `CameraConfig` per camera, merged with its `[cameras.NAME]` table of the models config.

A camera URL usually carries a password (`rtsp://admin:secret@192.168.1.30:554/...`), so
EDGE_CAMERAS is a secret setting (never echoed, as EDGE_MQTT_URL) and every URL that reaches a
log line, a status or an error goes through `redact()` first.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .lists import CommaList

# Camera names travel in URL paths, MQTT topics and metric labels: the same plain names as
# models and sources.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
SCHEMES = ("rtsp", "rtsps", "http", "https")
# Query parameters that carry a credential in the cameras' own URL forms (Reolink's
# `?user=admin&password=...`, Tapo and others' tokens).
_SECRET_PARAMS = {"password", "pass", "pwd", "passwd", "token", "access_token", "key", "auth"}

DEFAULT_LABELS = ("person", "car", "cat", "dog", "bird")

Point = tuple[float, float]


def redact(url: str) -> str:
    """`url` with its password and any credential in its query replaced by `***`.

    A URL that does not parse is reduced to its scheme, so a typo never shows a password.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unclosed '[' in the host
        scheme = url.split(":", 1)[0] if ":" in url else ""
        return f"{scheme}://***" if scheme.isalpha() else "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if has_password else f"{user}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def check_camera_url(url: str) -> str:
    """`url` stripped; ValueError (with the URL redacted) unless rtsp(s) or http(s) with a host."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{redact(url)} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(
            f"{redact(url)}: a camera URL starts with rtsp://, rtsps://, http:// or https:// "
            "(e.g. rtsp://user:password@192.168.1.30:554/h264Preview_01_sub)"
        )
    if not parts.hostname:
        raise ValueError(f"{redact(url)} names no host")
    return url


def check_camera_name(name: str) -> str:
    """`name` unchanged; ValueError unless it is a plain name (letters, digits, `_`, `-`)."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"camera name {name!r} must be letters, digits, '_' or '-' "
            "(at most 64, e.g. front_door)"
        )
    return name


def parse_cameras(value: str) -> dict[str, str]:
    """EDGE_CAMERAS's `name=URL` pairs, comma-separated, as a mapping; ValueError (passwords
    redacted) for a pair without both halves, a bad name or URL, or a name given twice.

    A URL holding a comma must percent-encode it (`%2C`), as any URL may.
    """
    cameras: dict[str, str] = {}
    for pair in (item.strip() for item in value.split(",")):
        if not pair:
            continue
        name, sep, url = pair.partition("=")
        name = name.strip()
        if not sep or not name or not url.strip():
            raise ValueError(
                f"{redact(pair)!r} is not name=URL (e.g. front=rtsp://user:password@"
                "192.168.1.30:554/sub,door=http://192.168.1.31:81/stream)"
            )
        check_camera_name(name)
        if name in cameras:
            raise ValueError(f"camera {name!r} is given twice")
        cameras[name] = check_camera_url(url)
    return cameras


class CameraSettings(BaseModel):
    """The cameras watched (off unless EDGE_CAMERAS or a [cameras.NAME] table names one), how
    their events are published, and where they are posted."""

    cameras: SecretStr | None = Field(
        None,
        description="Cameras to watch, comma-separated name=URL pairs (rtsp://, or http:// "
        "for MJPEG streams and snapshot URLs; e.g. front=rtsp://user:password@192.168.1.30:"
        "554/sub,door=http://192.168.1.31:81/stream); never logged. [cameras.NAME] tables in "
        "the models config set the rest. Unset = no cameras.",
    )
    camera_events: Literal["edge", "frigate"] = Field(
        "edge",
        description="MQTT topics of camera events: edge (<prefix>/events and <prefix>/<camera>/"
        "...) or frigate (frigate/events and frigate/<camera>/..., for Frigate's tools).",
    )
    camera_webhooks: CommaList = Field(
        [],
        description="URLs that each camera event is POSTed to as JSON, comma-separated "
        "(for a LAN without an MQTT broker).",
    )

    @field_validator("cameras")
    @classmethod
    def _camera_pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_cameras(value.get_secret_value())  # ValueError names the bad pair, redacted
        return value

    @field_validator("camera_webhooks")
    @classmethod
    def _webhook_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
                raise ValueError(f"{redact(url)} is not an http:// or https:// URL")
        return value

    def camera_urls(self) -> dict[str, str]:
        """EDGE_CAMERAS as name -> URL (empty when unset)."""
        return parse_cameras(self.cameras.get_secret_value()) if self.cameras else {}


class CameraTable(BaseModel):
    """One `[cameras.NAME]` table of the models config; a field left out follows EDGE_CAMERAS
    (the URL) or the default."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    detector: str | None = None
    fps: Annotated[float, Field(gt=0, le=60)] | None = None
    labels: list[str] | None = None
    min_score: Annotated[float, Field(gt=0, le=1)] | None = None
    threshold: Annotated[float, Field(gt=0, le=1)] | None = None
    classify: str | None = None
    zones: dict[str, list[Point]] | None = None
    masks: list[list[Point]] | None = None
    snapshot_interval: Annotated[float, Field(gt=0, le=3600)] | None = None
    motion_threshold: Annotated[int, Field(ge=1, le=255)] | None = None
    motion_contour_area: Annotated[int, Field(ge=1)] | None = None
    stationary_interval: Annotated[float, Field(gt=0)] | None = None
    faces: bool | None = None
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_camera_url(value)


def _polygon(points: list[Point], what: str) -> list[Point]:
    if len(points) < 3:
        raise ValueError(f"{what} needs at least 3 points, got {len(points)}")
    for x, y in points:
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise ValueError(f"{what}: point ({x}, {y}) is outside 0-1 (points are fractions)")
    return points


class CameraConfig(BaseModel):
    """One camera, resolved: its URL and how it is watched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str = Field(repr=False)
    detector: str | None = None  # None: the served detection model
    fps: Annotated[float, Field(gt=0, le=60)] = 5.0
    labels: tuple[str, ...] = DEFAULT_LABELS
    min_score: Annotated[float, Field(gt=0, le=1)] = 0.5  # a detection counts
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.7  # median of recent scores confirms
    classify: str | None = None
    zones: dict[str, tuple[Point, ...]] = Field(default_factory=dict)
    masks: tuple[tuple[Point, ...], ...] = ()
    snapshot_interval: Annotated[float, Field(gt=0, le=3600)] = 1.0
    motion_threshold: Annotated[int, Field(ge=1, le=255)] = 30  # Frigate's default
    motion_contour_area: Annotated[int, Field(ge=1)] = 10  # Frigate's default
    stationary_interval: Annotated[float, Field(gt=0)] = 10.0
    # Name the people in confirmed person objects (their sub_label); None: whenever the face
    # service is on (cameras/face_names.py says why that is cheap).
    faces: bool | None = None
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_camera_name(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_camera_url(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not label.strip() for label in value) or len(set(value)) < len(value):
            raise ValueError(f"labels {list(value)} is empty or has an empty or repeated label")
        return value

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: dict[str, tuple[Point, ...]]) -> dict[str, tuple[Point, ...]]:
        for name, points in value.items():
            check_camera_name(name)
            _polygon(list(points), f"zone {name!r}")
        return value

    @field_validator("masks")
    @classmethod
    def _masks(cls, value: tuple[tuple[Point, ...], ...]) -> tuple[tuple[Point, ...], ...]:
        for i, points in enumerate(value):
            _polygon(list(points), f"mask {i + 1}")
        return value

    @property
    def redacted_url(self) -> str:
        """The URL as logs and status show it."""
        return redact(self.url)


def camera_configs(urls: dict[str, str], tables: dict[str, CameraTable]) -> dict[str, CameraConfig]:
    """Every camera from EDGE_CAMERAS (`urls`) and the models config's tables; the table wins
    field by field. ValueError names a camera with no URL or a bad name or field."""
    configs: dict[str, CameraConfig] = {}
    for name in [*urls, *(n for n in tables if n not in urls)]:
        table = tables.get(name, CameraTable())
        fields = table.model_dump(exclude_none=True)
        url = fields.pop("url", None) or urls.get(name)
        if url is None:
            raise ValueError(
                f"[cameras.{name}] has no url, and EDGE_CAMERAS names no camera {name!r}"
            )
        try:
            configs[name] = CameraConfig.model_validate({"name": name, "url": url, **fields})
        except ValidationError as exc:
            # pydantic's own text repeats each bad input, and a bad URL's input is a password
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"camera {name!r}: {problems}") from None
    return configs
