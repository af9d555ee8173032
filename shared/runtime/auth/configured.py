"""The verifier a service installs, chosen from its settings."""

import os

from shared.runtime.auth.dev_issuer import DevIssuer
from shared.runtime.auth.verifiers import JwksVerifier, JwtVerifier
from shared.runtime.settings import ServiceSettings


def verifier_from_settings(
    settings: ServiceSettings, *, dev_issuer_dir: str | os.PathLike[str] | None = None
) -> JwtVerifier:
    """The verifier a service installs on `app.state.jwt_verifier`.

    Uses `jwt_public_key_file` when set; else the provider's published key set when a JWKS URL
    is set (`jwt_jwks_url`) or the issuer is a URL (discovery: Keycloak's realm URL, say);
    otherwise, in development and test only, the local development issuer's public key
    (creating the key pair on first use).
    """
    if settings.jwt_public_key_file:
        return JwtVerifier.from_file(
            settings.jwt_public_key_file,
            issuer=settings.jwt_issuer,
            audience=settings.accepted_audiences,
        )
    jwks_url = settings.jwt_jwks_url
    if jwks_url or settings.jwt_issuer.startswith(("https://", "http://")):
        return JwksVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.accepted_audiences,
            jwks_url=jwks_url or None,
            # Plain HTTP only to a local provider outside production (devstack's Keycloak).
            allow_http=settings.environment != "production",
        )
    if settings.environment == "production":
        raise RuntimeError("production needs the issuer's keys; the dev issuer is not used")
    issuer = DevIssuer(
        dev_issuer_dir,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        environment=settings.environment,
    )
    return issuer.verifier(settings.accepted_audiences)
