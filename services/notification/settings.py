from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    """Environment variables: `DVC_NOTIFICATION_<FIELD>`, e.g. `DVC_NOTIFICATION_HTTP_PORT`."""

    model_config = SettingsConfigDict(env_prefix="DVC_NOTIFICATION_", extra="ignore")

    service_name: str = "notification"
    http_port: int = 8003
