"""Dead letters for operators: list them, inspect them with personal data masked, and redrive
them onto the topic they came from, each at most once.

    python -m shared.tools.redrive list
    python -m shared.tools.redrive show <dead-letter topic> [--waiting] [--limit N]
    python -m shared.tools.redrive redrive <dead-letter topic> --all [--dry-run]
    python -m shared.tools.redrive redrive <dead-letter topic> --offset 3 --offset 7

(a dead-letter topic: e.g. `dvc.dossier.submitted.v1.processing.dlq`)

A dead letter (`shared.runtime.consumer`) keeps the failed record's value, key and headers, plus
`dlq_*`
headers saying why it failed and where it came from. A redrive publishes the value again to the
original topic with the same key (so the same partition) and headers, minus the `dlq_*` ones, plus
`dlq_redriven_from: <dead-letter topic>:<partition>:<offset>`. Every group reading that topic
receives the event again; those that applied it already skip it (consumers are idempotent by
event id).

What has been redriven is kept in Kafka, as the committed offsets of the tool's own consumer group
(`dvc-redrive`) on the dead-letter topic: the position below which every record was redriven,
and, in the commit's metadata, the offsets above it redriven one by one (`--offset`). Each record
is committed as soon as the broker has acknowledged its copy, so a second run never redrives it
again; a crash between the two sends that one record twice, which the consumers' idempotence
absorbs. Run one redrive of a topic at a time.

Settings come from `DVC_REDRIVE_*` variables, like a service's: `DVC_REDRIVE_KAFKA_BOOTSTRAP`,
`DVC_REDRIVE_KAFKA_SECURITY_PROTOCOL`, `DVC_REDRIVE_KAFKA_SASL_USERNAME` and `..._PASSWORD`,
`DVC_REDRIVE_KAFKA_SSL_CAFILE`, and `DVC_REDRIVE_TOPIC_SUFFIX` for an isolated run. Exit status 0;
1 when a named offset is not in the topic or a record cannot be redriven; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaTimeoutError
from pydantic_settings import SettingsConfigDict

from shared.runtime.failures import mask_personal
from shared.runtime.kafka import aiokafka_security_options
from shared.runtime.settings import ServiceSettings

REDRIVE_GROUP = "dvc-redrive"
DEAD_LETTER_SUFFIX = ".dlq"
DEAD_LETTER_HEADER_PREFIX = "dlq_"
REDRIVEN_FROM_HEADER = "dlq_redriven_from"
# Fields of an event's data that identify or reach a person, or are free text that may: shown as
# MASKED. Every other string is shown through `mask_personal`.
PERSONAL_FIELDS = frozenset(
    {"applicant", "contact", "form", "note", "comment", "body", "title", "reason", "file_name"}
)
MASKED = "[masked]"
# Kafka's default `offset.metadata.max.bytes` is 4096.
_MAX_METADATA = 4000
_READ_TIMEOUT = 60.0


class RedriveSettings(ServiceSettings):
    """The Kafka connection, from `DVC_REDRIVE_*` variables
    (`shared.runtime.settings.ServiceSettings`)."""

    model_config = SettingsConfigDict(env_prefix="DVC_REDRIVE_", extra="ignore")

    service_name: str = "redrive"


class RedriveError(Exception):
    """A request the tool cannot serve (e.g. an unknown topic); the message says why."""


def split_dead_letter_topic(name: str) -> tuple[str, str]:
    """(original topic, consumer group) of `<topic>.<group>.dlq` (`shared.contracts.topics`)."""
    topic, _, group = name.removesuffix(DEAD_LETTER_SUFFIX).rpartition(".")
    if not name.endswith(DEAD_LETTER_SUFFIX) or not topic or not group:
        raise RedriveError(f"{name!r} is not a dead-letter topic (<topic>.<group>.dlq)")
    return topic, group


@dataclass(frozen=True)
class Progress:
    """What has been redriven from one partition of a dead-letter topic: every offset below
    `position`, and the offsets in `beyond` (all above it)."""

    position: int = 0
    beyond: frozenset[int] = frozenset()

    def covers(self, offset: int) -> bool:
        return offset < self.position or offset in self.beyond

    def with_redriven(self, offsets: Iterable[int], log_start: int = 0) -> Progress:
        """This progress plus `offsets`; the position moves over every offset now redriven (and
        over records the log no longer holds, below `log_start`)."""
        done = {*self.beyond, *offsets}
        position = max(self.position, log_start)
        while position in done:
            position += 1
        return Progress(position, frozenset(o for o in done if o > position))

    def metadata(self) -> str:
        """`beyond` as ranges, e.g. `7-9,12` (the commit's metadata)."""
        ranges: list[list[int]] = []
        for offset in sorted(self.beyond):
            if ranges and ranges[-1][1] == offset - 1:
                ranges[-1][1] = offset
            else:
                ranges.append([offset, offset])
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)

    @classmethod
    def committed(cls, offset: int | None, metadata: str | None) -> Progress:
        """The progress a commit records (offset -1 or None: nothing redriven)."""
        beyond: set[int] = set()
        for part in filter(None, (metadata or "").split(",")):
            first, _, last = part.partition("-")
            beyond.update(range(int(first), int(last or first) + 1))
        return cls(max(offset or 0, 0), frozenset(beyond))


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, and whether it has been redriven."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    redriven: bool = False

    def header(self, name: str) -> str | None:
        for header, raw in self.headers:
            if header.lower() == name:
                return raw.decode(errors="replace") if raw is not None else ""
        return None

    @property
    def reason(self) -> str:
        return self.header("dlq_reason") or "unknown"

    @property
    def original_topic(self) -> str:
        return self.header("dlq_original_topic") or split_dead_letter_topic(self.topic)[0]

    @property
    def source(self) -> str:
        """Where this record is: `<topic>:<partition>:<offset>` (the `dlq_redriven_from` value)."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def redrive_headers(self) -> list[tuple[str, bytes]]:
        """The original headers: the dead letter's minus `dlq_*`, plus `dlq_redriven_from`."""
        kept = [
            (name, raw)
            for name, raw in self.headers
            if not name.lower().startswith(DEAD_LETTER_HEADER_PREFIX)
        ]
        return [*kept, (REDRIVEN_FROM_HEADER, self.source.encode())]

    def summary(self) -> dict[str, Any]:
        """What an operator sees of the record: the failure and the event, personal data masked."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "redriven": self.redriven,
            "reason": self.reason,
            "error": mask_personal(self.header("dlq_error") or ""),
            "attempts": self.header("dlq_attempts"),
            "failed_at": self.header("dlq_failed_at"),
            "group": self.header("dlq_group"),
            "original": {
                "topic": self.original_topic,
                "partition": _int_or_none(self.header("dlq_original_partition")),
                "offset": _int_or_none(self.header("dlq_original_offset")),
            },
            "dossier_code": self.header("ce_subject")
            or (self.key.decode(errors="replace") if self.key else None),
            "event_type": self.header("ce_type"),
            "event_id": self.header("ce_id"),
            "redriven_before_from": self.header(REDRIVEN_FROM_HEADER),
            "data": masked_data(self.value),
        }


def masked_data(value: bytes) -> Any:
    """An event's data for display: personal fields replaced by MASKED, other strings masked."""
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return mask_personal(value.decode(errors="replace"))[:500]
    return _mask(data)


