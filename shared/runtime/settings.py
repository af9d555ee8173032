"""Settings shared by every service; each service subclasses them with its own env prefix."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Connection and runtime settings. The defaults suit local development only."""

    model_config = SettingsConfigDict(env_prefix="DVC_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    service_name: str = "dvc"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Addresses or networks (comma-separated, e.g. "10.42.0.0/16") of the reverse proxies whose
    # X-Forwarded-For is believed; empty: none is, the peer address is the client's.
    trusted_proxies: str = ""
    # The largest request body accepted (413 beyond), checked before parsing or authentication;
    # routes taking uploads have their own, larger limits.
    max_body_bytes: int = Field(default=256 * 1024, gt=0)

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Plain on one machine; in Kubernetes, TLS with SCRAM, each service as its own Kafka user.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = Field(
        default=None, description="CA of the brokers' certificates"
    )
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_database: str = ""
    # Appended to every topic name; lets tests run in isolation on one broker.
    topic_suffix: str = ""

    log_level: str = "INFO"
    # Consumer retries before a message goes to its dead-letter topic (failures that are not the
    # infrastructure's: those are retried without limit, see `shared.runtime.failures`).
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_backoff_seconds: float = Field(default=0.2, ge=0)
    # The longest pause between two tries of an event held during an infrastructure outage.
    consumer_outage_max_backoff_seconds: float = Field(default=30.0, gt=0, le=300)
    # Kafka consumers' long poll: the broker answers a fetch as soon as records arrive, or after
    # this long with none (so an idle consumer sends one fetch per this many milliseconds). Also
    # the stall of a busy consumer: aiokafka keeps one fetch in flight per broker, and while
    # every busy partition still has records in hand that fetch asks for the idle topics'
    # partitions alone, which the broker holds this long (5 s here once made a 40/s load queue
    # up behind notification's consumer; 500 ms is the Java client's default).
    consumer_fetch_max_wait_ms: int = Field(default=500, ge=100, le=30_000)
    # The long poll of a consumer with no record in hand (`long_poll_when_idle`): records that
    # arrive end it at once, and no partition can be left out of it, so a longer one costs no
    # latency; an idle platform then sends a tenth of the fetches.
    consumer_idle_fetch_max_wait_ms: int = Field(default=5000, ge=100, le=30_000)
    # How often a consumer tells its group it is alive; also how soon it notices a rebalance
    # (another member joining). A member rejoins once its fetch in flight returns, so a join
    # waits up to this plus `consumer_idle_fetch_max_wait_ms` (tests that start services shorten
    # them; kept at Kafka's default of 3 s otherwise).
    consumer_heartbeat_interval_ms: int = Field(default=3000, ge=100, le=3000)
    # Handled events' offsets are committed together at most this long after the first of them
    # (`shared.runtime.commits`): a crash delivers the last ones again (handlers are idempotent).
    # 0: one commit per event.
    consumer_commit_interval_seconds: float = Field(default=0.5, ge=0, le=10)
    # How long a background consumer (`consume_dossier_events_in_batches(background=True)`:
    # reporting, the national-portal sync) lets events gather after a read that was not full.
    # 0: each read handled at once.
    consumer_linger_seconds: float = Field(default=0.25, ge=0, le=5)

    # Idle behaviour of the background loops (docs/architecture.md, "Idle behaviour"). A poll for
    # work (outbox scans, delivery and sync retries, the deadline scanner...) backs off from its
    # own interval to this while it finds nothing; work created in-process wakes it at once.
    idle_poll_max_seconds: float = Field(default=60.0, gt=0)

    # Staff authentication (bearer JWTs). Outside development the issuer and keys must be set.
    jwt_issuer: str = "dvc-dev-issuer"
    jwt_audience: str = "dvc-platform"
    jwt_public_key_file: str | None = None
    # The provider's key set (JWKS). Without it, an issuer that is a URL (a Keycloak realm) is
    # asked for it through OpenID discovery; keys are cached and refetched on an unknown `kid`.
    jwt_jwks_url: str | None = None

    @model_validator(mode="after")
    def _production_needs_real_keys(self) -> ServiceSettings:
        if self.environment != "production":
            return self
        if self.jwt_issuer == "dvc-dev-issuer":
            raise ValueError("production needs DVC_JWT_ISSUER set to the real issuer")
        published = self.jwt_jwks_url or (
            self.jwt_issuer if self.jwt_issuer.startswith("https://") else None
        )
        if not self.jwt_public_key_file and not published:
            raise ValueError(
                "production needs the issuer's keys: DVC_JWT_PUBLIC_KEY_FILE, or an https "
                "DVC_JWT_ISSUER (OpenID discovery) or DVC_JWT_JWKS_URL"
            )
        if self.jwt_jwks_url and (
            problem := unfit_for_production("JWT_JWKS_URL", self.jwt_jwks_url)
        ):
            raise ValueError(problem)
        return self

    @property
    def service_audience(self) -> str:
        """The audience of tokens meant for this service only (service-to-service calls)."""
        return f"dvc-{self.service_name}"

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        """Staff tokens (the platform's audience) and this service's own."""
        return (self.jwt_audience, self.service_audience)

    @property
    def database_name(self) -> str:
        return self.mongo_database or f"dvc_{self.service_name}"

    def topic(self, name: str) -> str:
        return f"{name}{self.topic_suffix}"

    def consumer_group(self, name: str) -> str:
        """Isolated runs (a topic suffix) also get their own consumer groups, so that they never
        wait on each other's rebalances."""
        return f"{name}{self.topic_suffix}"


def unfit_for_production(name: str, url: str) -> str | None:
    """Why `url` cannot serve in production (None when it can): citizens' links and outside
    providers are reached over HTTPS, and never at a loopback or unspecified address (a default
    left in place)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return f"{name} must be an https URL in production (is {url!r})"
    host = (parts.hostname or "").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        local = host in ("localhost", "") or host.endswith(".localhost")
    else:
        local = address.is_loopback or address.is_unspecified
    if local:
        return f"{name} must not point to this machine in production (is {url!r})"
    return None
