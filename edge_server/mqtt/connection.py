"""The MQTT client of the service: connects in the background, classifies image messages,
announces to Home Assistant, and keeps doing so across broker restarts.

aiomqtt (2.x, on paho-mqtt 2.x; both pure Python) because it is the maintained asyncio client:
it runs on the service's event loop without a thread of its own, speaks MQTT 3.1.1 and 5, and
leaves reconnection to the caller, which is what lets every reconnect resubscribe and
re-announce here. Memory stays bounded: image messages held (queued or being classified) are
at most EDGE_MQTT_MAX_PENDING, counted when refused, and each classification takes a place in
the service's one admission queue (EDGE_MAX_QUEUE), so MQTT cannot starve HTTP clients.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import suppress
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .. import __version__
from ..config.mqtt import parse_broker_url
from ..core.detection import Task
from ..core.errors import Overloaded, ServiceError, StartupError
from ..ops.identity import node_id
from ..serving.schemas import ClassifyResponse, DetectResponse
from ..serving.segment_uploads import Picture, segment_upload
from ..serving.service import Service
from ..serving.specs import (
    SourceSegments,
    models_config,
    source_fits,
    source_mapping,
    source_segments,
)
from . import homeassistant, payloads
from .frigate import FrigateBridge
from .payloads import Answer
from .topics import Kind, Topics, source_name

log = logging.getLogger("edge_server.mqtt")

QOS = 1
RECONNECT_MIN = 0.5  # seconds before the first retry; doubles up to EDGE_MQTT_RECONNECT_MAX
OTHER_HELD = 64  # control messages (birth, Frigate events) waiting for the reader at most
STOP_TIMEOUT = 3.0  # seconds to publish `offline` and disconnect on shutdown
_AUTH_CODES = {134, 135}  # MQTT 5 reason codes; paho maps 3.1.1's 4 and 5 onto them
_ONLINE, _OFFLINE = b"online", b"offline"


def failure_reason(exc: aiomqtt.MqttError, *, was_connected: bool) -> tuple[str, str]:
    """(metric reason, what happened and what to do) for a failed or lost connection."""
    if isinstance(exc, MqttConnectError):
        code = getattr(exc.rc, "value", exc.rc)
        if code in _AUTH_CODES:
            return "auth", (
                f"the broker refused the login ({exc}); check the user and password in "
                "EDGE_MQTT_URL and the broker's password file and ACL"
            )
        return "refused", f"the broker refused the connection ({exc}); see the broker's log"
    if was_connected:
        return "lost", f"the connection was lost ({exc})"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc):
        return "tls", (
            f"the broker's certificate is not trusted ({exc}); set EDGE_MQTT_CA_FILE to the CA "
            "that signed it"
        )
    return "network", f"{exc}; is the broker running and reachable at that address?"


class MqttConnection:
    """One long-lived MQTT session, reconnected with backoff and jitter until stopped."""

    def __init__(self, service: Service) -> None:
        settings = service.settings
        assert settings.mqtt_url is not None
        self.service = service
        self.metrics = service.metrics
        self.settings = settings
        self.broker = parse_broker_url(settings.mqtt_url.get_secret_value())
        node = node_id(settings.node_id)
        self.node = node
        self.topics = Topics(
            prefix=settings.mqtt_prefix or f"edge-server/{node}",
            discovery_prefix=settings.mqtt_discovery_prefix,
            frigate_prefix=settings.frigate_topic_prefix if settings.frigate_url else None,
        )
        self.client_id = settings.mqtt_client_id or f"edge-server-{node}"
        self.extra_filters = list(settings.mqtt_topics)
        self.tls_context = self._tls_context() if self.broker.tls else None
        # Which model answers a source (by source name or whole topic); checked now, so a
        # model that is not served stops the start.
        config = models_config(settings)
        mapping = {
            source_name(key): models for key, models in source_mapping(settings, config).items()
        }
        self.source_models = {source: models[0] for source, models in mapping.items()}
        # A detector source's classifier, whose top label is each object's sub label.
        self.source_classifiers = {
            source: models[1] for source, models in mapping.items() if len(models) > 1
        }
        # A source's own fit (`[sources.NAME] resize`), over its model's.
        self.source_fits = {source_name(key): fit for key, fit in source_fits(config).items()}
        # Sources to announce and the task each answers, in order: the declared ones from the
        # start (Home Assistant shows them before any image), then each new one seen.
        self.sources: dict[str, Task] = dict.fromkeys(self.source_models, Task.classification)
        self.count_labels = tuple(settings.mqtt_count_labels)
        # A segmenting source's labels and regions (`[sources.NAME]`); others: the count labels.
        self.source_segments = {
            source_name(key): segments
            for key, segments in source_segments(config, self.count_labels).items()
        }
        self.connected = False
        self._client: aiomqtt.Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._held_images = 0
        self._held_other = 0
        self._inbox: asyncio.Queue[aiomqtt.Message] | None = None  # the current client's
        self._failing = False  # whether the last attempt failed (log the first failure only)
        self._announced_model: str | None = None  # the model the published configs name
        self._warned_labels: set[str] = set()  # sources whose unknown labels were logged
        # Others that announce entities with ours (the cameras), on connect and on HA's birth.
        self._announcers: list[Callable[[], Awaitable[None]]] = []
        self.frigate = (
            FrigateBridge(
                service,
                events_topic=self.topics.frigate_events or "",
                publish=self.publish_result,
                spawn=self.spawn,
            )
            if settings.frigate_url
            else None
        )

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self.settings.mqtt_ca_file
        try:
            return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(
                f"EDGE_MQTT_CA_FILE {ca_file} is not a usable CA file ({exc})",
                fix="point it at the PEM certificate of the CA that signed the broker's",
            ) from None

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background: HTTP serves whether or not the broker is there."""
        if self.frigate is not None:
            self.frigate.start()
        self._runner = asyncio.create_task(self._run(), name="mqtt")

    async def stop(self) -> None:
        """Publish `offline` (no Last Will then), disconnect and drop unfinished work."""
        client = self._client
        if client is not None and self.connected:
            with suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT):
                    await client.publish(self.topics.status, _OFFLINE, qos=QOS, retain=True)
        for task in [self._runner, *self._tasks]:
            if task is not None:
                task.cancel()
        pending = [t for t in [self._runner, *self._tasks] if t is not None]
        if pending:
            await asyncio.wait(pending, timeout=STOP_TIMEOUT)
        if self.frigate is not None:
            await self.frigate.stop()
        self._set_connected(False)

    def health(self) -> dict[str, Any]:
        """For /healthz: whether the broker is connected, which one (never the password), and
        the topic prefix (where to publish images)."""
        return {
            "connected": self.connected,
            "broker": str(self.broker),
            "prefix": self.topics.prefix,
        }

    def add_announcer(self, announce: Callable[[], Awaitable[None]]) -> None:
        """Call `announce` whenever every Home Assistant config is published again."""
        self._announcers.append(announce)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a coroutine the connection owns (cancelled on stop; exceptions logged)."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("MQTT task failed", exc_info=task.exception())

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.metrics.mqtt_connected.set(1 if connected else 0)

    # --- the session --------------------------------------------------------------------------

    def _client_for(self) -> aiomqtt.Client:
        protocol = (
            aiomqtt.ProtocolVersion.V5
            if self.settings.mqtt_protocol == "5"
            else aiomqtt.ProtocolVersion.V311
        )
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=self.client_id,
            protocol=protocol,
            will=aiomqtt.Will(self.topics.status, _OFFLINE, qos=QOS, retain=True),
            tls_context=self.tls_context,
            queue_type=_inbox(self._accept, self._held_by),
            logger=logging.getLogger("edge_server.mqtt.client"),
            timeout=10,
            keepalive=30,
        )

    async def _run(self) -> None:
        delay = RECONNECT_MIN
        while True:
            was_connected = False
            client = self._client_for()
            try:
                async with client:
                    was_connected = True
                    delay = RECONNECT_MIN
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                reason, explained = failure_reason(exc, was_connected=was_connected)
                self.metrics.mqtt_connect_failures.labels(reason).inc()
                level = logging.ERROR if reason == "auth" else logging.WARNING
                # The first failure of a streak is logged; the retries only counted.
                log.log(
                    level if not self._failing or was_connected else logging.DEBUG,
                    "MQTT %s: %s (HTTP serves on; retrying with backoff up to %g s)",
                    self.broker,
                    explained,
                    self.settings.mqtt_reconnect_max,
                )
                self._failing = not was_connected
            finally:
                self._client = None
                self._set_connected(False)
                self._drain()
            # Full jitter: brokers restarting under many clients are not hit all at once.
            await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311  # not a secret
            delay = min(delay * 2, self.settings.mqtt_reconnect_max)

    async def _session(self, client: aiomqtt.Client) -> None:
        """Subscribe, say `online`, announce, then handle messages until the connection ends."""
        filters = [self.topics.classify_filter, *self.extra_filters]
        if self.settings.mqtt_discovery:
            filters.append(self.topics.birth)
        if self.topics.frigate_events is not None:
            filters.append(self.topics.frigate_events)
        await client.subscribe([(f, QOS) for f in dict.fromkeys(filters)])
        self._client = client
        await self._publish(self.topics.status, _ONLINE, "status", retain=True)
        self._set_connected(True)
        self._failing = False
        log.info(
            "MQTT connected to %s as %s, topics under %s/",
            self.broker,
            self.client_id,
            self.topics.prefix,
        )
        await self.announce()
        async for message in client.messages:
            self._dispatch(message)

    def _held_by(self, inbox: asyncio.Queue[aiomqtt.Message]) -> None:
        self._inbox = inbox

    def _drain(self) -> None:
        """Let go of messages the ended connection still held, counting the images."""
        queue, self._inbox = self._inbox, None
        while queue is not None and not queue.empty():
            message = queue.get_nowait()
            kind = self.topics.route(message.topic.value).kind
            self._release(kind)
            if kind is Kind.classify:
                self.metrics.mqtt_dropped.labels(kind.value, "disconnected").inc()

    # --- incoming -----------------------------------------------------------------------------

    def _accept(self, message: aiomqtt.Message) -> bool:
        """Whether the inbox takes a message; the bound of what MQTT holds in memory."""
        kind = self.topics.route(message.topic.value).kind
        if kind is Kind.own:
            return False  # a broad EDGE_MQTT_TOPICS filter matched our own output: no loop
        self.metrics.mqtt_received.labels(kind.value).inc()
        if kind is Kind.classify:
            if self._held_images >= self.settings.mqtt_max_pending:
                self.metrics.mqtt_dropped.labels(kind.value, "queue_full").inc()
                return False
            self._held_images += 1
            return True
        if self._held_other >= OTHER_HELD:
            self.metrics.mqtt_dropped.labels(kind.value, "queue_full").inc()
            return False
        self._held_other += 1
        return True

    def _release(self, kind: Kind) -> None:
        if kind is Kind.classify:
            self._held_images -= 1
        else:
            self._held_other -= 1

    def _dispatch(self, message: aiomqtt.Message) -> None:
        route = self.topics.route(message.topic.value)
        if route.kind is Kind.classify:
            assert route.source is not None
            self.spawn(self._classify(message, route.source))  # releases when done
            return
        self._release(route.kind)
        payload = _bytes(message.payload)
        if route.kind is Kind.birth and payload.strip() == _ONLINE:
            # Home Assistant (re)started: it wants every config again.
            self.spawn(self.announce())
        elif route.kind is Kind.frigate and self.frigate is not None:
            self.frigate.offer(payload)

    def segments_of(self, source: str) -> SourceSegments:
        """What a segmenting source reports: its own labels and regions, else the count labels."""
        return self.source_segments.get(source, SourceSegments(self.count_labels))

    def model_of(self, source: str) -> str | None:
        """The model mapped to a source (named as its topic names it); None: the default."""
        return self.source_models.get(source)

    async def _classify(self, message: aiomqtt.Message, source: str) -> None:
        topic = message.topic.value
        respond = _response_target(message)
        data = _bytes(message.payload)
        try:
            model = self.model_of(source)
            answer: Answer
            picture: Picture | None = None
            task = self.service.ready_model(model).info.task
            if task is Task.segmentation:
                answer, picture = await segment_upload(
                    self.service,
                    data,
                    model=model,
                    regions=self.segments_of(source).regions,
                    resize=self.source_fits.get(source),
                )
            elif task is Task.detection:
                answer = await self.service.detect_upload(
                    data,
                    model=model,
                    classify=self.source_classifiers.get(source),
                    resize=self.source_fits.get(source),
                )
            else:
                answer = await self.service.classify_upload(
                    data, model=model, resize=self.source_fits.get(source)
                )
        except ServiceError as exc:
            if isinstance(exc, Overloaded):
                self.metrics.mqtt_dropped.labels(Kind.classify.value, "overloaded").inc()
            else:
                self.metrics.mqtt_errors.labels(str(int(exc.status))).inc()
            if exc.status >= 500 and not isinstance(exc, Overloaded):
                log.error("MQTT image on %s failed: %s", topic, exc.detail)
            body = payloads.problem(int(exc.status), exc.detail, topic)
            await self._publish(self.topics.error(source), body, "error")
            if respond:
                await self._publish(respond[0], body, "response", correlation=respond[1])
            return
        finally:
            self._release(Kind.classify)
        await self.publish_result(source, answer, topic)
        if picture is not None:
            # Retained: Home Assistant shows the latest picture after a restart too.
            await self._publish(self.topics.image(source), picture.data, "image", retain=True)
        if respond:
            body = payloads.result(answer, topic)
            await self._publish(respond[0], body, "response", correlation=respond[1])

    # --- outgoing -----------------------------------------------------------------------------

    async def publish_result(self, source: str, answer: Answer, topic: str, **extra: Any) -> None:
        """A source's result (retained: Home Assistant's state) and its event."""
        task = (
            Task.classification
            if isinstance(answer, ClassifyResponse)
            else Task.detection
            if isinstance(answer, DetectResponse)
            else Task.segmentation
        )
        if self.identity().model != self._announced_model:
            # A reload changed the default model, which every config's device block names.
            self.sources[source] = task
            await self.announce()
        elif self.sources.get(source) is not task:
            previous = self.sources.get(source)
            if previous is not None:  # its model now answers the other task: retire its entities
                await self._retire(source, previous)
            self.sources[source] = task
            await self.announce([source])
        await self._publish(
            self.topics.result(source),
            payloads.result(answer, topic, **extra),
            "result",
            retain=True,
        )
        await self._publish(self.topics.event(source), payloads.event(answer, topic), "event")

    async def announce(self, sources: list[str] | None = None) -> None:
        """Publish the Home Assistant configs of these sources (default: every one seen)."""
        if not self.settings.mqtt_discovery:
            return
        identity = self.identity()
        self._announced_model = identity.model
        if sources is None:
            self._declare_tasks()
            topic, config = homeassistant.status_config(self.topics, identity)
            await self._publish(topic, payloads.dumps(config), "discovery", retain=True)
        for source in sources if sources is not None else list(self.sources):
            for topic, config in self._configs(identity, source, self.sources[source]):
                await self._publish(topic, payloads.dumps(config), "discovery", retain=True)
        if sources is None:
            for announce in self._announcers:
                await announce()

    def _configs(
        self, identity: homeassistant.Identity, source: str, task: Task
    ) -> list[tuple[str, dict[str, Any]]]:
        """The Home Assistant configs of a source's entities for `task`."""
        if task is Task.segmentation:
            segments = self.segments_of(source)
            labels, regions = segments.labels, tuple(r.name for r in segments.regions)
        else:
            labels, regions = self.count_labels, ()
        return homeassistant.configs(self.topics, identity, source, task, labels, regions)

    def _declare_tasks(self) -> None:
        """The task of each declared source, from its model as loaded now."""
        for source, model in self.source_models.items():
            with suppress(ServiceError):  # not loaded: corrected with the source's first result
                info = self.service.ready_model(model).info
                self.sources[source] = info.task
                if info.task is Task.segmentation:
                    self._check_labels(source, info.name, info.labels)

    def _check_labels(self, source: str, model: str, known: Sequence[str]) -> None:
        """Say once if a segmenting source lists labels its model does not know (a typo, or
        a COCO name for a PASCAL VOC model): their sensors would read 0 for ever."""
        unknown = [label for label in self.segments_of(source).labels if label not in known]
        if unknown and source not in self._warned_labels:
            self._warned_labels.add(source)
            log.warning(
                "MQTT source %s lists %s, which %s does not know: their Home Assistant sensors "
                "stay at 0; its labels are %s (set them in [sources.%s] labels, or "
                "EDGE_MQTT_COUNT_LABELS)",
                source,
                ", ".join(unknown),
                model,
                ", ".join(known),
                source,
            )

    async def _retire(self, source: str, task: Task) -> None:
        """Remove a source's entities of `task` from Home Assistant (an empty retained config)."""
        if not self.settings.mqtt_discovery:
            return
        for topic, _ in self._configs(self.identity(), source, task):
            await self._publish(topic, b"", "discovery", retain=True)
        if task is Task.segmentation:  # and its retained picture
            await self._publish(self.topics.image(source), b"", "image", retain=True)

    def identity(self) -> homeassistant.Identity:
        """This edge-server as Home Assistant's device block describes it."""
        settings = self.settings
        url = settings.public_url
        if url is None:
            host = settings.host
            if host in ("0.0.0.0", "::", ""):  # noqa: S104  # a wildcard is no address to link
                host = socket.gethostname()
            url = f"http://{host}:{settings.port}/"
        return homeassistant.Identity(
            node=self.node,
            version=__version__,
            model=self.service.default_model,
            configuration_url=url,
        )

    async def publish(self, topic: str, payload: bytes, kind: str, *, retain: bool = False) -> bool:
        """Publish for another part of the MQTT surface; counted, never raised, as ours are."""
        return await self._publish(topic, payload, kind, retain=retain)

    async def _publish(
        self,
        topic: str,
        payload: bytes,
        kind: str,
        *,
        retain: bool = False,
        correlation: bytes | None = None,
    ) -> bool:
        """Publish if connected; a message that cannot go out is counted, never raised."""
        client = self._client
        if client is None:
            self.metrics.mqtt_dropped.labels(kind, "disconnected").inc()
            return False
        properties = None
        if correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho
            properties.CorrelationData = correlation
        try:
            await client.publish(topic, payload, qos=QOS, retain=retain, properties=properties)
        except (aiomqtt.MqttError, ValueError) as exc:  # ValueError: a wildcard in the topic
            self.metrics.mqtt_dropped.labels(kind, "publish_failed").inc()
            log.debug("MQTT publish to %s failed: %s", topic, exc)
            return False
        self.metrics.mqtt_published.labels(kind).inc()
        return True


def _bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


def _response_target(message: aiomqtt.Message) -> tuple[str, bytes | None] | None:
    """MQTT 5 request/response: the response topic and correlation data the sender asked for."""
    properties = message.properties
    topic = getattr(properties, "ResponseTopic", None) if properties is not None else None
    if not topic:
        return None
    return topic, getattr(properties, "CorrelationData", None)


def _inbox(
    accept: Callable[[aiomqtt.Message], bool],
    created: Callable[[asyncio.Queue[aiomqtt.Message]], None],
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's incoming queue class, asking `accept` before holding each message.

    aiomqtt puts every message it reads into this queue (its documented `queue_type`), so
    deciding here is where the bound is exact: a refused message is counted by `accept` and
    never held. The queue itself is unbounded; `accept` bounds it. `created` learns of each
    queue so that what a lost connection left in it can be let go.
    """

    class Inbox(asyncio.Queue[aiomqtt.Message]):
        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(maxsize)
            created(self)

        def put_nowait(self, item: aiomqtt.Message) -> None:
            if accept(item):
                super().put_nowait(item)

    return Inbox
