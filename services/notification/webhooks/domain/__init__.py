"""Pure rules of the agency webhooks and the public stream: subscription filters and statuses,
the retry schedule, signatures, subscriber URL rules, per-dossier ordering, the public
projection."""
