"""Public, versioned event contracts of the dossier lifecycle.

Each model is the `data` of a CloudEvent (see `shared.contracts.cloudevents`) published on its
topic, keyed by
the dossier code. Subscribers outside the Ministry rely on these: within a version, change them
additively only (new optional fields); anything else needs a new `.vN` topic. The JSON Schemas in
`contracts/` are snapshots of these models, checked by the test suite.

Contact details and the applicant's identity travel only on internal topics; what other agencies
read is a redacted projection.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

from shared.contracts import topics

# `<agency id>-YYMMDD-NNNN`, e.g. 000.17.22.H56-210531-0001 (Circular 01/2018 art. 19).
DOSSIER_CODE_PATTERN = r"^[0-9A-Z]{3}(\.[0-9A-Z]{2,3}){3}-\d{6}-\d{4}$"
DossierCode = Annotated[
    str, Field(pattern=DOSSIER_CODE_PATTERN, examples=["000.00.21.G12-190426-0001"])
]


class Channel(IntEnum):
    """How the dossier reached the Ministry; the national portal's channel codes."""

    COUNTER = 1
    ONLINE = 2
    POST = 3


class DossierState(IntEnum):
    """Dossier states as synchronised with the National Public Service Portal."""

    SUBMITTED = 1  # submitted online, awaiting intake check
    RECEIVED = 2  # complete: code issued, receipt with appointment date
    NOT_RECEIVED = 3  # refused at intake, or redirected to the right authority
    IN_PROCESSING = 4
    SUPPLEMENT_REQUESTED = 5
    PAYMENT_REQUESTED = 6  # financial obligation requested
    WITHDRAWAL_REQUESTED = 7
    STOPPED = 8  # stopped, refused after appraisal, or withdrawn
    PROCESSED = 9  # result issued
    RESULT_RETURNED = 10


