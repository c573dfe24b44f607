"""Who this instance is on the LAN: a short id that stays the same across restarts.

MQTT topics and Home Assistant's unique ids, and the mDNS TXT record, name the instance by it,
so a restarted service is the same device to everything that saw it before. It is derived from
the machine id (as systemd's `sd_id128_get_machine_app_specific` does, so the machine id itself
is not disclosed), or set outright by EDGE_NODE_ID (containers, where /etc/machine-id is
usually absent or shared by every copy of an image).
"""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

_APP = b"edge-server"
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def machine_id(root: Path = Path("/")) -> str | None:
    """The host's machine id (systemd's, else D-Bus's), or None where neither exists."""
    for name in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            text = (root / name).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text
    return None


def node_id(configured: str | None = None, *, root: Path = Path("/")) -> str:
    """A stable id of 12 hex digits (or the configured one, made topic- and DNS-safe).

    Without a machine id it falls back to the host name, which is stable on a Pi but not in a
    container: set EDGE_NODE_ID there.
    """
    if configured:
        safe = _UNSAFE.sub("-", configured.strip().lower()).strip("-")
        if safe:
            return safe[:63]
    seed = machine_id(root) or socket.gethostname()
    return hashlib.sha256(_APP + b":" + seed.encode()).hexdigest()[:12]
