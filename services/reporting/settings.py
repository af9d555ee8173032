from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.runtime.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    """Environment variables: `DVC_REPORTING_<FIELD>`, e.g. `DVC_REPORTING_KAFKA_BOOTSTRAP`."""

    model_config = SettingsConfigDict(env_prefix="DVC_REPORTING_", extra="ignore")

    service_name: str = "reporting"
    http_port: int = 8004
    # How often the business metrics are recomputed from the read models.
    metrics_refresh_seconds: float = Field(default=30.0, gt=0)
