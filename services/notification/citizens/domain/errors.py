"""Errors of the citizen messages (pure)."""

from __future__ import annotations

from shared.runtime.failures import AwaitingEarlierEvent


class RecipientNotKnownYet(AwaitingEarlierEvent):
    """A step arrived before its dossier's submitted event (another topic): held and retried by
    the consumer; dead-lettered if the contact details never come."""


class UnknownDossier(LookupError):
    """No contact details and no delivery for this dossier code."""
