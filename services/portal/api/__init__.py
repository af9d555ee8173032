"""The portal's pages (server-rendered, Vietnamese) and their error pages."""

from services.portal.api.actions import router as actions_router
from services.portal.api.apply import router as apply_router
from services.portal.api.catalogue import router as catalogue_router
from services.portal.api.figures import router as figures_router
from services.portal.api.tracking import router as tracking_router

routers = (catalogue_router, apply_router, tracking_router, actions_router, figures_router)

__all__ = ["routers"]
