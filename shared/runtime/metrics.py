"""Prometheus metrics shared by every service (each service declares its own in its `metrics.py`).

All live in the default registry, which `/metrics` exposes. FastStream's middleware adds the
`faststream_*` consumer and publisher metrics; `shared.runtime.http` adds the HTTP request metrics.
"""

from prometheus_client import Counter, Histogram

EVENTS_PARKED = Counter(
    "dvc_consumer_parked_total",
    "Events put back at the end of their topic to await an earlier event of their dossier.",
    ["topic", "group"],
)
CONSUMER_RETRIES = Counter(
    "dvc_consumer_retries_total",
    "Handler attempts that failed with a transient error and were retried.",
    ["topic", "group"],
)
DEAD_LETTERS = Counter(
    "dvc_dead_letters_total",
    "Messages sent to a dead-letter topic, by reason (malformed, permanent, exhausted).",
    ["topic", "group", "reason"],
)
DUPLICATE_EVENTS = Counter(
    "dvc_duplicate_events_total",
    "Events skipped because their id had already been applied (redelivery).",
    ["topic", "group"],
)
HTTP_REQUESTS = Counter(
    "dvc_http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["service", "method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "dvc_http_request_duration_seconds",
    "HTTP request latency, by route template.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10),
)
REJECTED_REQUESTS = Counter(
    "dvc_rejected_requests_total",
    "Requests refused for bad input (invalid data, bad file, body too large...), by reason.",
    ["service", "reason"],
)
MONGO_COMMANDS = Counter(
    "dvc_mongo_commands_total",
    "Database commands (round trips) sent, by command name and collection ('' for none), from "
    "PyMongo's command monitoring (`shared.runtime.mongo`; off with DVC_MONGO_COMMAND_COUNTS=0).",
    ["service", "command", "collection"],
)
