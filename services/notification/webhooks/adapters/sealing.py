"""Signing secrets sealed at rest: the platform must read a subscription's secret to sign with it
(unlike an API key, it cannot be only hashed), so the database holds it encrypted (Fernet:
AES-128-CBC with an HMAC-SHA256 tag) under a key from the settings, never in clear.

`DVC_NOTIFICATION_WEBHOOK_SEALING_KEYS` is a comma-separated list: the first key seals, every
key opens, so keys rotate by putting a new one first and dropping the old one once every secret
was sealed again (a secret is sealed again whenever it is rotated).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Development and tests only; production refuses to start with it.
DEV_SEALING_KEY = "CGIm97hYAddBaXH_e6WPiAHDypBp4WNBvA7b2SGiPPQ="


class SecretBox:
    def __init__(self, keys: str) -> None:
        fernets = [Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()]
        if not fernets:
            raise ValueError("at least one sealing key is needed")
        self._fernet = MultiFernet(fernets)

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("a signing secret sealed with an unknown key") from exc
