from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Environment variables: `DVC_INTAKE_<FIELD>`, e.g. `DVC_INTAKE_KAFKA_BOOTSTRAP`."""

    model_config = SettingsConfigDict(env_prefix="DVC_INTAKE_", extra="ignore")

    service_name: str = "intake"
    http_port: int = 8001
