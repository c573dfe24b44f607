"""Advertising the service on the LAN with mDNS/DNS-SD, so that nobody needs its address.

The service announces itself as `_edge-server._tcp` (for its own client and CLI) and as
`_http._tcp` (so generic browsers and apps list its page), with python-zeroconf on the app's
event loop. It answers for a host name of its own, never the machine's `<hostname>.local.`,
which Avahi owns on a Raspberry Pi; both bind port 5353 side by side (SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import ifaddr
from zeroconf import DNSQuestionType, IPVersion
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from .. import __version__
from ..config.settings import MdnsMode, Settings
from ..core.errors import StartupError
from ..ops.identity import node_id
from ..serving.service import Service
from .browser import SERVICE_TYPE

log = logging.getLogger("edge_server")

HTTP_TYPE = "_http._tcp.local."
TYPES = (SERVICE_TYPE, HTTP_TYPE)
# The APIs every instance speaks, named as clients choose between them.
APIS = ("native", "deepstack", "kserve-v2")
TXT_VERSION = "1"
_LABEL_BYTES = 63  # one DNS label (RFC 1035 2.3.4); an instance name is one (RFC 6763 4.1.1)
_TXT_STRING_BYTES = 255  # one TXT string, key=value (RFC 6763 6.1)
_LOOK_FIRST = 1.0  # seconds of listening for instances already there before probing

IPAddress = IPv4Address | IPv6Address
# EDGE_HOST's wildcards, compared with here, never bound to.
_ANY_IPV4 = "0.0.0.0"  # noqa: S104
_ANY_IPV6 = "::"


@dataclass(frozen=True)
class InterfaceAddress:
    """One address of one network interface of this machine."""

    interface: str
    address: IPAddress


@dataclass(frozen=True)
class Plan:
    """What is advertised: the instance name, the host name, the addresses and the port."""

    name: str
    server: str
    addresses: tuple[IPAddress, ...]
    port: int


# --- the decision and what is advertised (pure) ---------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether EDGE_HOST is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    name = host.strip().lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ip_address(name).is_loopback
    except ValueError:  # a host name: the addresses it resolves to decide
        return False


def wanted(mode: MdnsMode, host: str) -> bool:
    """Whether to advertise: never when off, and not for a loopback host, which nothing on the
    LAN could connect to (a StartupError when EDGE_MDNS=on asks for it anyway)."""
    if mode is MdnsMode.off:
        return False
    if not is_loopback(host):
        return True
    if mode is MdnsMode.on:
        raise StartupError(
            f"EDGE_MDNS=on, but EDGE_HOST={host} is reachable from this machine only",
            fix="listen on the LAN (EDGE_HOST=0.0.0.0) or leave EDGE_MDNS at auto",
        )
    return False


def _serves(bound: str, address: IPAddress) -> bool:
    if bound == _ANY_IPV4:
        return address.version == 4
    if bound == _ANY_IPV6:  # a dual-stack socket on Linux: IPv4 as well
        # A link-local IPv6 address is useless in a URL: the client cannot know its zone.
        return address.version == 4 or not address.is_link_local
    try:
        return ip_address(bound) == address
    except ValueError:
        return False


def advertised_addresses(
    bound: Sequence[str], available: Iterable[InterfaceAddress], interfaces: Sequence[str] = ()
) -> list[IPAddress]:
    """The addresses a LAN client can connect to, IPv4 first: of the interface addresses, those
    the server listens on (`bound`: the wildcards 0.0.0.0 and ::, or addresses), never loopback,
    and only on the interfaces named in `interfaces` (names or addresses)."""
    allowed = set(interfaces)
    chosen: list[IPAddress] = []
    for entry in available:
        address = entry.address
        if address.is_loopback or address in chosen:
            continue
        if allowed and entry.interface not in allowed and str(address) not in allowed:
            continue
        if any(_serves(b, address) for b in bound):
            chosen.append(address)
    return sorted(chosen, key=lambda a: a.version)  # stable: interface order within a family


def instance_name(configured: str | None, hostname: str) -> str:
    """The name browsers show: EDGE_MDNS_NAME, else `edge-server on <host>` (one DNS label)."""
    if configured:
        return configured
    host = hostname.split(".")[0] or "localhost"
    return _truncated(f"edge-server on {host}", _LABEL_BYTES)


def server_name(node: str, port: int) -> str:
    """The host name this instance answers for: `edge-server-<node id>-<port>.local.`.

    Never the machine's own name (Avahi's). The port keeps two instances on one machine apart:
    the goodbye of one must not withdraw the address records the other still needs.
    """
    suffix = f"-{port}"
    return f"{f'edge-server-{node}'[: _LABEL_BYTES - len(suffix)]}{suffix}.local."


def txt_record(
    *,
    version: str,
    node: str,
    default_model: str,
    models: Sequence[str],
    key_required: bool,
) -> dict[str, str]:
    """The TXT record, in order (RFC 6763 6: `txtvers` first, short keys, short strings).

    `models` holds as many names as fit one 255-byte string; GET /v1/models has them all.
    """
    return {
        "txtvers": TXT_VERSION,
        "path": "/",
        "version": version,
        "id": node,
        "api": ",".join(APIS),
        "model": _truncated(default_model, _TXT_STRING_BYTES - len("model=")),
        "models": _fitting(models, _TXT_STRING_BYTES - len("models=")),
        "auth": "required" if key_required else "none",
    }


def _truncated(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore").rstrip()


def _fitting(names: Sequence[str], limit: int) -> str:
    kept: list[str] = []
    for name in names:
        if len(",".join([*kept, name]).encode()) > limit:
            break
        kept.append(name)
    return ",".join(kept)


# --- this machine and this service -----------------------------------------------------------


def interface_addresses() -> list[InterfaceAddress]:
    """Every address of every network interface, as the OS lists them."""
    found: list[InterfaceAddress] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            # ifaddr gives IPv6 as (address, flowinfo, scope id).
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                found.append(InterfaceAddress(adapter.nice_name, ip_address(text)))
            except ValueError:
                continue
    return found


def _bound_addresses(host: str) -> list[str]:
    """EDGE_HOST as addresses: itself when it is one (or a wildcard), else what it resolves to."""
    if host in (_ANY_IPV4, _ANY_IPV6):
        return [host]
    try:
        return [str(ip_address(host))]
    except ValueError:
        pass
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except OSError:
        return []


def plan(settings: Settings) -> Plan | None:
    """What to advertise under these settings, or None (off, loopback, nothing to advertise).

    With EDGE_MDNS=on, a setting that makes advertising impossible is a StartupError.
    """
    if not wanted(settings.mdns, settings.host):
        return None
    try:
        available = interface_addresses()
    except OSError as exc:  # e.g. a sandbox without netlink sockets
        _cannot(
            settings,
            f"cannot list the network interfaces: {exc}",
            fix="allow netlink sockets (systemd: RestrictAddressFamilies=AF_NETLINK), "
            "or set EDGE_MDNS=off",
        )
        return None
    if settings.port == 0:
        _cannot(
            settings,
            "EDGE_PORT=0 picks the port only once the server listens, too late to advertise",
            fix="set EDGE_PORT, or EDGE_MDNS=off",
        )
        return None
    addresses = advertised_addresses(
        _bound_addresses(settings.host), available, settings.mdns_interfaces
    )
    if not addresses:
        _cannot(
            settings,
            f"no LAN address to advertise: EDGE_HOST={settings.host} and "
            f"EDGE_MDNS_INTERFACES={','.join(settings.mdns_interfaces)!r} match no interface "
            "address",
            fix="check EDGE_HOST and EDGE_MDNS_INTERFACES against `ip addr`, or set EDGE_MDNS=off",
        )
        return None
    node = node_id(settings.node_id)
    return Plan(
        name=instance_name(settings.mdns_name, socket.gethostname()),
        server=server_name(node, settings.port),
        addresses=tuple(addresses),
        port=settings.port,
    )


def _cannot(settings: Settings, problem: str, *, fix: str) -> None:
    """No advertisement: a StartupError under EDGE_MDNS=on, else a warning (the service runs)."""
    if settings.mdns is MdnsMode.on:
        raise StartupError(f"EDGE_MDNS=on, but {problem}", fix=fix)
    log.warning("mDNS: not advertising: %s", problem)


def txt_for(service: Service) -> dict[str, str]:
    """The TXT record describing the service now (the one place that asks for its models)."""
    names = service.model_names()
    return txt_record(
        version=__version__,
        node=node_id(service.settings.node_id),
        default_model=names[0] if names else "",
        models=names,
        key_required=service.keys.enabled,
    )


# --- the responder ----------------------------------------------------------------------------


class Advertisement:
    """The registrations of one instance and the mDNS responder that answers for them.

    Registering (probing for a unique name, then announcing) takes about two seconds; it runs
    in the background so that the service is ready meanwhile. Updates wait for it.
    """

    def __init__(self, zeroconf: AsyncZeroconf, target: Plan, txt: dict[str, str]) -> None:
        self._zeroconf = zeroconf
        self._plan = target
        self._infos = [self._info(kind, f"{target.name}.{kind}", txt) for kind in TYPES]
        self._registered: list[AsyncServiceInfo] = []
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._run(self._register(), "registering")

    @classmethod
    def start(cls, target: Plan, txt: dict[str, str], *, required: bool) -> Advertisement | None:
        """Open the mDNS sockets on the advertised addresses and register (on the event loop).

        A failure to open them is a StartupError when advertising is `required`, else a warning.
        """
        ipv4_only = all(a.version == 4 for a in target.addresses)
        try:
            zeroconf = AsyncZeroconf(
                interfaces=[str(a) for a in target.addresses],
                ip_version=IPVersion.V4Only if ipv4_only else IPVersion.All,
            )
        except (OSError, RuntimeError) as exc:  # RuntimeError: an address gone meanwhile
            problem = f"cannot open mDNS sockets on {_listed(target.addresses)}: {exc}"
            if required:
                raise StartupError(
                    problem, fix="check that the interfaces are up with multicast on"
                ) from exc
            log.warning("mDNS: not advertising: %s", problem)
            return None
        return cls(zeroconf, target, txt)

    @property
    def names(self) -> list[str]:
        """The full service names registered so far (after any renaming on a clash)."""
        return [info.name for info in self._registered]

    def update(self, txt: dict[str, str]) -> None:
        """Announce a new TXT record (after the models changed), once registered."""
        self._run(self._update(txt), "updating")

    async def close(self) -> None:
        """Stop pending work, send goodbyes for what was registered, close the sockets."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._zeroconf.async_close()  # goodbye packets first (RFC 6762 10.1)
        if self._registered:
            log.info("mDNS: goodbye sent for %s", _quoted(self.names))

    async def _register(self) -> None:
        async with self._lock:
            await self._look_first()
            announcements = []
            for info in self._infos:
                announcements.append(
                    await self._zeroconf.async_register_service(info, allow_name_change=True)
                )
                self._registered.append(info)
            await asyncio.gather(*announcements)
        log.info(
            "mDNS: advertising %s at %s port %d",
            _quoted(self.names),
            _listed(self._plan.addresses),
            self._plan.port,
        )

    async def _look_first(self) -> None:
        """Learn the instances already advertised, so that a name clash renames this one.

        python-zeroconf's probe asks for unicast answers (RFC 6762 8.1), and when another
        instance on this machine answers so, only one of the sockets bound to port 5353 gets it
        (Avahi's, say). Asking for multicast answers first puts them in every socket's way.
        """
        browser = AsyncServiceBrowser(
            self._zeroconf.zeroconf,
            list(TYPES),
            handlers=[_ignore],
            question_type=DNSQuestionType.QM,
        )
        try:
            await asyncio.sleep(_LOOK_FIRST)
        finally:
            await browser.async_cancel()

    async def _update(self, txt: dict[str, str]) -> None:
        async with self._lock:
            updated = [self._info(info.type, info.name, txt) for info in self._registered]
            self._registered = updated
            await asyncio.gather(
                *[await self._zeroconf.async_update_service(info) for info in updated]
            )
        log.info("mDNS: TXT record updated: %s", ", ".join(f"{k}={v}" for k, v in txt.items()))

    def _info(self, kind: str, name: str, txt: dict[str, str]) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            kind,
            name,
            port=self._plan.port,
            properties=dict(txt),
            server=self._plan.server,
            parsed_addresses=[str(a) for a in self._plan.addresses],
        )

    def _run(self, work: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished(what))

    def _finished(self, what: str) -> Callable[[asyncio.Task[None]], None]:
        def report(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("mDNS: %s failed", what, exc_info=task.exception())

        return report


def _ignore(**_: object) -> None:
    """A browser handler for a browser run only to fill the cache."""


def _quoted(names: Iterable[str]) -> str:
    return " and ".join(repr(name) for name in names)


def _listed(addresses: Iterable[IPAddress]) -> str:
    return ", ".join(str(a) for a in addresses)


def advertise(service: Service, target: Plan | None) -> Advertisement | None:
    """Start advertising the service (on the event loop) and keep its TXT record in step with
    the loaded models; None when there is nothing to advertise."""
    if target is None:
        return None
    required = service.settings.mdns is MdnsMode.on
    advertisement = Advertisement.start(target, txt_for(service), required=required)
    if advertisement is not None:
        service.add_listener(lambda: advertisement.update(txt_for(service)))
    return advertisement