def _mask(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (MASKED if key in PERSONAL_FIELDS and item not in (None, "") else _mask(item))
            for key, item in node.items()
        }
    if isinstance(node, list):
        return [_mask(item) for item in node]
    if isinstance(node, str):
        return mask_personal(node)
    return node


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass
class RedriveOutcome:
    """What one redrive did (or, dry, would do) per dead letter."""

    redriven: list[DeadLetter] = field(default_factory=list)
    already: list[DeadLetter] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class TopicCounts:
    """One dead-letter topic in `list`: its records, how many are redriven, reasons of the rest."""

    topic: str
    records: int
    redriven: int
    waiting_by_reason: dict[str, int]

    @property
    def waiting(self) -> int:
        return self.records - self.redriven


class DeadLetterTopics:
    """The platform's dead-letter topics on one Kafka cluster (`async with`)."""

    def __init__(self, settings: RedriveSettings) -> None:
        self.settings = settings
        self.group = settings.consumer_group(REDRIVE_GROUP)
        self._security = aiokafka_security_options(settings)
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id="dvc-redrive",
            request_timeout_ms=15_000,
            **self._security,
        )

    async def __aenter__(self) -> DeadLetterTopics:
        await self._admin.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._admin.close()

    async def names(self) -> list[str]:
        """Every dead-letter topic (of this topic suffix, when the settings name one)."""
        names = []
        for name in await self._admin.list_topics():
            if not name.endswith(DEAD_LETTER_SUFFIX):
                continue
            try:
                topic, _ = split_dead_letter_topic(name)
            except RedriveError:
                continue
            if topic.endswith(self.settings.topic_suffix):
                names.append(name)
        return sorted(names)

    async def counts(self) -> list[TopicCounts]:
        """Every dead-letter topic holding records, with its counts."""
        letters = await self.read(await self.names(), skip_empty=True)
        by_topic: dict[str, list[DeadLetter]] = {}
        for letter in letters:
            by_topic.setdefault(letter.topic, []).append(letter)
        return [
            TopicCounts(
                topic=topic,
                records=len(records),
                redriven=sum(letter.redriven for letter in records),
                waiting_by_reason=dict(
                    sorted(Counter(r.reason for r in records if not r.redriven).items())
                ),
            )
            for topic, records in sorted(by_topic.items())
        ]

    async def progress(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, Progress]:
        """What the redrive group has committed for `partitions`."""
        committed = await self._admin.list_consumer_group_offsets(
            self.group, partitions=list(partitions)
        )
        return {
            tp: Progress.committed(
                committed[tp].offset if tp in committed else None,
                committed[tp].metadata if tp in committed else None,
            )
            for tp in partitions
        }

    async def read(self, topics: Sequence[str], *, skip_empty: bool = False) -> list[DeadLetter]:
        """Every record of `topics`, up to their ends as they are now, marked as redriven or not."""
        if not topics:
            return []
        consumer = self._consumer()
        await consumer.start()
        try:
            partitions = await self._partitions(topics)
            # Assigned first, so that one metadata request covers every topic.
            consumer.assign(partitions)
            try:
                starts, ends = await _offsets(consumer, partitions)
            except KafkaTimeoutError:  # a topic deleted since it was listed: read the others
                existing = set(await self._admin.list_topics())
                partitions = [tp for tp in partitions if tp.topic in existing]
                consumer.assign(partitions)
                starts, ends = await _offsets(consumer, partitions)
            if skip_empty:
                partitions = [tp for tp in partitions if ends[tp] > starts[tp]]
            if not partitions:
                return []
            progress = await self.progress(partitions)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            letters: list[DeadLetter] = []
            pending = {tp for tp in partitions if ends[tp] > starts[tp]}
            async with asyncio.timeout(_READ_TIMEOUT):
                while pending:
                    batches = await consumer.getmany(*pending, timeout_ms=500)
                    for tp, records in batches.items():
                        letters.extend(
                            _letter(r, progress[tp].covers(r.offset))
                            for r in records
                            if r.offset < ends[tp]
                        )
                    for tp in list(pending):
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
            return sorted(letters, key=lambda r: (r.topic, r.partition, r.offset))
        finally:
            await consumer.stop()

    async def redrive(
        self, topic: str, offsets: Sequence[int] | None, *, dry_run: bool = False
    ) -> RedriveOutcome:
        """Publish the dead letters of `topic` at `offsets` (None: every one not yet redriven)
        to their original topic, committing each as redriven once the broker has it."""
        split_dead_letter_topic(topic)
        letters = await self.read([topic])
        outcome = RedriveOutcome()
        if offsets is None:
            chosen = [letter for letter in letters if not letter.redriven]
            outcome.already = [letter for letter in letters if letter.redriven]
        else:
            at = {letter.offset: letter for letter in letters}
            chosen = []
            for offset in dict.fromkeys(offsets):
                letter = at.get(offset)
                if letter is None:
                    outcome.missing.append(offset)
                elif letter.redriven:
                    outcome.already.append(letter)
                else:
                    chosen.append(letter)
        if dry_run or not chosen:
            outcome.redriven = chosen
            return outcome
        await self._publish(topic, chosen, outcome)
        return outcome

    async def _publish(self, topic: str, chosen: list[DeadLetter], outcome: RedriveOutcome) -> None:
        partitions = sorted({TopicPartition(topic, letter.partition) for letter in chosen})
        progress = await self.progress(partitions)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id="dvc-redrive",
            acks="all",
            enable_idempotence=True,
            **self._security,
        )
        committer = self._consumer(group_id=self.group)
        await producer.start()
        try:
            await committer.start()
            committer.assign(partitions)
            starts = await committer.beginning_offsets(partitions)
            for letter in chosen:
                tp = TopicPartition(topic, letter.partition)
                after = progress[tp].with_redriven([letter.offset], starts[tp])
                if len(after.metadata()) > _MAX_METADATA:
                    raise RedriveError(
                        f"too many offsets redriven one by one on {topic}: redrive with --all"
                    )
                await producer.send_and_wait(
                    letter.original_topic,
                    letter.value,
                    key=letter.key,
                    headers=letter.redrive_headers(),
                )
                await committer.commit({tp: (after.position, after.metadata())})
                progress[tp] = after
                outcome.redriven.append(letter)
        finally:
            await committer.stop()
            await producer.stop()

    def _consumer(self, group_id: str | None = None) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id="dvc-redrive",
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=15_000,
            **self._security,
        )

    async def _partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        described = await self._admin.describe_topics(list(topics))
        unknown = [d["topic"] for d in described if d["error_code"]]
        if unknown:
            raise RedriveError(f"no such topic: {', '.join(unknown)}")
        return [
            TopicPartition(d["topic"], p["partition"])
            for d in described
            for p in sorted(d["partitions"], key=lambda p: p["partition"])
        ]


