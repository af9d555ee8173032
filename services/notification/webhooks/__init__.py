"""For other agencies: the public dossier-status stream (a projection without personal data) and
the webhook subscriptions that deliver it, signed, to each agency's URL (registry API, dispatcher,
redrives and replays, and the `python -m services.notification.webhooks` operator command)."""
