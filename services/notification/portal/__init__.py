"""Synchronisation of dossiers and their progress steps with the National Public Service Portal
(DOMAIN.md §6): `PortalSync` (the use cases), its `handlers`, the `PortalWorker`, the operators'
`api` and the `python -m services.notification.portal` command (resync, status). The local
stand-in for the portal is `devstack/simulators/portal.py`."""
