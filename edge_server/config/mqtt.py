"""The broker to connect to, from EDGE_MQTT_URL (`mqtt://user:password@host:port`)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how to log in; the password never appears in `str()`."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Broker({self})"


def parse_broker_url(url: str) -> Broker:
    """The broker of an `mqtt://` or `mqtts://` URL; ValueError says what is wrong.

    User and password may be percent-encoded (a `@` or `:` in a password is `%40`, `%3A`).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise ValueError(f"not a valid broker URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(
            "must start with mqtt:// or mqtts:// (e.g. mqtt://user:password@192.168.1.10:1883)"
        )
    if not parts.hostname:
        raise ValueError("names no broker host (e.g. mqtt://192.168.1.10:1883)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be only scheme, user, password, host and port")
    return Broker(
        host=parts.hostname,
        port=port or SCHEMES[scheme],
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
