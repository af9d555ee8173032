"""The portal's settings: environment variables `DVC_PORTAL_<FIELD>`, e.g. `DVC_PORTAL_SECRET_KEY`.

The portal has no broker and no database: it reaches intake (and reporting) over HTTP and keeps a
citizen's short-lived state (CSRF token, receipt, tracking session) in signed cookies only. The
officers' workspace (`/can-bo`) signs staff in at the OpenID Connect provider (`OIDC_*`), keeps
their tokens in the process's memory and calls processing with them (`PROCESSING_BASE_URL`).
"""

from __future__ import annotations

from ipaddress import ip_network
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "dev-portal-secret-key-change-me"
# The workspace client's secret in devstack's realm (devstack/keycloak/realm-dvc.json) only.
DEVELOPMENT_OIDC_CLIENT_SECRET = "dvc-workspace-dev-secret"


class PortalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DVC_PORTAL_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    service_name: str = "portal"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"

    intake_base_url: str = Field(
        default="http://127.0.0.1:8001", description="Where intake's HTTP API answers"
    )
    intake_timeout_seconds: float = Field(default=10.0, gt=0)
    reporting_base_url: str = Field(
        default="http://127.0.0.1:8004", description="Where reporting's public figures answer"
    )
    reporting_timeout_seconds: float = Field(default=10.0, gt=0)
    # Uploads are forwarded to intake, which may take a while on a slow link.
    intake_upload_timeout_seconds: float = Field(default=120.0, gt=0)
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where citizens reach the portal: the base of the QR code's link",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET),
        description="Signs the portal's cookies (CSRF, receipt, tracking session)",
    )
    cookie_secure: bool = Field(
        default=False, description="Mark cookies Secure (true whenever served over HTTPS)"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks of reverse proxies whose X-Forwarded-For is believed",
    )

    # The same limits as intake's (DVC_INTAKE_MAX_FILE_BYTES, _MAX_DOSSIER_BYTES, _MAX_FILES).
    max_file_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_dossier_bytes: int = Field(default=30 * 1024 * 1024, gt=0)
    max_files: int = Field(default=20, gt=0)

    tracking_session_seconds: int = Field(
        default=900, gt=0, description="How long a tracking session cookie lasts"
    )
    receipt_seconds: int = Field(
        default=600, gt=0, description="How long the receipt (with its secret) can be shown"
    )
    form_session_seconds: int = Field(
        default=4 * 3600, gt=0, description="How long a form's CSRF token is valid"
    )
    catalogue_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long procedures, units and fields are cached"
    )
    figures_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long the public figures are cached"
    )

    # --- the officers' workspace (`services.portal.workspace`) ----------------------------------
    processing_base_url: str = Field(
        default="http://127.0.0.1:8002", description="Where processing's officer API answers"
    )
    processing_timeout_seconds: float = Field(default=10.0, gt=0)
    oidc_issuer_url: str = Field(
        default="http://127.0.0.1:8080/realms/dvc",
        description="The staff's OpenID Connect provider (its discovery document is under it)",
    )
    oidc_client_id: str = Field(default="dvc-workspace", min_length=1)
    oidc_client_secret: SecretStr | None = Field(
        default=None,
        description="The workspace client's secret at the provider; unset: devstack's realm's "
        "outside production, and no workspace in production",
    )
    oidc_redirect_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where staff reach the portal: the base of the sign-in callback and of the "
        "page the provider sends them back to after logout (registered at the provider)",
    )
    oidc_timeout_seconds: float = Field(default=10.0, gt=0)
    workspace_session_idle_seconds: int = Field(
        default=1800, gt=0, description="A staff session ends after this long without a request"
    )
    workspace_session_max_seconds: int = Field(
        default=10 * 3600, gt=0, description="A staff session ends this long after sign-in"
    )
    workspace_max_sessions: int = Field(
        default=10_000, gt=0, description="Sessions kept in memory (the oldest go first)"
    )

    @property
    def workspace_client_secret(self) -> str | None:
        """The workspace client's secret: the configured one, else the development realm's
        outside production; None: no workspace."""
        if self.oidc_client_secret is not None:
            return self.oidc_client_secret.get_secret_value() or None
        return None if self.environment == "production" else DEVELOPMENT_OIDC_CLIENT_SECRET

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ip_network(item, strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _no_dev_secret_in_production(self) -> PortalSettings:
        if self.environment == "production":
            if self.secret_key.get_secret_value() == DEVELOPMENT_SECRET:
                raise ValueError("production needs DVC_PORTAL_SECRET_KEY set to a real secret")
            if len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("DVC_PORTAL_SECRET_KEY must be at least 32 characters")
            if not self.cookie_secure:
                raise ValueError("production serves over HTTPS: set DVC_PORTAL_COOKIE_SECURE")
            if self.oidc_client_secret is None:
                return self  # no workspace: its pages say so
            if self.oidc_client_secret.get_secret_value() == DEVELOPMENT_OIDC_CLIENT_SECRET:
                raise ValueError(
                    "production needs DVC_PORTAL_OIDC_CLIENT_SECRET set to the client's real secret"
                )
            if not self.oidc_issuer_url.startswith("https://"):
                raise ValueError("DVC_PORTAL_OIDC_ISSUER_URL must be an https:// URL in production")
            if not self.oidc_redirect_base_url.startswith("https://"):
                raise ValueError(
                    "DVC_PORTAL_OIDC_REDIRECT_BASE_URL must be an https:// URL in production"
                )
        return self
