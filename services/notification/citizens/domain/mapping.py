"""Which citizen message each event sends: the ONE place that maps workflow steps to messages.

Processing names its steps with free `action` strings that may grow, so the mapping keys on the
dossier `state` (the national portal's stable numbering) and looks at `action` only where the
state alone cannot tell:

| event / action                      | state                     | message                 |
|-------------------------------------|---------------------------|-------------------------|
| DossierSubmitted                    | –                         | `receipt`               |
| action contains `warning`           | any                       | none (internal)         |
| action contains `overdue`           | any                       | `overdue_apology`       |
| action contains `extend`/`extension`| any                       | `extension_apology`     |
| action contains `request_supplement`| any (1 stays 1 at intake) | `supplement_requested`  |
| any                                 | 2 received                | `received`              |
| any, previous state 1 (1 → 4)       | 4 in processing           | `received`              |
| any                                 | 3 not received            | `not_received`          |
| any                                 | 5 supplement requested    | `supplement_requested`  |
| any                                 | 6 payment requested       | `payment_requested`     |
| action contains `withdraw`          | 8 stopped                 | `withdrawn`             |
| any other                           | 8 stopped                 | `refused`               |
| any                                 | 9 processed               | `result_issued`         |
| any                                 | 10 result returned        | `result_returned`       |
| anything else (assign, resume, ...) | 1, 4, 7                   | none                    |

The state rows apply to transitions only: a step that keeps its state (`previous_state == state`,
e.g. `assign`, `approve`, `clock_started`) sends nothing unless an action row matches.
"""

from __future__ import annotations

from enum import StrEnum

from shared.events import DossierState


class MessageKind(StrEnum):
    RECEIPT = "receipt"
    RECEIVED = "received"
    NOT_RECEIVED = "not_received"
    SUPPLEMENT_REQUESTED = "supplement_requested"
    PAYMENT_REQUESTED = "payment_requested"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    RESULT_ISSUED = "result_issued"
    RESULT_RETURNED = "result_returned"
    EXTENSION_APOLOGY = "extension_apology"
    OVERDUE_APOLOGY = "overdue_apology"


# The template version in use per message; bump it when the wording changes, so every delivery
# record names the exact text it was sent with.
TEMPLATE_VERSIONS: dict[MessageKind, str] = {kind: "v1" for kind in MessageKind}

_BY_STATE: dict[DossierState, MessageKind] = {
    DossierState.RECEIVED: MessageKind.RECEIVED,
    DossierState.NOT_RECEIVED: MessageKind.NOT_RECEIVED,
    DossierState.SUPPLEMENT_REQUESTED: MessageKind.SUPPLEMENT_REQUESTED,
    DossierState.PAYMENT_REQUESTED: MessageKind.PAYMENT_REQUESTED,
    DossierState.STOPPED: MessageKind.REFUSED,
    DossierState.PROCESSED: MessageKind.RESULT_ISSUED,
    DossierState.RESULT_RETURNED: MessageKind.RESULT_RETURNED,
}


def template_name(kind: MessageKind) -> str:
    """`receipt.v1`: the template (and version) a message kind is rendered with."""
    return f"{kind.value}.{TEMPLATE_VERSIONS[kind]}"


def kind_for_step(
    action: str, state: DossierState, previous_state: DossierState | None = None
) -> MessageKind | None:
    """The message a processing step sends to the citizen, or None for internal steps."""
    name = action.strip().lower()
    if "warning" in name:
        return None  # deadline_warning_50 etc.: for officers, never for the citizen
    if "overdue" in name:
        return MessageKind.OVERDUE_APOLOGY
    if "extend" in name or "extension" in name:
        return MessageKind.EXTENSION_APOLOGY
    if "request_supplement" in name:
        return MessageKind.SUPPLEMENT_REQUESTED  # also at the intake check, where 1 stays 1
    if state == DossierState.STOPPED and "withdraw" in name:
        return MessageKind.WITHDRAWN
    if previous_state == state:
        return None  # a step within the state: the citizen was told when it was entered
    if state == DossierState.IN_PROCESSING and previous_state == DossierState.SUBMITTED:
        return MessageKind.RECEIVED  # an electronic dossier received straight into processing
    return _BY_STATE.get(state)
