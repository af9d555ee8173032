"""Processing's business and security metrics (names documented beside the dashboards).

Forbidden attempts are counted by `shared.runtime.auth`'s `dvc_forbidden_total{service, action}`,
which processing also increments with its own action names (e.g. `request_supplement`).
"""

from prometheus_client import Counter, Gauge, Histogram

CASES = Gauge(
    "dvc_processing_cases",
    "Active cases (not finished), by lead unit and state (1-10); refreshed periodically.",
    ["unit", "state"],
)
OVERDUE_CASES = Gauge(
    "dvc_processing_overdue_cases",
    "Cases past their due date in force and not finished, by unit; refreshed periodically.",
    ["unit"],
)
DEADLINE_ALERTS = Counter(
    "dvc_processing_deadline_alerts_total",
    "Deadline warnings and overdue flags emitted (deadline_warning_50, _80, overdue).",
    ["action"],
)
ACTIONS = Counter(
    "dvc_processing_actions_total",
    "Workflow steps applied, by action and actor kind (officer, applicant, system).",
    ["action", "actor"],
)
REFUSED_ACTIONS = Counter(
    "dvc_processing_refused_actions_total",
    "Officer actions refused, by action and reason (forbidden, lifecycle, rule, conflict).",
    ["action", "reason"],
)
PAYMENT_AMOUNT_MISMATCHES = Counter(
    "dvc_processing_payment_amount_mismatches_total",
    "Payments (dvc.dossier.paid.v1) refused because their amount differs from the amount the "
    "unit requested; each is dead-lettered and the case keeps awaiting its payment.",
)
CASES_OPENED = Counter(
    "dvc_processing_cases_opened_total",
    "Cases opened from submitted dossiers, by unit and channel (1 counter, 2 online, 3 post).",
    ["unit", "channel"],
)
DUE_DATES_WITHOUT_CALENDAR = Counter(
    "dvc_processing_due_dates_without_calendar_total",
    "Due dates set in a year the official holiday calendar (holidays package, VN) does not "
    "cover: its holidays are unknown and every weekday was counted as a working day.",
)
SCAN_SECONDS = Histogram(
    "dvc_processing_deadline_scan_seconds",
    "Duration of one pass of the deadline scanner (the replica holding the lease).",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30),
)
SCAN_FAILURES = Counter(
    "dvc_processing_scan_failures_total",
    "Cases the deadline scanner could not check (set aside for 15 minutes; see the logs).",
)
