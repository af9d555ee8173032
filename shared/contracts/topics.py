"""Kafka topic names and how they are created.

One place for every topic the platform uses. A breaking change to an event makes a new `.vN`
topic; within a version, changes are additive only.
"""

from __future__ import annotations

from dataclasses import dataclass

DOSSIER_SUBMITTED_TOPIC = "dvc.dossier.submitted.v1"
DOSSIER_SUPPLEMENTED_TOPIC = "dvc.dossier.supplemented.v1"
DOSSIER_WITHDRAWN_TOPIC = "dvc.dossier.withdrawn.v1"
DOSSIER_PAID_TOPIC = "dvc.dossier.paid.v1"
DOSSIER_RATED_TOPIC = "dvc.dossier.rated.v1"
DOSSIER_PROCESSED_TOPIC = "dvc.dossier.processed.v1"
DOSSIER_NOTIFIED_TOPIC = "dvc.dossier.notified.v1"
PUBLIC_DOSSIER_STATUS_TOPIC = "dvc.public.dossier-status.v1"
CATALOGUE_TOPIC = "dvc.catalogue.procedure.v1"

DOSSIER_TOPICS = (
    DOSSIER_SUBMITTED_TOPIC,
    DOSSIER_SUPPLEMENTED_TOPIC,
    DOSSIER_WITHDRAWN_TOPIC,
    DOSSIER_PAID_TOPIC,
    DOSSIER_PROCESSED_TOPIC,
    DOSSIER_NOTIFIED_TOPIC,
    DOSSIER_RATED_TOPIC,
)

# Consumer groups, one per service (and per purpose where a service reads a topic twice).
INTAKE_GROUP = "intake"
PROCESSING_GROUP = "processing"
NOTIFICATION_GROUP = "notification"
REPORTING_GROUP = "reporting"
# Notification's other readers, each with its own offsets so that one cannot hold up another:
# the public projection, the webhook deliveries, the national-portal synchronisation.
PUBLIC_STREAM_GROUP = "notification-public-stream"
WEBHOOK_GROUP = "notification-webhooks"
PORTAL_GROUP = "notification-portal"

# Which group reads which topics. The dead-letter topics follow from it.
SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    INTAKE_GROUP: (DOSSIER_PROCESSED_TOPIC, DOSSIER_NOTIFIED_TOPIC),
    PROCESSING_GROUP: (
        CATALOGUE_TOPIC,
        DOSSIER_SUBMITTED_TOPIC,
        DOSSIER_SUPPLEMENTED_TOPIC,
        DOSSIER_WITHDRAWN_TOPIC,
        DOSSIER_PAID_TOPIC,
    ),
    NOTIFICATION_GROUP: (DOSSIER_SUBMITTED_TOPIC, DOSSIER_PROCESSED_TOPIC),
    PUBLIC_STREAM_GROUP: (DOSSIER_SUBMITTED_TOPIC, DOSSIER_PROCESSED_TOPIC),
    WEBHOOK_GROUP: (PUBLIC_DOSSIER_STATUS_TOPIC,),
    PORTAL_GROUP: (
        DOSSIER_SUBMITTED_TOPIC,
        DOSSIER_SUPPLEMENTED_TOPIC,
        DOSSIER_WITHDRAWN_TOPIC,
        DOSSIER_PAID_TOPIC,
        DOSSIER_PROCESSED_TOPIC,
    ),
    REPORTING_GROUP: (CATALOGUE_TOPIC, *DOSSIER_TOPICS),
}

# The service each consumer group belongs to (a service's main group bears its name).
GROUP_SERVICE: dict[str, str] = {
    INTAKE_GROUP: INTAKE_GROUP,
    PROCESSING_GROUP: PROCESSING_GROUP,
    NOTIFICATION_GROUP: NOTIFICATION_GROUP,
    PUBLIC_STREAM_GROUP: NOTIFICATION_GROUP,
    WEBHOOK_GROUP: NOTIFICATION_GROUP,
    PORTAL_GROUP: NOTIFICATION_GROUP,
    REPORTING_GROUP: REPORTING_GROUP,
}


def groups_of(service: str) -> tuple[str, ...]:
    """The consumer groups a service reads with."""
    return tuple(group for group, owner in GROUP_SERVICE.items() if owner == service)


