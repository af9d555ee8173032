from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.notification.portal.settings import PortalSettings
from services.notification.webhooks.adapters.sealing import DEV_SEALING_KEY
from services.notification.webhooks.settings import WebhookSettings
from shared.runtime.settings import ServiceSettings, unfit_for_production

ChannelName = Literal["sms", "email", "inbox"]


class NotificationSettings(ServiceSettings, WebhookSettings, PortalSettings):
    """Environment variables: `DVC_NOTIFICATION_<FIELD>`, e.g. `DVC_NOTIFICATION_SMTP_HOST`.

    Secrets (SMTP password, SMS token, receipt secret) have development defaults only; production
    refuses to start with them.
    """

    model_config = SettingsConfigDict(env_prefix="DVC_NOTIFICATION_", extra="ignore")

    service_name: str = "notification"
    http_port: int = 8003

    # Where a citizen is reached first, then next on failure (when no preference is stored).
    default_channel_order: list[ChannelName] = Field(
        default_factory=lambda: ["sms", "email", "inbox"]
    )
    default_locale: str = "vi"
    # The citizen tracking page named in messages (the dossier code is typed there).
    tracking_url: str = "https://dichvucong.most.gov.vn/tra-cuu-ho-so"

    # E-mail over SMTP. `smtp_tls`: none, starttls (upgrade after connect) or tls (implicit, 465).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_validate_certs: bool = True
    smtp_sender: str = "DVC Bo KH&CN <no-reply@dichvucong.most.gov.vn>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    smtp_pool_size: int = Field(
        default=16,
        ge=1,
        description="SMTP connections kept open: the e-mails sent at the same time. With 4, "
        "e-mail capped the pipeline near 30 dossiers/s on a 2-core box (each SMTP exchange "
        "waits on the server's replies); 16 holds 35/s with p99 under 0.5 s "
        "(bench/bench_e2e.py, docs/benchmarks.md)",
    )

    # SMS through an HTTP gateway.
    sms_gateway_url: str = "http://127.0.0.1:9099/sms"
    sms_gateway_token: SecretStr = SecretStr("dev-sms-token")
    sms_timeout_seconds: float = Field(default=5.0, gt=0)
    sms_max_connections: int = Field(default=20, ge=1)
    # Signed delivery receipts (HMAC-SHA256 over "<timestamp>.<body>").
    sms_receipt_secret: SecretStr = SecretStr("dev-sms-receipt-secret")
    sms_receipt_tolerance_seconds: int = Field(default=300, ge=1)
    # Vietnamese SMS are usually sent without diacritics (GSM-7: 160 characters a segment instead
    # of 70); switch off to send UCS-2 text with diacritics.
    sms_strip_diacritics: bool = True
    sms_max_segments: int = Field(default=3, ge=1, le=10)

    # Per-delivery retries of transient failures, then technical-failure and fallback.
    delivery_max_attempts: int = Field(default=5, ge=1)
    delivery_backoff_seconds: float = Field(default=2.0, ge=0)
    delivery_backoff_max_seconds: float = Field(default=300.0, ge=0)
    # A claimed delivery whose worker vanished is taken over after this lease.
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    delivery_poll_seconds: float = Field(default=1.0, gt=0)
    delivery_workers: int = Field(default=32, ge=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)

    # Provider protection: token bucket (messages/s, burst) and circuit breaker per provider.
    sms_rate_per_second: float = Field(default=50.0, ge=0, description="0: unlimited")
    sms_burst: int = Field(default=50, ge=1)
    email_rate_per_second: float = Field(default=0.0, ge=0, description="0: unlimited")
    email_burst: int = Field(default=100, ge=1)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> "NotificationSettings":
        if self.environment == "production" and self.webhook_allow_private_urls:
            raise ValueError("production never calls private or plain-http webhook URLs")
        if (
            self.environment == "production"
            and DEV_SEALING_KEY in self.webhook_sealing_keys.get_secret_value()
        ):
            raise ValueError("production needs DVC_NOTIFICATION_WEBHOOK_SEALING_KEYS")
        if self.environment == "production" and (
            self.sms_gateway_token.get_secret_value() == "dev-sms-token"
            or self.sms_receipt_secret.get_secret_value() == "dev-sms-receipt-secret"
        ):
            raise ValueError(
                "production needs DVC_NOTIFICATION_SMS_GATEWAY_TOKEN and "
                "DVC_NOTIFICATION_SMS_RECEIPT_SECRET"
            )
        if self.environment == "production":
            if problem := unfit_for_production(
                "DVC_NOTIFICATION_SMS_GATEWAY_URL", self.sms_gateway_url
            ):
                raise ValueError(problem)
            if self.smtp_tls == "none":
                raise ValueError("production sends e-mail over TLS: DVC_NOTIFICATION_SMTP_TLS")
        return self
