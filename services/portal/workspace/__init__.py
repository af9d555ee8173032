"""The officers' workspace (`/can-bo`): staff sign in at the OpenID Connect provider (Keycloak in
devstack) with the authorisation code flow and PKCE, their tokens stay in the portal's memory
(the cookie holds a signed reference only), and every page calls processing's officer API with
the officer's own access token, so processing's role and unit checks stay the only authorisation.

`sessions.py` keeps the staff sessions, `signin.py` talks to the provider (Authlib),
`processing.py` to processing, `views.py` is the pages' pure logic, `routes.py` the pages;
`install_workspace` wires them into the portal's app (called by `services.portal.main`).
"""

from services.portal.workspace.routes import install_workspace

__all__ = ["install_workspace"]
