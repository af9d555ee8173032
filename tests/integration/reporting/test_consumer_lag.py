"""Consumer lag from committed offsets against end offsets, on the real broker."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from services.reporting.adapters.lag import consumer_lag
from shared.runtime.settings import ServiceSettings


async def test_lag_is_what_a_group_has_not_yet_read(
    kafka_bootstrap: str, make_topic, unique
) -> None:
    topic = await make_topic("lag", partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for n in range(5):
        await producer.send_and_wait(topic, b"x", key=str(n).encode())
    await producer.stop()

    group = f"lag-{unique}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "")})
    await consumer.stop()

    lag = await consumer_lag(
        ServiceSettings(kafka_bootstrap=kafka_bootstrap), [group, f"idle-{unique}"]
    )
    assert lag == {(group, topic): 3}
