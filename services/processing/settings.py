from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ProcessingSettings(ServiceSettings):
    """Environment variables: `DVC_PROCESSING_<FIELD>`, e.g. `DVC_PROCESSING_KAFKA_BOOTSTRAP`."""

    model_config = SettingsConfigDict(env_prefix="DVC_PROCESSING_", extra="ignore")

    service_name: str = "processing"
    http_port: int = 8002
