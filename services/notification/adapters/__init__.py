"""Adapters shared by the notification service's parts: the circuit breaker (provider protection
of the citizens' channels, and of each agency's webhook subscription)."""
