"""Intake's business and security metrics (names documented beside the dashboards)."""

from prometheus_client import Counter

SUBMISSIONS = Counter(
    "dvc_dossiers_submitted_total",
    "Dossiers accepted by intake, by lead unit, level and channel (1 counter, 2 online, 3 post).",
    ["unit", "level", "channel"],
)
THROTTLED_REQUESTS = Counter(
    "dvc_throttled_requests_total",
    "Requests answered 429 by a rate limit, by limit.",
    ["service", "limit"],
)
WRONG_TRACKING_SECRETS = Counter(
    "dvc_wrong_tracking_secrets_total",
    "Tracking requests with a wrong dossier secret (a sign of code enumeration when it spikes).",
)
PAYMENT_CALLBACKS = Counter(
    "dvc_payment_callbacks_total",
    "Payment-provider callbacks, by outcome (settled, failed, rejected, replayed).",
    ["outcome"],
)
CITIZEN_ACTIONS = Counter(
    "dvc_citizen_actions_total",
    "Supplements, withdrawals, payments started and ratings given by applicants.",
    ["action"],
)
