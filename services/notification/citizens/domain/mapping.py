"""Which citizen message each event sends: the ONE place that maps workflow steps to messages.

The mapping keys on the step (`StepAction`, the contract's enumeration) where the step itself says
what the citizen must hear, and otherwise on the dossier `state` the step entered (the national
portal's stable numbering):

| event / step                        | state                     | message                 |
|-------------------------------------|---------------------------|-------------------------|
| DossierSubmitted                    | –                         | `receipt`               |
| a deadline warning (50 %, 80 %)     | any                       | none (internal)         |
| `overdue`                           | any                       | `overdue_apology`       |
| `extend`                            | any                       | `extension_apology`     |
| `request_supplement`                | any (1 stays 1 at intake) | `supplement_requested`  |
| `confirm_withdrawal`                | 8 stopped                 | `withdrawn`             |
| any                                 | 2 received                | `received`              |
| any, previous state 1 (1 → 4)       | 4 in processing           | `received`              |
| any                                 | 3 not received            | `not_received`          |
| any                                 | 5 supplement requested    | `supplement_requested`  |
| any                                 | 6 payment requested       | `payment_requested`     |
| any other                           | 8 stopped                 | `refused`               |
| any                                 | 9 processed               | `result_issued`         |
| any                                 | 10 result returned        | `result_returned`       |
| anything else (assign, approve, ...)| 1, 4, 7                   | none                    |

The state rows apply to transitions only: a step that keeps its state (`previous_state == state`,
e.g. `assign`, `approve`, `clock_started`) sends nothing unless a step row matches.
"""

from __future__ import annotations

from enum import StrEnum

from shared.contracts.events import DossierState, StepAction


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
    action: StepAction, state: DossierState, previous_state: DossierState | None = None
) -> MessageKind | None:
    """The message a processing step sends to the citizen, or None for internal steps."""
    action = StepAction(action)
    if action.is_deadline_warning:
        return None  # for the unit's officers, never for the citizen
    if action is StepAction.OVERDUE:
        return MessageKind.OVERDUE_APOLOGY
    if action is StepAction.EXTEND:
        return MessageKind.EXTENSION_APOLOGY
    if action is StepAction.REQUEST_SUPPLEMENT:
        return MessageKind.SUPPLEMENT_REQUESTED  # also at the intake check, where 1 stays 1
    if action is StepAction.CONFIRM_WITHDRAWAL and state == DossierState.STOPPED:
        return MessageKind.WITHDRAWN
    if previous_state == state:
        return None  # a step within the state: the citizen was told when it was entered
    if state == DossierState.IN_PROCESSING and previous_state == DossierState.SUBMITTED:
        return MessageKind.RECEIVED  # an electronic dossier received straight into processing
    return _BY_STATE.get(state)