async def _offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """The first and the next offsets of `partitions` (empty: no request)."""
    if not partitions:
        return {}, {}
    return await consumer.beginning_offsets(partitions), await consumer.end_offsets(partitions)


def _letter(record: Any, redriven: bool) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value or b"",
        headers=tuple(record.headers or ()),
        redriven=redriven,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.tools.redrive",
        description="List, inspect and redrive dead letters (settings: DVC_REDRIVE_*).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="dead-letter topics holding records, with counts per reason")
    show = commands.add_parser("show", help="the records of a dead-letter topic, data masked")
    show.add_argument("topic", help="a dead-letter topic, <topic>.<group>.dlq")
    show.add_argument("--waiting", action="store_true", help="only records not yet redriven")
    show.add_argument("--limit", type=int, help="at most this many records, oldest first")
    redrive = commands.add_parser(
        "redrive", help="publish dead letters again to their original topic, each at most once"
    )
    redrive.add_argument("topic", help="a dead-letter topic, <topic>.<group>.dlq")
    which = redrive.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--offset", type=int, action="append", metavar="N", help="the record at offset N"
    )
    which.add_argument("--all", action="store_true", help="every record not yet redriven")
    redrive.add_argument("--dry-run", action="store_true", help="say what would be redriven")
    return parser


