"""Finding edge-servers on the LAN by mDNS/DNS-SD, for the client and `edge-server discover`.

The browser listens for `_edge-server._tcp` announcements and answers for a few seconds,
resolves each instance (address records, port, TXT record) and reads what its TXT record says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

SERVICE_TYPE = "_edge-server._tcp.local."
DEFAULT_TIMEOUT = 3.0
# A service found near the end of the wait still gets this long to answer the resolve query.
_RESOLVE_AT_LEAST = 1.0


@dataclass(frozen=True)
class Instance:
    """One edge-server found on the LAN, as its advertisement describes it."""

    name: str
    addresses: tuple[str, ...]
    port: int
    server: str
    version: str | None = None
    id: str | None = None
    apis: tuple[str, ...] = ()
    model: str | None = None
    models: tuple[str, ...] = ()
    api_key_required: bool | None = None  # None: the record does not say

    @property
    def url(self) -> str:
        """The base URL on its first address (IPv4 first), e.g. http://192.168.1.20:8080."""
        host = self.addresses[0] if self.addresses else self.server.rstrip(".")
        if ":" in host:  # IPv6, with its zone (if any) escaped as RFC 6874 says
            host = "[" + host.replace("%", "%25") + "]"
        return f"http://{host}:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description, with the URL."""
        fields = asdict(self)
        return {
            "name": self.name,
            "url": self.url,
            **{key: list(v) if isinstance(v, tuple) else v for key, v in fields.items()},
        }


def instance(
    full_name: str,
    *,
    server: str,
    addresses: list[str],
    port: int,
    txt: Mapping[str, str | None],
) -> Instance:
    """What a resolved advertisement says, read leniently (unknown keys are ignored)."""

    def listed(key: str) -> tuple[str, ...]:
        return tuple(item for item in (txt.get(key) or "").split(",") if item)

    auth = txt.get("auth")
    return Instance(
        name=full_name.removesuffix("." + SERVICE_TYPE),
        addresses=tuple(addresses),
        port=port,
        server=server,
        version=txt.get("version"),
        id=txt.get("id"),
        apis=listed("api"),
        model=txt.get("model"),
        models=listed("models"),
        api_key_required=None if auth not in ("required", "none") else auth == "required",
    )


async def browse(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interfaces: InterfaceChoice | list[str] = InterfaceChoice.All,
) -> list[Instance]:
    """The instances that announce themselves or answer within `timeout` seconds, by name."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    present: set[str] = set()
    resolving: dict[str, asyncio.Task[Instance | None]] = {}

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:  # a goodbye
            present.discard(name)
            return
        present.add(name)
        # Resolve again on an update: the TXT record changed.
        wait = max(deadline - loop.time(), _RESOLVE_AT_LEAST)
        previous = resolving.get(name)
        if previous is not None:
            previous.cancel()
        resolving[name] = loop.create_task(_resolve(zeroconf, name, wait))

    # IPv4 multicast only: IPv6 sockets wait out duplicate address detection on fresh links,
    # and the IPv4 answers carry an instance's IPv6 addresses too.
    async with AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only) as zeroconf:
        browser = AsyncServiceBrowser(zeroconf.zeroconf, [SERVICE_TYPE], handlers=[on_change])
        try:
            await asyncio.sleep(timeout)
        finally:
            await browser.async_cancel()
        found = await asyncio.gather(*resolving.values(), return_exceptions=True)
    return sorted(
        (
            item
            for item in found
            if isinstance(item, Instance) and f"{item.name}.{SERVICE_TYPE}" in present
        ),
        key=lambda item: item.name,
    )


async def _resolve(zeroconf: Zeroconf, name: str, wait: float) -> Instance | None:
    info = AsyncServiceInfo(SERVICE_TYPE, name)
    if not await info.async_request(zeroconf, int(wait * 1000)) or info.port is None:
        return None
    return instance(
        name,
        server=info.server or "",
        addresses=info.parsed_scoped_addresses(IPVersion.All),
        port=info.port,
        txt=info.decoded_properties,
    )


def discover(timeout: float = DEFAULT_TIMEOUT) -> list[Instance]:
    """The edge-servers on the LAN (blocks for `timeout` seconds; in async code, await
    `browse` instead)."""
    return asyncio.run(browse(timeout))
