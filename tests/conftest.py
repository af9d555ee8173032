"""Fixtures for tests that cross the real Kafka broker and MongoDB-protocol server.

`./scripts/test` starts both (devstack's test profile) and exports their addresses; each test
isolates itself with unique topic, group and database names instead of restarting anything.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.contracts.topics import TopicSpec
from shared.runtime.kafka import ensure_topics
from shared.runtime.mongo import create_mongo_client
from tests.mongo_helpers import Commands

KAFKA_BOOTSTRAP = os.environ.get("DVC_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
MONGO_URL = os.environ.get("DVC_TEST_MONGO_URL", "mongodb://127.0.0.1:37017/")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Shortly before pytest-timeout fails a hung test, print what every asyncio task awaits:
    its own dump shows only threads, and a hung asyncio test sits in the event loop's select."""
    marker = item.get_closest_marker("timeout")
    configured = marker.args[0] if marker and marker.args else item.config.getini("timeout")
    timeout = float(configured or 0)
    timer = threading.Timer(max(timeout - 5, 1), _print_pending_tasks) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer:
            timer.cancel()


def _print_pending_tasks() -> None:
    import asyncio

    tasks = [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]
    print(f"\n+++ {len(tasks)} pending asyncio tasks +++", file=sys.stdout)
    for task in tasks:
        with contextlib.suppress(Exception):
            task.print_stack(limit=12, file=sys.stdout)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    import asyncio

    from devstack.kafka_broker import metadata_answers

    if not asyncio.run(metadata_answers(KAFKA_BOOTSTRAP)):
        pytest.fail(f"no Kafka broker at {KAFKA_BOOTSTRAP}: run the tests with ./scripts/test")
    return KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def mongo_url() -> str:
    from pymongo import MongoClient

    client: MongoClient = MongoClient(MONGO_URL, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except Exception:
        pytest.fail(f"no MongoDB-protocol server at {MONGO_URL}: run the tests with ./scripts/test")
    finally:
        client.close()
    return MONGO_URL


# Every token handed out this session: their topics are deleted, so that a long-lived local broker
# does not pile up partitions run after run (thousands of them exhaust its heap). Those of finished
# tests go in batches as the run goes on, so that a run killed midway leaves few behind; the rest
# at the end of the session.
_TOKENS: list[str] = []
_FINISHED: list[str] = []
DELETE_BATCH = 100


@pytest.fixture
def unique() -> Iterator[str]:
    """A short unique token for topic, group and database names of one test."""
    token = uuid.uuid4().hex[:10]
    _TOKENS.append(token)
    yield token
    _FINISHED.append(token)
    if len(_FINISHED) >= DELETE_BATCH:
        batch = set(_FINISHED)
        _FINISHED.clear()
        _in_own_thread(_delete_topics_with(batch))


@pytest.fixture(scope="session", autouse=True)
def _delete_this_sessions_topics() -> Iterator[None]:
    yield
    if _TOKENS:
        _in_own_thread(_delete_topics_with(set(_TOKENS)))


def _in_own_thread(job: Coroutine[Any, Any, None]) -> None:
    """Run `job` to its end on a loop of its own (the tests' loop may be the caller's)."""
    import asyncio

    worker = threading.Thread(target=asyncio.run, args=(job,), name="delete-test-topics")
    worker.start()
    worker.join()


async def _delete_topics_with(tokens: set[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=10_000)
    try:
        await admin.start()
        names = [t for t in await admin.list_topics() if any(token in t for token in tokens)]
        for start in range(0, len(names), 200):
            await admin.delete_topics(names[start : start + 200])
    except Exception as exc:  # best effort: a broker already gone keeps them, that is all
        print(f"\ntest topics not deleted: {exc!r}")
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


@pytest.fixture
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient]:
    client = create_mongo_client(mongo_url)
    yield client
    await client.close()


@pytest.fixture
async def mongo_db(mongo_client: AsyncMongoClient, unique: str) -> AsyncIterator[AsyncDatabase]:
    name = f"test_{unique}"
    yield mongo_client[name]
    await mongo_client.drop_database(name)


@pytest.fixture
async def watched_db(mongo_url: str, unique: str) -> AsyncIterator[tuple[AsyncDatabase, Commands]]:
    """A fresh database through a client that records every command it sends."""
    commands = Commands()
    client: AsyncMongoClient = create_mongo_client(mongo_url, event_listeners=[commands])
    name = f"test_{unique}"
    yield client[name], commands
    await client.drop_database(name)
    await client.close()


TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def make_topic(kafka_bootstrap: str, unique: str) -> TopicFactory:
    """Create a fresh topic named after the test (`partitions` defaults to 3)."""
    counter = iter(range(1000))

    async def create(prefix: str = "t", partitions: int = 3) -> str:
        name = f"test.{prefix}.{unique}.{next(counter)}"
        await ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions, None)])
        return name

    return create