async def run(
    argv: Sequence[str], settings: RedriveSettings | None = None, out: TextIO = sys.stdout
) -> int:
    """The command line: `argv` without the program name; output to `out`, a summary to stderr."""
    args = _parser().parse_args(list(argv))
    settings = settings or RedriveSettings()
    try:
        async with DeadLetterTopics(settings) as dead_letters:
            if args.command == "list":
                _print_counts(await dead_letters.counts(), out)
                return 0
            split_dead_letter_topic(args.topic)
            if args.command == "show":
                letters = await dead_letters.read([args.topic])
                if args.waiting:
                    letters = [letter for letter in letters if not letter.redriven]
                for letter in letters[: args.limit]:
                    print(json.dumps(letter.summary(), ensure_ascii=False), file=out)
                return 0
            outcome = await dead_letters.redrive(
                args.topic, None if args.all else args.offset, dry_run=args.dry_run
            )
    except RedriveError as exc:
        print(f"redrive: {exc}", file=sys.stderr)
        return 1
    verb = "would redrive" if args.dry_run else "redriven"
    for letter in outcome.redriven:
        print(f"{verb}\t{letter.source}\t-> {letter.original_topic}\t{_event(letter)}", file=out)
    for letter in outcome.already:
        if args.offset:
            print(f"already redriven\t{letter.source}\t{_event(letter)}", file=out)
    for offset in outcome.missing:
        print(f"not found\t{args.topic}:{offset}", file=out)
    print(
        f"{len(outcome.redriven)} {verb}, {len(outcome.already)} already redriven, "
        f"{len(outcome.missing)} not found",
        file=sys.stderr,
    )
    return 1 if outcome.missing else 0


def _event(letter: DeadLetter) -> str:
    return "\t".join(
        letter.header(name) or "-" for name in ("ce_subject", "ce_type", "ce_id", "dlq_reason")
    )


def _print_counts(counts: list[TopicCounts], out: TextIO) -> None:
    if not counts:
        print("no dead letters", file=out)
        return
    width = max(len(c.topic) for c in counts)
    print(f"{'topic':<{width}}  records  redriven  waiting  reasons (waiting)", file=out)
    for c in counts:
        reasons = " ".join(f"{reason}={n}" for reason, n in c.waiting_by_reason.items()) or "-"
        print(
            f"{c.topic:<{width}}  {c.records:>7}  {c.redriven:>8}  {c.waiting:>7}  {reasons}",
            file=out,
        )


def main() -> None:
    sys.exit(asyncio.run(run(sys.argv[1:])))


if __name__ == "__main__":
    main()
