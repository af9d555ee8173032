"""Composition root of the notification service."""

from fastapi import FastAPI

from services.notification import api
from services.notification.portal import api as portal_api
from services.notification.runtime import NotificationRuntime
from services.notification.settings import NotificationSettings
from services.notification.webhooks import api as webhooks_api
from shared.asyncapi import asyncapi_router
from shared.service import build_service_app


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or NotificationSettings()
    runtime = NotificationRuntime(settings)
    app = build_service_app(
        settings,
        title="Notification (thông báo)",
        register=runtime.register,
        routers=[api.router, webhooks_api.router, portal_api.router, asyncapi_router],
        hooks=[runtime.lifecycle],
    )
    app.state.notification = runtime
    app.state.webhooks = runtime.webhooks  # None when disabled
    return app
