"""Samples for agencies reading the public stream or receiving webhooks: copy one file."""
