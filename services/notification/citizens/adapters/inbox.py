"""The portal inbox: the message is stored here and announced (with its text) on the notified
topic, from which intake shows it to the citizen through the tracking flow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.notification.citizens.domain.ports import OutgoingMessage, SendResult


class InboxChannel:
    name = "inbox"
    provider = "inbox"

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._collection = collection

    async def send(self, message: OutgoingMessage) -> SendResult:
        try:
            await self._collection.insert_one(
                {
                    "_id": message.notification_id,  # a resend stores nothing new
                    "dossier_code": message.dossier_code,
                    "title": message.title,
                    "body": message.text,
                    "created_at": datetime.now(UTC),
                }
            )
        except DuplicateKeyError:
            pass
        return SendResult("delivered", message.notification_id)

    async def close(self) -> None:
        return None