class ApplicantKind(StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


class Applicant(BaseModel):
    kind: ApplicantKind
    name: str = Field(min_length=1, max_length=300)
    # A 12-digit citizen ID for a person, a tax code for an organisation. Personal data.
    identifier: str = Field(min_length=10, max_length=14)


class Contact(BaseModel):
    email: str | None = None
    phone: str | None = None


class DocumentRef(BaseModel):
    """A stored document (attachment or result); the bytes stay in the owning service's storage."""

    document_type: str = Field(description="Code of the required document in the catalogue")
    file_name: str
    content_type: str
    size_bytes: int = Field(ge=0)
    storage_id: str = Field(description="Where the owning service keeps the bytes")
    sha256: str | None = None


class DossierEvent(BaseModel):
    """Fields every dossier event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    topic: ClassVar[str]
    event_type: ClassVar[str]

    dossier_code: DossierCode
    occurred_at: AwareDatetime


class DossierSubmitted(DossierEvent):
    """A dossier was submitted online, or recorded at the counter or from the post."""

    topic: ClassVar[str] = topics.DOSSIER_SUBMITTED_TOPIC
    event_type: ClassVar[str] = "vn.gov.most.dvc.dossier.submitted.v1"

    procedure_code: str
    unit_code: str = Field(description="Lead unit of the procedure")
    level: int = Field(ge=1, le=4, description="Online service level of the procedure")
    channel: Channel
    applicant: Applicant
    contact: Contact
    documents: list[DocumentRef] = Field(default_factory=list)
    form: dict[str, Any] = Field(default_factory=dict)
    fee_vnd: int = Field(default=0, ge=0)


class DossierSupplemented(DossierEvent):
    """The applicant supplied the documents a supplement request asked for."""

    topic: ClassVar[str] = topics.DOSSIER_SUPPLEMENTED_TOPIC
    event_type: ClassVar[str] = "vn.gov.most.dvc.dossier.supplemented.v1"

    documents: list[DocumentRef] = Field(min_length=1)
    note: str | None = None


class DossierWithdrawn(DossierEvent):
    """The applicant asked to withdraw the dossier (an officer confirms it in processing)."""

    topic: ClassVar[str] = topics.DOSSIER_WITHDRAWN_TOPIC
    event_type: ClassVar[str] = "vn.gov.most.dvc.dossier.withdrawn.v1"

    reason: str | None = None


class DossierPaid(DossierEvent):
    """The fee of a level-4 dossier was paid online."""

    topic: ClassVar[str] = topics.DOSSIER_PAID_TOPIC
    event_type: ClassVar[str] = "vn.gov.most.dvc.dossier.paid.v1"

    transaction_id: str
    amount_vnd: int = Field(gt=0)
    provider: str


class DossierRated(DossierEvent):
    """The applicant rated the service once the dossier was finished (state 8 or 10): one
    rating per dossier, 1 (not satisfied at all) to 5 (very satisfied), with an optional
    comment."""

    topic: ClassVar[str] = topics.DOSSIER_RATED_TOPIC
    event_type: ClassVar[str] = "vn.gov.most.dvc.dossier.rated.v1"

    procedure_code: str
    unit_code: str = Field(description="Lead unit of the procedure")
    score: int = Field(ge=1, le=5, description="1 (not satisfied at all) to 5 (very satisfied)")
    comment: str | None = Field(default=None, max_length=2000)


class StepAction(StrEnum):
    """What one step of the processing workflow did: the `action` of `DossierProcessed`.

    The actions an officer or the applicant takes (processing's `Action` takes its values from
    here), then the steps the system announces by itself. Branch on the members and on the
    predicates below, never on parts of the strings. Adding a value is an additive change of
    the contract (readers skip or ignore a step they do not know); removing or renaming one
    needs a new topic version.
    """

    RECEIVE = "receive"  # intake check passed: 1 → 2 (an electronic dossier then goes on to 4)
    REFUSE_INTAKE = "refuse_intake"  # not received: 1 → 3
    START_PROCESSING = "start_processing"  # 2 → 4
    REQUEST_SUPPLEMENT = "request_supplement"  # 4 → 5 (the clock stops); at intake 1 stays 1
    SUPPLEMENT_RECEIVED = "supplement_received"  # 5 → 4; at intake 1 stays 1
    REQUEST_PAYMENT = "request_payment"  # 4 → 6, with `amount_vnd`
    PAYMENT_RECEIVED = "payment_received"  # 6 → 4
    REFUSE = "refuse"  # refused after appraisal: 4 → 8
    REQUEST_WITHDRAWAL = "request_withdrawal"  # 1, 2, 4, 5, 6 → 7
    CONFIRM_WITHDRAWAL = "confirm_withdrawal"  # 7 → 8
    ISSUE_RESULT = "issue_result"  # 4 → 9
    RETURN_RESULT = "return_result"  # 9 → 10
    ASSIGN = "assign"  # steps that keep the state
    APPROVE = "approve"
    EXTEND = "extend"  # a new due date (Form 04)
    # Announced by the system.
    CLOCK_STARTED = "clock_started"  # the fee was paid: the deadline clock starts
    DEADLINE_WARNING_50 = "deadline_warning_50"  # half of the legal time used
    DEADLINE_WARNING_80 = "deadline_warning_80"  # 80% of the legal time used
    OVERDUE = "overdue"  # past the due date in force

    @property
    def is_deadline_warning(self) -> bool:
        """A warning to the unit before the due date: internal, never shown to the applicant
        nor to other agencies."""
        return self in DEADLINE_WARNING_FRACTIONS

    @property
    def is_deadline_alert(self) -> bool:
        """A deadline warning or the overdue flag."""
        return self.is_deadline_warning or self is StepAction.OVERDUE

    @property
    def is_public(self) -> bool:
        """Whether other agencies (and the national portal) see this step."""
        return not self.is_deadline_warning

    @classmethod
    def deadline_warning(cls, fraction: float) -> StepAction:
        """The warning at `fraction` of the legal time; `ValueError` for a fraction the contract
        does not name."""
        for action, named in DEADLINE_WARNING_FRACTIONS.items():
            if named == fraction:
                return action
        raise ValueError(
            f"no deadline warning at {fraction}: the contract names "
            + ", ".join(str(f) for f in DEADLINE_WARNING_FRACTIONS.values())
        )


# The fraction of the legal time (office time) at which each deadline warning fires.
DEADLINE_WARNING_FRACTIONS: dict[StepAction, float] = {
    StepAction.DEADLINE_WARNING_50: 0.5,
    StepAction.DEADLINE_WARNING_80: 0.8,
}


class PublicStep(StrEnum):
    """The step of `PublicDossierStatus`: the submission, then every public `StepAction` (the
    deadline warnings stay inside the unit)."""

    SUBMIT = "submit"
    RECEIVE = "receive"
    REFUSE_INTAKE = "refuse_intake"
    START_PROCESSING = "start_processing"
    REQUEST_SUPPLEMENT = "request_supplement"
    SUPPLEMENT_RECEIVED = "supplement_received"
    REQUEST_PAYMENT = "request_payment"
    PAYMENT_RECEIVED = "payment_received"
    REFUSE = "refuse"
    REQUEST_WITHDRAWAL = "request_withdrawal"
    CONFIRM_WITHDRAWAL = "confirm_withdrawal"
    ISSUE_RESULT = "issue_result"
    RETURN_RESULT = "return_result"
    ASSIGN = "assign"
    APPROVE = "approve"
    EXTEND = "extend"
    CLOCK_STARTED = "clock_started"
    OVERDUE = "overdue"

    @classmethod
    def of(cls, action: StepAction) -> PublicStep:
        """The public step of a public processing step (`ValueError` for an internal one)."""
        if not action.is_public:
            raise ValueError(f"{action.value} is internal to the unit")
        return cls(action.value)


# On the public topic the step is an *extensible* enumeration: the producer sends only the listed
# values, and agencies are told to skip one they do not know, so new steps stay an additive change
# (`x-extensible-enum`, after Zalando's API guidelines). The published schema of `.v1` had a free
# string here; a closed `enum` would be a narrowing `shared.tools.compat` refuses against the
# baseline.
ExtensiblePublicStep = Annotated[
    PublicStep,
    WithJsonSchema({"type": "string", "x-extensible-enum": [step.value for step in PublicStep]}),
]


class DossierProcessed(DossierEvent):
    """A step of the processing workflow: a transition, a deadline warning or an overdue flag."""

    topic: ClassVar[str] = topics.DOSSIER_PROCESSED_TOPIC
    event_type: ClassVar[str] = "vn.gov.most.dvc.dossier.processed.v1"

    procedure_code: str
    unit_code: str
    action: StepAction = Field(description="What happened: the step of the workflow")
    state: DossierState
    previous_state: DossierState | None = None
    due_at: datetime | None = Field(default=None, description="The due date in force")
    actor: str | None = Field(default=None, description="Officer id, or 'system'")
    note: str | None = None
    citizen_action: str | None = Field(
        default=None, description="What the applicant must do now, if anything"
    )
    requested_documents: list[str] = Field(default_factory=list)
    result_document: DocumentRef | None = None
    amount_vnd: int | None = Field(
        default=None,
        gt=0,
        description="On request_payment: the amount the unit asks the applicant to pay (VND)",
    )


class DossierNotified(DossierEvent):
    """The final outcome of one message to the applicant on one channel."""

    topic: ClassVar[str] = topics.DOSSIER_NOTIFIED_TOPIC
    event_type: ClassVar[str] = "vn.gov.most.dvc.dossier.notified.v1"

    notification_id: str
    source_event_id: str = Field(description="Id of the event the message is about")
    channel: str = Field(description="sms, email or inbox")
    status: str = Field(description="delivered, sent or technical-failure")
    template: str | None = Field(default=None, description="Template name and version")
    title: str | None = Field(default=None, description="Message title (inbox channel)")
    body: str | None = Field(
        default=None, description="Message text, for the inbox channel only (no contact details)"
    )


class PublicDossierStatus(DossierEvent):
    """A dossier's step as other agencies may see it: no citizen ID, name, phone, e-mail or
    attachment — only the dossier, procedure, unit, channel, state and dates."""

    topic: ClassVar[str] = topics.PUBLIC_DOSSIER_STATUS_TOPIC
    event_type: ClassVar[str] = "vn.gov.most.dvc.public.dossier-status.v1"

    procedure_code: str
    unit_code: str
    state: DossierState
    action: ExtensiblePublicStep = Field(
        title="Action",
        description="The step: submit, receive, request_supplement, ... (a value not listed "
        "may appear in a later release: skip it)",
    )
    channel: Channel | None = Field(default=None, description="Known on the submission step")
    due_at: datetime | None = Field(default=None, description="The due date in force")


EVENT_MODELS: tuple[type[DossierEvent], ...] = (
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
    DossierPaid,
    DossierProcessed,
    DossierNotified,
    PublicDossierStatus,
    DossierRated,
)
EVENT_MODELS_BY_TYPE: dict[str, type[DossierEvent]] = {m.event_type: m for m in EVENT_MODELS}
