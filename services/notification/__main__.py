from services.notification.main import create_app
from services.notification.settings import NotificationSettings
from shared.runtime.service import run_service

run_service(create_app, NotificationSettings())  # type: ignore[arg-type]