def subscriptions_of(service: str) -> tuple[str, ...]:
    """Every topic a service reads, over all its groups (no duplicates, in order)."""
    topics = (t for group in groups_of(service) for t in SUBSCRIPTIONS[group])
    return tuple(dict.fromkeys(topics))


def dead_letters_of(service: str) -> tuple[str, ...]:
    """The dead-letter topics a service writes: one per topic of each of its groups."""
    return tuple(dead_letter_topic(t, g) for g in groups_of(service) for t in SUBSCRIPTIONS[g])


# Which service may write which topics (besides the dead-letter topics of its own group).
# Deployment grants Kafka ACLs from this: each service writes only its own topics.
PRODUCERS: dict[str, tuple[str, ...]] = {
    INTAKE_GROUP: (
        DOSSIER_SUBMITTED_TOPIC,
        DOSSIER_SUPPLEMENTED_TOPIC,
        DOSSIER_WITHDRAWN_TOPIC,
        DOSSIER_PAID_TOPIC,
        CATALOGUE_TOPIC,
        DOSSIER_RATED_TOPIC,
    ),
    PROCESSING_GROUP: (DOSSIER_PROCESSED_TOPIC,),
    NOTIFICATION_GROUP: (DOSSIER_NOTIFIED_TOPIC, PUBLIC_DOSSIER_STATUS_TOPIC),
    REPORTING_GROUP: (),
}

# Topics other agencies may read (read-only users, no personal data).
PUBLIC_TOPICS: tuple[str, ...] = (PUBLIC_DOSSIER_STATUS_TOPIC, CATALOGUE_TOPIC)


def dead_letter_topic(topic: str, group: str) -> str:
    """The dead-letter topic of one consumer group on one topic: `<topic>.<group>.dlq`."""
    return f"{topic}.{group}.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int | None  # None: the broker's default; -1: keep forever
    compacted: bool = False

    def configs(self) -> dict[str, str]:
        configs: dict[str, str] = {}
        if self.compacted:
            configs["cleanup.policy"] = "compact"
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


DAY_MS = 24 * 60 * 60 * 1000

# How long the broker keeps records (Decree 13/2023: storage limitation). The dossier topics carry
# personal data (`DossierSubmitted`: the applicant's name, ID or tax code, phone and e-mail), so
# they are not kept forever: two years covers the reporting rebuild of the current and the
# previous year (`services.reporting.rebuild` replays what the topics still hold) and matches the
# default `--older-than-days` of intake's erasure command, so that no copy on a topic outlives
# the anonymised dossier by much. Dead-letter topics hold whole events too, and are read by
# people within days (alerts fire on every dead letter): 30 days. Both are [check] values, set
# per deployment (`DVC_TOPICS_RETENTION_MS`, `DVC_TOPICS_DEAD_LETTER_RETENTION_MS`; the
# Kubernetes manifests take the defaults below).
DOSSIER_RETENTION_MS = 730 * DAY_MS
DEAD_LETTER_RETENTION_MS = 30 * DAY_MS


def platform_topics(
    partitions: int = 3,
    retention_ms: int = DOSSIER_RETENTION_MS,
    suffix: str = "",
    dead_letter_retention_ms: int = DEAD_LETTER_RETENTION_MS,
) -> list[TopicSpec]:
    """Every topic the platform needs, with the given partition count and retention.

    `retention_ms` applies to the dossier topics and the public status topic (-1: forever),
    `dead_letter_retention_ms` to the dead-letter topics. The catalogue topic is compacted (one
    record per procedure code, kept: it holds no personal data). Dead-letter topics have one
    partition: they are small and read by people and redrive. `suffix` is appended to every
    name (services' `topic_suffix`, for isolated test runs).
    """
    specs = [TopicSpec(name + suffix, partitions, retention_ms) for name in DOSSIER_TOPICS]
    specs.append(TopicSpec(PUBLIC_DOSSIER_STATUS_TOPIC + suffix, partitions, retention_ms))
    specs.append(TopicSpec(CATALOGUE_TOPIC + suffix, 1, None, compacted=True))
    for group, topics in SUBSCRIPTIONS.items():
        specs.extend(
            TopicSpec(dead_letter_topic(t + suffix, group), 1, dead_letter_retention_ms)
            for t in topics
        )
    return specs
