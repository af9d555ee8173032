"""How fast the outbox relay drains a backlog: N documents with a pending event each (what a
Kafka outage leaves behind), published by one relay's scan (`OutboxRelay.publish_pending`).

    .venv/bin/python -m devstack --profile test up
    .venv/bin/python bench/bench_outbox.py [--pending 3000,10000]

Each size gets a fresh database and topic (deleted at the end). A drain whose time per document
grows with the backlog means a scan that reads every pending document per batch. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests.factories`

from bench_agencies import delete_topics

from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierState
from shared.contracts.topics import TopicSpec
from shared.runtime.kafka import create_broker, ensure_topics
from shared.runtime.mongo import create_mongo_client
from shared.runtime.outbox import OUTBOX_INDEX, OutboxRelay, outbox_update
from tests.factories import dossier_code, processed


def pending_case(n: int, topic: str) -> dict[str, object]:
    """A case-sized document (a history of a few steps) with one pending event."""
    event = wrap(processed(dossier_code(n), DossierState.RECEIVED, "receive"), "/bench")
    update = outbox_update([(topic, event)])
    return {
        "_id": dossier_code(n),
        "history": [{"action": "step", "note": "x" * 300}] * 8,
        "outbox": update["$push"]["outbox"]["$each"],
        **update["$set"],
    }


async def drain(kafka: str, mongo_url: str, pending: int) -> None:
    token = uuid.uuid4().hex[:8]
    topic = f"bench.outbox.{token}"
    await ensure_topics(kafka, [TopicSpec(topic, 3, None)])
    mongo = create_mongo_client(mongo_url, appname="bench-outbox")
    db = mongo[f"bench_outbox_{token}"]
    try:
        cases = db["cases"]
        await cases.create_indexes([OUTBOX_INDEX])
        for start in range(0, pending, 1000):
            end = min(start + 1000, pending)
            await cases.insert_many([pending_case(n, topic) for n in range(start, end)])
        broker = create_broker(kafka, "bench-outbox")
        async with broker:
            await broker.connect()
            began = time.perf_counter()
            published = await OutboxRelay(cases, broker).publish_pending()
            seconds = time.perf_counter() - began
        print(
            f"{pending:>7,} pending   {published:,} published in {seconds:5.1f} s = "
            f"{published / seconds:,.0f} events/s ({seconds / pending * 1000:.2f} ms each)"
        )
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
        await delete_topics(kafka, token)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kafka", default=os.environ.get("DVC_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    )
    parser.add_argument(
        "--mongo", default=os.environ.get("DVC_TEST_MONGO_URL", "mongodb://127.0.0.1:37017/")
    )
    parser.add_argument("--pending", default="3000,10000", help="backlog sizes, comma-separated")
    args = parser.parse_args()
    for size in (int(s) for s in args.pending.split(",")):
        asyncio.run(drain(args.kafka, args.mongo, size))


if __name__ == "__main__":
    main()
