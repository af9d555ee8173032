"""Composition root of the notification service."""

from fastapi import FastAPI

from services.notification import api
from services.notification.runtime import NotificationRuntime
from services.notification.settings import NotificationSettings
from shared.service import build_service_app


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or NotificationSettings()
    runtime = NotificationRuntime(settings)
    app = build_service_app(
        settings,
        title="Notification (thông báo)",
        register=runtime.register,
        routers=[api.router],
        hooks=[runtime.lifecycle],
    )
    app.state.notification = runtime
    return app
