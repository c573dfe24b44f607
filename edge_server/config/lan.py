"""This node on the LAN: its id, its address for others, mDNS/DNS-SD, and board health."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from .lists import CommaList


class MdnsMode(StrEnum):
    """Whether the service advertises itself on the LAN with mDNS/DNS-SD."""

    auto = "auto"  # when it listens on a LAN address, not when it listens on loopback only
    on = "on"  # as auto, but a failure to advertise stops the start
    off = "off"


def check_http_url(value: str | None) -> str | None:
    """Raise ValueError unless `value` is None or an http(s) URL."""
    if value is not None and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


class LanSettings(BaseModel):
    """How this instance is named and found on the LAN, and where its board reports health."""

    node_id: str | None = Field(
        None,
        description="This instance's id on the LAN (MQTT topics, mDNS); default: derived from "
        "the machine id, stable across restarts.",
    )
    mdns: MdnsMode = Field(
        MdnsMode.auto,
        description="Advertise on the LAN with mDNS/DNS-SD: auto (when EDGE_HOST is not "
        "loopback), on (a failure to advertise stops the start), off.",
    )
    mdns_interfaces: CommaList = Field(
        [],
        description="Comma-separated interface names or addresses to advertise on; empty = "
        "every non-loopback interface the service listens on.",
    )
    mdns_name: str | None = Field(
        None,
        description="Instance name that browsers show; default 'edge-server on <hostname>' "
        "(a number is appended when another instance has the name).",
    )
    public_url: str | None = Field(
        None,
        description="The service's address as LAN devices reach it (Home Assistant's link to "
        "the page); default: http://<host name>:<port>/.",
    )
    sysfs_root: Path = Field(
        Path("/"), description="Root of /sys and /proc for board health (tests use a fake)."
    )

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @field_validator("mdns_name")
    @classmethod
    def _dns_sd_instance_name(cls, value: str | None) -> str | None:
        # RFC 6763 4.1.1: one DNS label of UTF-8, at most 63 bytes, no control characters.
        if value is None:
            return None
        value = value.strip()
        if not value or len(value.encode()) > 63:
            raise ValueError("must be 1 to 63 bytes of UTF-8")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("must not contain control characters")
        if "." in value:  # python-zeroconf would split the label at the dot
            raise ValueError("must not contain a dot")
        return value
