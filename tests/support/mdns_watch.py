"""Print each change to the `_edge-server._tcp` instances in sight, one JSON line per event.

The LAN tests run it in a network namespace of their own and read its output: a browser that
stays up sees goodbyes and TXT updates, which a fresh `edge-server discover` cannot show.
"""

from __future__ import annotations

import asyncio
import json

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edge_server.lan.browser import SERVICE_TYPE


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def describe(zeroconf: Zeroconf, name: str, event: str) -> None:
    info = AsyncServiceInfo(SERVICE_TYPE, name)
    await info.async_request(zeroconf, 3000)
    emit(event=event, name=name, port=info.port, txt=info.decoded_properties)


async def main() -> None:
    tasks: set[asyncio.Task[None]] = set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            emit(event="removed", name=name)
            return
        task = asyncio.ensure_future(describe(zeroconf, name, state_change.name.lower()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async with AsyncZeroconf(ip_version=IPVersion.V4Only) as zeroconf:
        browser = AsyncServiceBrowser(zeroconf.zeroconf, [SERVICE_TYPE], handlers=[on_change])
        emit(event="ready")
        try:
            await asyncio.Event().wait()  # until the test ends the process
        finally:
            await browser.async_cancel()


if __name__ == "__main__":
    asyncio.run(main())
