"""Signing secrets sealed at rest: the platform must read a subscription's secret to sign with it
(unlike an API key, it cannot be only hashed), so the database holds it encrypted (Fernet:
AES-128-CBC with an HMAC-SHA256 tag) under a key from the settings, never in clear.

`DVC_NOTIFICATION_WEBHOOK_SEALING_KEYS` is a comma-separated list: the first key seals, every
key opens, so keys rotate by putting a new one first and dropping the old one once every secret
was sealed again (a secret is sealed again whenever it is rotated). A secret no configured key
opens (its key dropped too early, or the stored value damaged) raises `UnreadableSecret`: the
dispatcher pauses that one subscription until the secret is rotated or the key put back.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Development and tests only; production refuses to start with it.
DEV_SEALING_KEY = "CGIm97hYAddBaXH_e6WPiAHDypBp4WNBvA7b2SGiPPQ="


class UnreadableSecret(ValueError):
    """A sealed signing secret that none of the configured keys opens."""


class SecretBox:
    def __init__(self, keys: str) -> None:
        fernets = [Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()]
        if not fernets:
            raise ValueError("at least one sealing key is needed")
        self._fernet = MultiFernet(fernets)

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: object) -> str:
        if not isinstance(sealed, str):
            raise UnreadableSecret("no sealed signing secret")
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError) as exc:  # e.g. not even base64
            raise UnreadableSecret(
                "a signing secret sealed with an unknown key, or damaged"
            ) from exc
