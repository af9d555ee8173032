"""The portal settings mixed into the notification service's settings (multiple inheritance)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from services.notification.portal.settings import PortalCommandSettings, PortalSettings
from services.notification.settings import NotificationSettings


class Combined(NotificationSettings, PortalSettings):
    """What the lead's wiring makes of NotificationSettings (the mixin as a second base)."""

    model_config = SettingsConfigDict(env_prefix="DVC_NOTIFICATION_", extra="ignore")


def test_the_mixin_reads_portal_fields_with_the_notification_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DVC_NOTIFICATION_PORTAL_URL", "https://dichvucong.gov.vn/sync")
    monkeypatch.setenv("DVC_NOTIFICATION_PORTAL_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("DVC_NOTIFICATION_SMTP_PORT", "2525")
    settings = Combined()
    assert settings.portal_url == "https://dichvucong.gov.vn/sync"
    assert settings.portal_max_attempts == 3
    assert settings.smtp_port == 2525 and settings.service_name == "notification"
    assert settings.portal_enabled is False


def test_production_refuses_the_development_portal_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = {
        "environment": "production",
        "jwt_issuer": "https://sso.most.gov.vn",
        "jwt_public_key_file": "/keys/jwt.pem",
        "sms_gateway_token": "t",
        "sms_receipt_secret": "s",
        "webhook_sealing_keys": "lOwHjTQ0ZEvh3Z8wGr5oqGN2Bf0m4e-IKBTfUSTyGKk=",
        "sms_gateway_url": "https://sms.most.gov.vn/api/send",
        "smtp_tls": "starttls",
    }
    with pytest.raises(ValidationError, match="PORTAL_PASSWORD"):
        Combined(**real, portal_enabled=True)
    assert Combined(**real, portal_enabled=True, portal_password="real").portal_enabled
    assert not Combined(**real).portal_enabled  # disabled: no portal password needed
    with pytest.raises(ValidationError, match="JWT"):  # the other bases' checks still run
        Combined(environment="production", portal_enabled=True, portal_password="real")


def test_the_command_reads_the_service_database() -> None:
    assert PortalCommandSettings().database_name == "dvc_notification"
    assert issubclass(PortalCommandSettings, PortalSettings)
