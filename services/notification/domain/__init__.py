"""Pure rules shared by the notification service's parts (no I/O)."""
