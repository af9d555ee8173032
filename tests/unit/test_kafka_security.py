"""Kafka security from settings: plain locally, TLS with SCRAM in Kubernetes."""

import ssl

import pytest
from faststream.security import SASLScram512

from shared.runtime.kafka import kafka_security
from shared.runtime.settings import ServiceSettings


def test_plain_by_default() -> None:
    assert kafka_security(ServiceSettings()) is None


def test_sasl_ssl_gives_scram_over_tls_with_the_service_user() -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="dvc-intake",
        kafka_sasl_password="s3cret",
    )
    security = kafka_security(settings)
    assert isinstance(security, SASLScram512)
    assert security.username == "dvc-intake" and security.password == "s3cret"
    assert isinstance(security.ssl_context, ssl.SSLContext) and security.use_ssl


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="SASL_USERNAME"):
        kafka_security(ServiceSettings(kafka_security_protocol="SASL_SSL"))
