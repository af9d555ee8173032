"""Production refuses the development defaults that would silently misdirect citizens or talk to
providers in clear: localhost receipt links, http providers, development-sized payment keys,
e-mail without TLS (issue 14, "Production configuration")."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.settings import IntakeSettings
from services.notification.settings import NotificationSettings
from shared.runtime.settings import unfit_for_production

KEY = "k" * 40
JWT = {"jwt_issuer": "https://sso.most.gov.vn/realms/dvc", "jwt_public_key_file": "/etc/key.pem"}
GOOD_INTAKE: dict[str, Any] = {
    **JWT,
    "environment": "production",
    "public_base_url": "https://dichvucong.most.gov.vn",
    "payment_base_url": "https://payment.gov.vn",
    "payment_request_key": KEY,
    "payment_callback_key": KEY,
}


def test_a_proper_production_intake_starts() -> None:
    IntakeSettings(**GOOD_INTAKE)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("public_base_url", "http://127.0.0.1:8001", "PUBLIC_BASE_URL"),  # the old default
        ("public_base_url", "https://localhost", "must not point to this machine"),
        ("payment_base_url", "http://payment.gov.vn", "must be an https URL"),
        ("payment_request_key", "dev-payment-request-key", "32 characters"),
        ("payment_callback_key", "short-but-not-dev", "32 characters"),
        ("payment_return_url", "http://dichvucong.most.gov.vn/ho-so/{code}", "RETURN_URL"),
    ],
)
def test_production_intake_refuses(field: str, value: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        IntakeSettings(**{**GOOD_INTAKE, field: value})
    IntakeSettings(**{**GOOD_INTAKE, field: value, "environment": "development"})  # allowed


def test_production_notification_refuses_clear_text_providers() -> None:
    good: dict[str, Any] = {
        **JWT,
        "environment": "production",
        "webhook_sealing_keys": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=",
        "sms_gateway_token": "token-of-the-gateway",
        "sms_receipt_secret": "secret-of-the-gateway",
        "sms_gateway_url": "https://sms.gov.vn/api/send",
        "smtp_tls": "starttls",
    }
    NotificationSettings(**good)
    with pytest.raises(ValidationError, match="SMS_GATEWAY_URL must be an https URL"):
        NotificationSettings(**{**good, "sms_gateway_url": "http://sms.gov.vn/api/send"})
    with pytest.raises(ValidationError, match="SMTP_TLS"):
        NotificationSettings(**{**good, "smtp_tls": "none"})


def test_what_is_fit_for_production() -> None:
    assert unfit_for_production("X", "https://dichvucong.most.gov.vn/a") is None
    for url in ("http://a.vn", "https://127.0.0.1", "https://[::1]/", "https://0.0.0.0", "a.vn"):
        assert unfit_for_production("X", url) is not None, url


def test_production_takes_the_issuers_keys_from_a_file_or_its_published_key_set() -> None:
    from shared.runtime.settings import ServiceSettings

    realm = "https://sso.most.gov.vn/realms/dvc"
    ServiceSettings(environment="production", jwt_issuer=realm)  # OpenID discovery
    ServiceSettings(environment="production", jwt_issuer="dvc", jwt_jwks_url=realm + "/certs")
    ServiceSettings(environment="production", jwt_issuer="dvc", jwt_public_key_file="/k.pem")
    for wrong in (
        {"jwt_issuer": "dvc-dev-issuer", "jwt_public_key_file": "/k.pem"},
        {"jwt_issuer": "http://sso.most.gov.vn/realms/dvc"},  # no keys over plain http
        {"jwt_issuer": "dvc", "jwt_jwks_url": "http://sso.most.gov.vn/certs"},
    ):
        with pytest.raises(ValidationError):
            ServiceSettings(environment="production", **wrong)
