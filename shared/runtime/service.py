"""The skeleton every service shares: settings, MongoDB, the broker and the HTTP app, wired once.

Each service's `main.py` calls `build_service_app` with its settings, its subscriptions and its
routes; this module owns the lifecycle: connect, start consuming, and on shutdown stop consuming,
let in-flight handlers finish, flush the producer and close the clients.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import uvicorn
from aiokafka import AIOKafkaConsumer
from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.contracts.cloudevents import Contract
from shared.contracts.topics import dead_letter_topic
from shared.runtime.auth import verifier_from_settings
from shared.runtime.background import Job, OnRead, wait_for_event
from shared.runtime.batch_consumer import (
    BatchConsumer,
    KeyedStreamConsumer,
    Parsed,
    per_key_in_order,
    routes_for,
)
from shared.runtime.collector import count_collector_time, freeze_what_exists
from shared.runtime.consumer import EventHandler, RetryPolicy, Route, subscribe
from shared.runtime.failures import OutageWatch
from shared.runtime.http import (
    BodySizeLimit,
    RequestMetricsMiddleware,
    install_operational_routes,
    install_problem_handlers,
)
from shared.runtime.kafka import (
    create_broker,
    idle_consumer_options,
    kafka_security,
    long_poll_when_idle,
    wait_for_topics,
)
from shared.runtime.logging import configure_logging, log_context
from shared.runtime.mongo import create_mongo_client, ping
from shared.runtime.settings import ServiceSettings


@dataclass
class ServiceContext:
    """What handlers and routes of a service depend on."""

    settings: ServiceSettings
    broker: KafkaBroker
    mongo: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    # Gauges recomputed from the database when `/metrics` is read (and stale), never otherwise.
    metrics_sources: list[OnRead] = field(default_factory=list)
    # Consumer groups waiting out an infrastructure outage (the service is then not ready).
    outages: OutageWatch = field(default_factory=OutageWatch)

    async def refresh_metrics(self) -> None:
        """Bring every stale metrics source up to date (each waits a bounded time)."""
        await asyncio.gather(*(source.fresh() for source in self.metrics_sources))

    @asynccontextmanager
    async def metrics_source(self, name: str, job: Job, max_age: float) -> AsyncIterator[OnRead]:
        """Inside the block, `job` recomputes some gauges when `/metrics` is read and they are
        older than `max_age` seconds (`shared.runtime.background.OnRead`)."""
        source = OnRead(name, job, max_age)
        self.metrics_sources.append(source)
        try:
            yield source
        finally:
            self.metrics_sources.remove(source)
            await source.close()

    async def consumers_flowing(self) -> bool:
        """Readiness: no consumer group is holding an event until the infrastructure is back."""
        return self.outages.healthy()

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.settings.consumer_max_attempts,
            base_delay=self.settings.consumer_backoff_seconds,
            outage_max_delay=self.settings.consumer_outage_max_backoff_seconds,
        )


Registration = Callable[[ServiceContext], None]
# A background part of a service (an outbox relay, a scanner, a retry worker): entered after the
# broker started, exited before it stops, in reverse order.
LifecycleHook = Callable[[ServiceContext], AbstractAsyncContextManager[Any]]


def build_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    register: Registration,
    routers: Sequence[APIRouter] = (),
    hooks: Sequence[LifecycleHook] = (),
    larger_bodies: Mapping[str, int] = {},
) -> FastAPI:
    """The service's app. Request bodies are limited to `settings.max_body_bytes` before anything
    parses them, except on the routes of `larger_bodies` (route template → limit: uploads)."""
    broker = create_broker(
        settings.kafka_bootstrap, settings.service_name, security=kafka_security(settings)
    )
    mongo = create_mongo_client(settings.mongo_url, appname=settings.service_name)
    context = ServiceContext(settings, broker, mongo, mongo[settings.database_name])
    register(context)  # subscribers must exist before the broker starts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # (A subscriber whose topic is not listed yet would get no partition of it for minutes.)
        topics = {t for s in broker.subscribers for t in getattr(s, "topics", ())}
        await wait_for_topics(settings, topics)
        await broker.start()
        for subscriber in broker.subscribers:
            if isinstance(consumer := getattr(subscriber, "consumer", None), AIOKafkaConsumer):
                long_poll_when_idle(consumer, settings)
        try:
            async with AsyncExitStack() as stack:
                for hook in hooks:
                    await stack.enter_async_context(hook(context))
                yield
        finally:
            context.outages.stopping.set()  # an event waiting out an outage is left uncommitted
            await broker.stop()  # stops consumers, waits for in-flight handlers, flushes
            await mongo.close()

    app = FastAPI(title=title, lifespan=lifespan)
    app.state.context = context
    app.state.service_name = settings.service_name
    app.state.jwt_verifier = verifier_from_settings(settings)
    install_problem_handlers(app)
    install_operational_routes(
        app,
        {
            "kafka": lambda: broker.ping(timeout=2.0),
            "mongodb": lambda: ping(mongo),
            "consumers": context.consumers_flowing,
        },
        before_metrics=context.refresh_metrics,
    )
    for router in routers:
        app.include_router(router)
    app.add_middleware(
        BodySizeLimit,
        service=settings.service_name,
        max_bytes=settings.max_body_bytes,
        larger=larger_bodies,
    )
    app.add_middleware(RequestMetricsMiddleware, service=settings.service_name)
    return app


class QuietServer(uvicorn.Server):
    """uvicorn's server, whose housekeeping loop ticks once a second instead of ten times (the
    ten ticks are most of an idle service's CPU). Each tick still refreshes the `Date` header,
    and an exit signal ends the wait at once. Once the app has started, what exists then is
    frozen out of the garbage collector's passes, whose CPU is counted
    (`shared.runtime.collector`)."""

    _exit: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        count_collector_time()
        freeze_what_exists()

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        while not await self.on_tick(0):  # tick 0: the once-a-second work
            await wait_for_event(self._exit, 1.0)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._exit is not None:
            self._loop.call_soon_threadsafe(self._exit.set)


def run_service(
    create_app: Callable[[ServiceSettings], FastAPI], settings: ServiceSettings
) -> None:
    """Serve the app with uvicorn on the configured address, JSON logs on stderr."""
    configure_logging(settings.service_name, settings.log_level)
    QuietServer(server_config(create_app(settings), settings)).run()


def server_config(app: FastAPI, settings: ServiceSettings) -> uvicorn.Config:
    """uvicorn's settings for a service. The client address (rate limits, lockouts, logs) is the
    connection's peer, unless the peer is one of `trusted_proxies`: then it is what the proxy
    says in `X-Forwarded-For`. Nobody else can claim an address."""
    trusted = [proxy.strip() for proxy in settings.trusted_proxies.split(",") if proxy.strip()]
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        # libuv's loop and the C HTTP parser: about 15% less CPU per dossier than asyncio's own
        # loop and h11 (bench/bench_e2e.py; docs/benchmarks.md).
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=20,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
    )


def subscribe_dossier_events(
    context: ServiceContext, *, group: str, handlers: Mapping[type[Contract], EventHandler]
) -> None:
    """Subscribe `group` to the topic of each event model, with retries and dead-letter topics."""
    routes = {
        context.settings.topic(model.topic): Route(model, handler)
        for model, handler in handlers.items()
    }
    subscribe(
        context.broker,
        group=context.settings.consumer_group(group),
        routes=routes,
        policy=context.retry_policy,
        dead_letter_topic=lambda topic: dead_letter_topic(topic, group),
        watch=context.outages,
        commit_interval=context.settings.consumer_commit_interval_seconds,
        **idle_consumer_options(context.settings),
    )


def consume_dossier_events_in_batches(
    context: ServiceContext,
    *,
    group: str,
    handlers: Mapping[type[Contract], EventHandler],
    background: bool = False,
) -> BatchConsumer:
    """What `subscribe_dossier_events` does, reading in batches: each dossier's events in order
    (events are keyed by dossier), different dossiers concurrently, without waiting for a
    batch's slowest dossier (`KeyedStreamConsumer`). For handlers that wait on round trips per
    event; they must be idempotent, as everywhere (what was not committed is handled again). The
    consumer is started and stopped by the caller's lifecycle (`BatchConsumer.running`).

    `background`: work nobody waits for within the second (figures, the national portal's
    copy): reads at most every `consumer_linger_seconds`, so that a quiet stream's events share
    their writes rather than costing a round of writes each, the CPU the citizens' path needs."""

    async def handle(item: Parsed) -> None:
        with log_context(dossier_code=item.cloud_event.subject, event_id=item.cloud_event.id):
            await handlers[type(item.event)](item.event, item.cloud_event)

    return KeyedStreamConsumer(
        context.settings,
        context.broker,
        group=group,
        routes=routes_for(context.settings, list(handlers)),
        handle=per_key_in_order(handle),
        policy=context.retry_policy,
        watch=context.outages,
        linger=context.settings.consumer_linger_seconds if background else 0.0,
    )
