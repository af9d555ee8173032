"""Staff authentication: bearer JWTs signed by the identity provider, verified with its public keys.

Every service's officer and admin endpoints depend on `CurrentStaff` (any authenticated staff) or
on `require_roles(...)`. The verifier lives on `app.state.jwt_verifier` (see
`verifier_from_settings`), so each app — and each test app — carries its own keys.

Only asymmetric signatures are accepted: the services hold public keys and nothing that could mint
a token. The keys come from a file (`JwtVerifier`), or from the identity provider's published key
set (`JwksVerifier`: the JWKS URL, or discovered from the issuer URL; cached, refreshed when a token
names an unknown key). Outside production a local development issuer (`DevIssuer`) stands in for
the identity provider; `python -m shared.tools.tokens mint ...` prints a token signed by it.

One module per concern: `identity` (roles, `Staff`, errors), `keys` (parsing public keys),
`verifiers`, `dependencies` (FastAPI), `dev_issuer`, `configured` (the verifier settings choose).
"""

from shared.runtime.auth.configured import verifier_from_settings
from shared.runtime.auth.dependencies import (
    FORBIDDEN,
    FORBIDDEN_TITLE,
    CurrentStaff,
    current_staff,
    ensure_same_unit,
    require_roles,
    staff_dependency,
    verifier_from_app,
)
from shared.runtime.auth.dev_issuer import DevIssuer, default_dev_issuer_dir
from shared.runtime.auth.identity import AuthenticationError, KeysUnavailable, Role, Staff
from shared.runtime.auth.keys import ALLOWED_ALGORITHMS
from shared.runtime.auth.verifiers import JwksVerifier, JwtVerifier

__all__ = [
    "ALLOWED_ALGORITHMS",
    "FORBIDDEN",
    "FORBIDDEN_TITLE",
    "AuthenticationError",
    "CurrentStaff",
    "DevIssuer",
    "JwksVerifier",
    "JwtVerifier",
    "KeysUnavailable",
    "Role",
    "Staff",
    "current_staff",
    "default_dev_issuer_dir",
    "ensure_same_unit",
    "require_roles",
    "staff_dependency",
    "verifier_from_app",
    "verifier_from_settings",
]
