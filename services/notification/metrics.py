"""Business metrics of the notification service (all prefixed `dvc_notification_`).

- `messages_total{channel,status}`: delivery records reaching a status (created, sent,
  delivered, technical-failure, permanent-failure).
- `retries_total{channel,reason}`: transient failures rescheduled (error, breaker-open).
- `fallbacks_total{from_channel,to_channel}`: messages moved to the next channel.
- `breaker_state{provider}` (gauge: 0 closed, 1 half-open, 2 open) and
  `breaker_transitions_total{provider,state}`.
- `rate_limited_seconds_total{provider}`: time spent waiting for a provider's token bucket.
- `provider_latency_seconds{provider,outcome}` (histogram; ok, transient, permanent).
- `receipts_total{outcome}`: SMS receipts (delivered, failed, duplicate, unknown,
  bad_signature, stale, missing, invalid).
- `events_skipped_total{reason}`: events that send nothing new (internal-step, duplicate).

For other agencies: `dvc_public_events_total`, `dvc_webhook_attempts_total{outcome}`,
`dvc_webhook_delivery_seconds`, `dvc_webhook_subscription_paused{subscription,agency}`,
`dvc_webhook_queued_deliveries`.
"""

from prometheus_client import Counter, Gauge, Histogram

from services.notification.adapters.breaker import BreakerState

MESSAGES = Counter(
    "dvc_notification_messages_total",
    "Delivery records reaching a status, by channel.",
    ["channel", "status"],
)
RETRIES = Counter(
    "dvc_notification_retries_total",
    "Deliveries rescheduled after a transient failure.",
    ["channel", "reason"],
)
FALLBACKS = Counter(
    "dvc_notification_fallbacks_total",
    "Messages moved to the next channel after a final failure.",
    ["from_channel", "to_channel"],
)
BREAKER_STATE = Gauge(
    "dvc_notification_breaker_state",
    "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
    ["provider"],
)
BREAKER_TRANSITIONS = Counter(
    "dvc_notification_breaker_transitions_total",
    "Circuit breaker state changes per provider.",
    ["provider", "state"],
)
RATE_LIMITED_SECONDS = Counter(
    "dvc_notification_rate_limited_seconds_total",
    "Seconds spent waiting for a provider's rate limit.",
    ["provider"],
)
PROVIDER_LATENCY = Histogram(
    "dvc_notification_provider_latency_seconds",
    "Latency of one call to a provider, by outcome.",
    ["provider", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECEIPTS = Counter(
    "dvc_notification_receipts_total",
    "SMS delivery receipts received, by outcome.",
    ["outcome"],
)
EVENTS_SKIPPED = Counter(
    "dvc_notification_events_skipped_total",
    "Events that send no new message, by reason.",
    ["reason"],
)

# What goes to other agencies: the public stream and the webhook deliveries.
PUBLIC_EVENTS = Counter(
    "dvc_public_events_total", "Events published on the public dossier-status stream."
)
WEBHOOK_ATTEMPTS = Counter(
    "dvc_webhook_attempts_total",
    "Webhook delivery attempts by outcome (delivered, retry, failed, refused).",
    ["outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "dvc_webhook_delivery_seconds",
    "Time for a subscriber to answer a webhook delivery.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_PAUSED = Gauge(
    "dvc_webhook_subscription_paused",
    "1 while a subscription is paused by its circuit breaker (its owner is alerted).",
    ["subscription", "agency"],
)
WEBHOOK_QUEUED = Gauge(
    "dvc_webhook_queued_deliveries", "Webhook deliveries waiting in this replica's queues."
)

BREAKER_STATE_VALUES = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
}

# National Public Service Portal sync (services/notification/portal/). The share is one of the
# national indicators (Decision 766/QĐ-TTg): dossiers the portal holds as they stand / all known.
PORTAL_SYNC_DOSSIERS = Gauge(
    "dvc_portal_sync_dossiers",
    "Dossiers per portal sync status (pending, waiting, synced, failed), recounted periodically.",
    ["status"],
)
PORTAL_SYNC_SHARE = Gauge(
    "dvc_portal_sync_share",
    "Share of known dossiers the national portal holds up to date (synced / all; 1 when none).",
)
PORTAL_SYNC_ATTEMPTS = Counter(
    "dvc_portal_sync_attempts_total",
    "Messages sent to the national portal, by kind (dossier, step) and outcome.",
    ["kind", "outcome"],
)
PORTAL_SEND_SECONDS = Histogram(
    "dvc_portal_send_seconds",
    "Latency of one message to the national portal, by kind and outcome.",
    ["kind", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
