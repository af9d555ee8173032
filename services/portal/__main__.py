"""`python -m services.portal`: serve the portal with uvicorn, JSON logs on stderr.

Like `shared.runtime.service.run_service`, but the portal reads client addresses from its trusted
proxies itself (`DVC_PORTAL_TRUSTED_PROXIES`), so uvicorn's own proxy-header handling is off.
"""

import logging

import uvicorn

from services.portal.main import create_app
from services.portal.settings import PortalSettings
from shared.runtime.logging import configure_logging
from shared.runtime.service import QuietServer

settings = PortalSettings()
configure_logging(settings.service_name, settings.log_level)
# httpx logs every call to intake at INFO: noise, at the portal's request rate.
logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
config = uvicorn.Config(
    create_app(settings),
    host=settings.http_host,
    port=settings.http_port,
    log_config=None,
    access_log=False,  # an access log would record the QR link's secret
    proxy_headers=False,
    timeout_graceful_shutdown=20,
    loop="uvloop",  # as the services (shared.runtime.service.server_config)
    http="httptools",
)
QuietServer(config).run()
