from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.processing.domain.workflow import check_warning_fractions
from shared.runtime.settings import ServiceSettings


class ProcessingSettings(ServiceSettings):
    """Environment variables: `DVC_PROCESSING_<FIELD>`, e.g. `DVC_PROCESSING_KAFKA_BOOTSTRAP`."""

    model_config = SettingsConfigDict(env_prefix="DVC_PROCESSING_", extra="ignore")

    service_name: str = "processing"
    http_port: int = 8002
    # The event `source` of what processing publishes.
    event_source: str = "/dvc/processing"

    # Deadline rules (see services/processing/domain/deadlines.py, DeadlinePolicy).
    supplement_clock: str = Field(default="restart", pattern="^(restart|resume)$")
    deadline_ends_at: str = Field(
        default="end_of_day", pattern="^(end_of_day|end_of_office_hours)$"
    )
    # Fractions of the legal time that raise a warning; the due date itself raises `overdue`.
    # Only those the contract names a step for (deadline_warning_50, deadline_warning_80).
    warning_fractions: list[float] = Field(default_factory=lambda: [0.5, 0.8])

    # How long a submitted dossier waits for its procedure to reach processing's catalogue copy
    # (start-up: the catalogue topic may not be read yet) before it is dead-lettered.
    unknown_procedure_wait_seconds: float = Field(default=10.0, ge=0)
    procedure_cache_seconds: float = Field(default=30.0, ge=0)

    # Background work.
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    scanner_interval_seconds: float = Field(default=30.0, gt=0)
    scanner_lease_seconds: float = Field(default=60.0, gt=0)
    scanner_batch_size: int = Field(default=500, ge=1)
    metrics_refresh_seconds: float = Field(default=30.0, gt=0)
    calendar_refresh_seconds: float = Field(default=60.0, gt=0)
    scanner_enabled: bool = True

    @field_validator("warning_fractions")
    @classmethod
    def _named_warning_fractions(cls, fractions: list[float]) -> list[float]:
        return list(check_warning_fractions(fractions))

    # Result documents (issue the result).
    max_result_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    result_content_types: list[str] = Field(
        default_factory=lambda: [
            "application/pdf",
            "application/xml",
            "image/jpeg",
            "image/png",
            "application/pkcs7-signature",
        ]
    )
