"""Composition root of the notification service."""

from fastapi import FastAPI

from services.notification import handlers
from services.notification.settings import NotificationSettings
from shared.service import build_service_app


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    return build_service_app(
        settings or NotificationSettings(),
        title="Notification (thông báo)",
        register=handlers.register,
    )
