"""Synchronisation of dossiers and their progress steps with the National Public Service Portal
(DOMAIN.md §6): `PortalSync` (handlers, worker, metrics, resync), a local portal `simulator`, and
the `python -m services.notification.portal` command (resync, status)."""
