"""Fixtures for tests that cross the real Kafka broker and MongoDB-protocol server.

`./scripts/test` starts both (devstack's test profile) and exports their addresses; each test
isolates itself with unique topic, group and database names instead of restarting anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.kafka import ensure_topics
from shared.mongo import create_mongo_client
from shared.topics import TopicSpec

KAFKA_BOOTSTRAP = os.environ.get("DVC_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
MONGO_URL = os.environ.get("DVC_TEST_MONGO_URL", "mongodb://127.0.0.1:37017/")


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


@pytest.fixture
def unique() -> str:
    """A short unique token for topic, group and database names of one test."""
    return uuid.uuid4().hex[:10]


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
