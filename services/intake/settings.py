from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.runtime.settings import ServiceSettings, unfit_for_production


class IntakeSettings(ServiceSettings):
    """Environment variables: `DVC_INTAKE_<FIELD>`, e.g. `DVC_INTAKE_AGENCY_ID`."""

    model_config = SettingsConfigDict(env_prefix="DVC_INTAKE_", extra="ignore")

    service_name: str = "intake"
    http_port: int = 8001

    # The receiving agency's id in the national dotted format; it prefixes every dossier code
    # (Circular 01/2018 art. 19). The Ministry's real id is to be confirmed [check].
    agency_id: str = Field(default="000.00.21.G12", pattern=r"^[0-9A-Z]{3}(\.[0-9A-Z]{2,3}){3}$")
    agency_name: str = "Bộ Khoa học và Công nghệ"
    # Where citizens reach this gateway; used in receipt links and QR codes.
    public_base_url: str = "http://127.0.0.1:8001"

    max_file_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_dossier_bytes: int = Field(default=30 * 1024 * 1024, gt=0)
    max_files: int = Field(default=20, gt=0)
    max_json_bytes: int = Field(default=256 * 1024, gt=0)

    # Per client address, per minute (moving window), in this replica.
    submissions_per_minute: int = 30
    tracking_per_minute: int = 120
    # Wrong tracking secrets tolerated per client before tracking is refused for a while.
    wrong_secrets_allowed: int = 5
    wrong_secret_window_seconds: int = 900

    counter_backdate_days: int = Field(
        default=3,
        ge=0,
        le=30,
        description="How far back (days) a counter officer may date a dossier's receipt: a "
        "paper dossier's receipt time dates its code and starts its deadline. 3 covers a "
        "weekend (received by post on Friday, recorded on Monday)",
    )

    personal_data_retention_days: int = Field(
        default=730,
        ge=0,
        description="How long after a dossier finished (3, 8, 10) its personal data is kept; "
        "the default of `python -m services.intake.erasure --older-than-days` [check]. The "
        "dossier topics keep their records as long "
        "(shared/contracts/topics.py DOSSIER_RETENTION_MS)",
    )

    seed_catalogue: bool = Field(
        default=True, description="Load the shipped catalogue at start-up (idempotent)"
    )
    relay_poll_seconds: float = Field(default=5.0, description="Scan for unpublished events")
    procedure_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a submission may use a procedure read from the catalogue before "
        "reading it again (one read per dossier otherwise). A change made through another replica "
        "reaches this one's submissions within this time; 0 reads every time",
    )

    payment_base_url: str = "http://127.0.0.1:8010"
    payment_merchant_code: str = "BKHCN"
    payment_request_key: str = "dev-payment-request-key"
    payment_callback_key: str = "dev-payment-callback-key"
    payment_return_url: str | None = Field(
        default=None,
        description="Where the payment platform sends the citizen back after paying; `{code}` "
        "stands for the dossier code (e.g. the portal's "
        "`https://dichvucong.example/ho-so/{code}/thanh-toan/ket-qua`). Default: the tracking API",
    )
    payment_recovery_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often to complete payment callbacks recorded but not finished (a crash)",
    )
    processing_token: str | None = Field(
        default=None, description="Bearer token for processing's result endpoint (a secret)"
    )
    processing_base_url: str = Field(
        default="http://127.0.0.1:8002", description="Where result documents are fetched from"
    )

    @model_validator(mode="after")
    def _no_development_defaults_in_production(self) -> "IntakeSettings":
        if self.environment != "production":
            return self
        for key in (self.payment_request_key, self.payment_callback_key):
            if key.startswith("dev-") or len(key) < 32:
                raise ValueError(
                    "production needs DVC_INTAKE_PAYMENT_REQUEST_KEY and _CALLBACK_KEY set to "
                    "the payment platform's keys (32 characters at least)"
                )
        for name, url in (
            ("DVC_INTAKE_PUBLIC_BASE_URL (every receipt link and QR code)", self.public_base_url),
            ("DVC_INTAKE_PAYMENT_BASE_URL", self.payment_base_url),
            *(
                (("DVC_INTAKE_PAYMENT_RETURN_URL", self.payment_return_url),)
                if self.payment_return_url
                else ()
            ),
        ):
            if problem := unfit_for_production(name, url):
                raise ValueError(problem)
        return self
