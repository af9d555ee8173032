"""The local development issuer: an Ed25519 key pair in a folder, minting staff tokens for
development and tests; refused in production."""

import base64
import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from shared.runtime.auth.identity import Audience, Role
from shared.runtime.auth.verifiers import JwtVerifier

DEV_ISSUER = "dvc-dev-issuer"
DEV_AUDIENCE = "dvc-platform"


def default_dev_issuer_dir() -> Path:
    configured = os.environ.get("DVC_DEV_ISSUER_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".config" / "dvc-platform" / "dev-issuer"


_ENVIRONMENT_VARIABLE = re.compile(r"DVC_(?:\w+_)?ENVIRONMENT")


def is_production(environment: str | None = None) -> bool:
    """Production when the caller's settings say so, or when any service's environment setting
    in this process's environment does (`DVC_INTAKE_ENVIRONMENT`, ..., or `DVC_ENVIRONMENT`):
    deployments set the services' own variables, never a global one."""
    if environment == "production":
        return True
    return any(
        value.strip().lower() == "production"
        for name, value in os.environ.items()
        if _ENVIRONMENT_VARIABLE.fullmatch(name)
    )


class DevIssuer:
    """A local Ed25519 token issuer for development and tests; never used in production.

    The key pair is created once in `directory` (private key mode 0600) and reused afterwards,
    so services started later verify tokens minted earlier.
    """

    algorithm = "EdDSA"

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        issuer: str = DEV_ISSUER,
        audience: str = DEV_AUDIENCE,
        environment: str | None = None,
    ) -> None:
        """`environment`: the calling service's `settings.environment`; production refuses."""
        if is_production(environment):
            raise RuntimeError("the development issuer is disabled in production")
        self.directory = Path(directory) if directory is not None else default_dev_issuer_dir()
        self.issuer = issuer
        self.audience = audience
        self._private_key = self._load_or_create()
        public_raw = self._private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        digest = hashlib.sha256(public_raw).digest()[:12]
        self.kid = "dev-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    @property
    def private_key_path(self) -> Path:
        return self.directory / "private_key.pem"

    @property
    def public_key_path(self) -> Path:
        return self.directory / "public_key.pem"

    def _load_or_create(self) -> ed25519.Ed25519PrivateKey:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.private_key_path.exists():
            self._create_private_key()
        key = serialization.load_pem_private_key(self.private_key_path.read_bytes(), None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{self.private_key_path} is not an Ed25519 private key")
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if not self.public_key_path.exists() or self.public_key_path.read_bytes() != public_pem:
            tmp = self.directory / f".public_key.{uuid.uuid4().hex}.tmp"
            tmp.write_bytes(public_pem)
            os.replace(tmp, self.public_key_path)
        return key

    def _create_private_key(self) -> None:
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = self.directory / f".private_key.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            # link() never overwrites: if another process won the race, keep its key.
            try:
                os.link(tmp, self.private_key_path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)

    def mint(
        self,
        subject: str,
        roles: Iterable[Role | str],
        unit: str | None,
        name: str | None = None,
        ttl_seconds: int = 3600,
    ) -> str:
        """A signed staff token. Roles are passed through unchecked (tests need odd ones)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            "roles": [str(role) for role in roles],
        }
        if unit is not None:
            claims["unit"] = unit
        if name is not None:
            claims["name"] = name
        return jwt.encode(
            claims, self._private_key, algorithm=self.algorithm, headers={"kid": self.kid}
        )

    def verifier(self, audience: Audience | None = None) -> JwtVerifier:
        """A verifier of this issuer's tokens, for `audience` (default: the issuer's own)."""
        return JwtVerifier.from_file(
            self.public_key_path, issuer=self.issuer, audience=audience or self.audience
        )
