"""Settings of the national-portal synchronisation: a mixin of the notification service's settings.

`NotificationSettings(ServiceSettings, PortalSettings)` reads them as `DVC_NOTIFICATION_PORTAL_*`.
The password has a development default only; production refuses to start with it while the sync is
enabled.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.runtime.settings import ServiceSettings

DEV_PORTAL_PASSWORD = "dev-portal-password"


class PortalSettings(BaseSettings):
    """The portal endpoint, its account, and the retry schedule of the sync worker."""

    model_config = SettingsConfigDict(env_prefix="DVC_NOTIFICATION_", extra="ignore")

    portal_enabled: bool = Field(
        default=False,
        description="Record and send dossiers to the portal. Turned on later, the new consumer "
        "group reads the dossier topics from the beginning, so no history is missed.",
    )
    portal_url: str = "http://127.0.0.1:9098"
    portal_username: str = "dvc-most"
    portal_password: SecretStr = SecretStr(DEV_PORTAL_PASSWORD)
    portal_timeout_seconds: float = Field(default=10.0, gt=0)
    # A session token is renewed this long before the portal says it expires.
    portal_session_margin_seconds: float = Field(default=30.0, ge=0)

    # Per dossier: attempts (each a claim that failed) before `failed`; exponential backoff with
    # jitter between them. 8 attempts at 5 s..15 min span about half an hour.
    portal_max_attempts: int = Field(default=8, ge=1)
    portal_backoff_seconds: float = Field(default=5.0, ge=0)
    portal_backoff_max_seconds: float = Field(default=900.0, ge=0)
    # A claimed dossier whose worker vanished is taken over after this lease.
    portal_lease_seconds: float = Field(default=120.0, gt=0)
    portal_poll_seconds: float = Field(default=2.0, gt=0)
    portal_workers: int = Field(default=4, ge=1)
    # The `dvc_portal_sync_*` gauges are recounted from the database when `/metrics` is read and
    # they are older than this (never while nobody scrapes).
    portal_metrics_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _production_needs_real_portal_password(self) -> PortalSettings:
        environment = getattr(self, "environment", "development")
        if (
            environment == "production"
            and self.portal_enabled
            and self.portal_password.get_secret_value() == DEV_PORTAL_PASSWORD
        ):
            raise ValueError("production needs DVC_NOTIFICATION_PORTAL_PASSWORD")
        return self


class PortalCommandSettings(ServiceSettings, PortalSettings):
    """What the `python -m services.notification.portal` command reads: the notification
    service's database and the portal settings, from the same `DVC_NOTIFICATION_*` variables."""

    model_config = SettingsConfigDict(env_prefix="DVC_NOTIFICATION_", extra="ignore")

    service_name: str = "notification"
