"""Public verification keys: PEM keys and certificates, JWK sets, each key bound to the
algorithms it may verify."""

import json
import re
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

# Asymmetric only. HS* would let anyone holding the (public) verification key mint tokens.
ALLOWED_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}
)

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.DOTALL)
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384"}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    key: PublicKey
    algorithms: frozenset[str]
    kid: str | None = None


def _algorithms_for(key: object) -> frozenset[str]:
    """The allowed algorithms a key can verify; binding them prevents key/alg confusion."""
    if isinstance(key, rsa.RSAPublicKey):
        return frozenset({"RS256", "RS384", "RS512", "PS256"})
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(key.curve.name)
        return frozenset({alg} if alg else ())
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


def _key_entry(key: Any, kid: str | None = None, alg: str | None = None) -> VerificationKey:
    algorithms = _algorithms_for(key)
    if alg is not None:
        algorithms &= {alg}
    if not algorithms:
        raise ValueError(f"unsupported verification key {type(key).__name__} (alg={alg})")
    return VerificationKey(key=key, algorithms=algorithms, kid=kid)


def _parse_pem(text: str) -> list[VerificationKey]:
    keys: list[VerificationKey] = []
    for match in _PEM_BLOCK.finditer(text):
        block, label = match.group(0).encode(), match.group(1)
        public: Any  # a certificate's key or a bare public key; `_key_entry` checks its kind
        if label == "CERTIFICATE":
            public = x509.load_pem_x509_certificate(block).public_key()
        elif label in {"PUBLIC KEY", "RSA PUBLIC KEY"}:
            public = serialization.load_pem_public_key(block)
        else:
            raise ValueError(f"unexpected PEM block {label!r}: expected public keys only")
        keys.append(_key_entry(public))
    return keys


def parse_jwks(document: Any, *, published: bool = False) -> list[VerificationKey]:
    """The signature keys of a JWKS (or of a single JWK). `published`: a provider's live key set,
    where a key of a type or curve we cannot use is skipped instead of refused (a provider may
    publish keys for other relying parties); a private key is refused either way."""
    jwks = document.get("keys") if isinstance(document, dict) and "keys" in document else None
    entries = jwks if isinstance(jwks, list) else [document]
    keys: list[VerificationKey] = []
    for jwk in entries:
        if not isinstance(jwk, dict):
            raise ValueError("a JWK must be a JSON object")
        if "d" in jwk:
            raise ValueError("the JWK set contains a private key; publish public keys only")
        if jwk.get("kty") not in {"RSA", "EC", "OKP"}:
            if published:
                continue
            # "oct" (shared secrets) and anything unknown have no place in a public key set.
            raise ValueError(f"unsupported JWK key type {jwk.get('kty')!r}")
        if jwk.get("use", "sig") != "sig":
            continue
        alg = jwk.get("alg")
        if alg is not None and alg not in ALLOWED_ALGORITHMS:
            continue  # e.g. an ES512 key published for other relying parties
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
        except jwt.PyJWTError:
            if published:
                continue
            raise
        if _algorithms_for(key):
            keys.append(_key_entry(key, kid=jwk.get("kid"), alg=alg))
    return keys


def parse_public_keys(text: str) -> list[VerificationKey]:
    """PEM text (public keys or certificates, one or more) or a JWKS / single JWK JSON document."""
    stripped = text.strip()
    keys = parse_jwks(json.loads(stripped)) if stripped.startswith("{") else _parse_pem(stripped)
    if not keys:
        raise ValueError("no usable public key found")
    return keys
