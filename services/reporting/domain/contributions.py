"""What one dossier contributes to the quarterly counters, derived from the facts reporting has
gathered about it (pure: the store keeps the facts and applies the differences).

Counters are keyed by quarter × unit × procedure × channel × level. The dossier's dimensions come
from its `DossierSubmitted` event; until that has arrived (topics are read independently, so a
processing step may come first) the dossier contributes nothing, and everything gathered counts
once it arrives. Definitions (the quarter is always read in Viet Nam time):

- received, online / counter / post, with_fee, paid_online, in_progress, in_progress_overdue:
  properties of the dossier, counted in the quarter it was submitted or recorded;
- finished: the first step reaching 9 (result issued), 3 (not received) or 8 (stopped). The
  outcome counts in the quarter of that step: results_issued (9), refused (3, or 8 after
  appraisal), withdrawn (8 after a withdrawal request, state 7); anything after is ignored;
- timeliness is scored for results (9) and refusals after appraisal (8), against the due date in
  force: the finishing step's `due_at`, else the last one announced. After the due instant: late;
  on an earlier day (Viet Nam calendar) than the due date: ahead of time; otherwise on time. More
  than one supplement request makes it late (Decision 766). No due date known: on time;
- in progress: not finished; overdue when processing flagged it (`overdue` step) and no later
  step moved the due date past that moment (an extension); otherwise late by supplements
  (`in_progress_late_by_supplements`) after more than one supplement request — Decision 766's rule
  applies to open dossiers as to finished ones, and the on-time rate counts both as late;
- supplement_requests: each transition into state 5, in the quarter it happened;
- digitised: a result issued with an electronic result document, for a dossier that came with
  electronic documents (online, or any attachment);
- notifications: delivered ("delivered" or "sent") or failed (anything else), in their quarter;
- rated, rated_satisfied, rating_points: the applicant's rating (one per dossier), in the quarter
  it was given: counted, counted as satisfied when its score is at least `SATISFIED_SCORE` (4 of
  5: "satisfied" or "very satisfied"), and its score added to the points (average = points /
  rated).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from services.reporting.domain.quarters import VN, quarter_of
from shared.contracts.events import StepAction

FIELDS: tuple[str, ...] = (
    "received",
    "online",
    "counter",
    "post",
    "with_fee",
    "paid_online",
    "in_progress",
    "in_progress_overdue",
    "in_progress_late_by_supplements",
    "results_issued",
    "digitised",
    "finished_early",
    "finished_on_time",
    "finished_late",
    "refused",
    "withdrawn",
    "supplement_requests",
    "notified_delivered",
    "notified_failed",
    "rated",
    "rated_satisfied",
    "rating_points",
)
CHANNEL_FIELDS = {1: "counter", 2: "online", 3: "post"}
DELIVERED = frozenset({"delivered", "sent"})
FINAL_STATES = frozenset({3, 8, 9, 10})
SUPPLEMENT_REQUESTED, WITHDRAWAL_REQUESTED = 5, 7
# Scores 1..5; 4 ("satisfied") and 5 ("very satisfied") count as satisfied, 1..3 as not yet.
SATISFIED_SCORE = 4

Contributions = dict[str, dict[str, int]]  # counter key -> field -> count
Counted = dict[str, Any]  # {"k": counter key, "f": field, "n": count}


def counter_key(quarter: str, unit: str, procedure: str, channel: int, level: int) -> str:
    return f"{quarter}|{unit}|{procedure}|{channel}|{level}"


def parse_key(key: str) -> dict[str, Any]:
    quarter, unit, procedure, channel, level = key.split("|")
    return {
        "quarter": quarter,
        "unit": unit,
        "procedure": procedure,
        "channel": int(channel),
        "level": int(level),
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def score(finished_at: datetime, due: datetime | None, supplement_requests: int) -> str:
    """`finished_early`, `finished_on_time` or `finished_late` (see the module docstring)."""
    if supplement_requests > 1:
        return "finished_late"
    if due is None:
        return "finished_on_time"
    finished_at, due = _aware(finished_at), _aware(due)
    if finished_at > due:
        return "finished_late"
    if finished_at.astimezone(VN).date() < due.astimezone(VN).date():
        return "finished_early"
    return "finished_on_time"


def contributions(facts: Mapping[str, Any]) -> Contributions:
    """The counters one dossier contributes to, from its facts document."""
    submitted = facts.get("submitted")
    if not submitted:
        return {}
    out: Contributions = defaultdict(lambda: defaultdict(int))

    def add(moment: datetime, field: str, count: int = 1) -> None:
        key = counter_key(
            quarter_of(_aware(moment)),
            submitted["unit"],
            submitted["procedure"],
            int(submitted["channel"]),
            int(submitted["level"]),
        )
        out[key][field] += count

    received_at = submitted["at"]
    channel = int(submitted["channel"])
    add(received_at, "received")
    add(received_at, CHANNEL_FIELDS[channel])
    if submitted.get("fee_vnd", 0) > 0:
        add(received_at, "with_fee")
    if facts.get("payments"):
        add(received_at, "paid_online")

    last_due: datetime | None = None
    overdue = False
    supplements = 0
    finish: Mapping[str, Any] | None = None
    for step in facts.get("steps", ()):
        if step.get("due_at") is not None:
            last_due = step["due_at"]
            if overdue and _aware(last_due) > _aware(step["at"]):
                overdue = False  # the due date was moved past the flag (an extension)
        if step.get("action") == StepAction.OVERDUE:
            overdue = True
        state, previous = step["state"], step.get("previous_state")
        if state == SUPPLEMENT_REQUESTED and previous != SUPPLEMENT_REQUESTED:
            supplements += 1
            add(step["at"], "supplement_requests")
        if state in FINAL_STATES:
            finish = step
            break

    if finish is None:
        add(received_at, "in_progress")
        if overdue:
            add(received_at, "in_progress_overdue")
        elif supplements > 1:
            add(received_at, "in_progress_late_by_supplements")
    else:
        at, state = finish["at"], finish["state"]
        due = finish.get("due_at") or last_due
        if state in (9, 10):
            add(at, "results_issued")
            add(at, score(at, due, supplements))
            electronic_in = channel == 2 or submitted.get("documents", 0) > 0
            if electronic_in and finish.get("electronic_result"):
                add(at, "digitised")
        elif state == 3:
            add(at, "refused")
        elif finish.get("previous_state") == WITHDRAWAL_REQUESTED:
            add(at, "withdrawn")
        else:
            add(at, "refused")
            add(at, score(at, due, supplements))

    for note in facts.get("notifications", ()):
        add(note["at"], "notified_delivered" if note["status"] in DELIVERED else "notified_failed")
    if rating := facts.get("rating"):
        score_given = int(rating["score"])
        add(rating["at"], "rated")
        add(rating["at"], "rating_points", score_given)
        if score_given >= SATISFIED_SCORE:
            add(rating["at"], "rated_satisfied")
    return {key: dict(fields) for key, fields in out.items()}


def to_triples(contributed: Contributions) -> list[Counted]:
    """A storable form: field names may not hold the dots of procedure codes, and FerretDB
    stores no nested arrays."""
    return [
        {"k": key, "f": field, "n": n}
        for key, fields in sorted(contributed.items())
        for field, n in sorted(fields.items())
    ]


def difference(counted: Iterable[Mapping[str, Any]], wanted: Contributions) -> Contributions:
    """The increments turning what was counted into what is wanted (zero entries dropped)."""
    delta: Contributions = defaultdict(lambda: defaultdict(int))
    for entry in counted:
        delta[entry["k"]][entry["f"]] -= int(entry["n"])
    for key, fields in wanted.items():
        for field, n in fields.items():
            delta[key][field] += n
    return {
        key: {f: n for f, n in fields.items() if n}
        for key, fields in delta.items()
        if any(fields.values())
    }
