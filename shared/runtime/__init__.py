"""The runtime platform every service is built on: the app factory (`service`), messaging
(`kafka`, `consumer`, `batch_consumer`, `outbox`, `idempotency`), storage (`mongo`), HTTP
(`http`, `auth`), settings, logging, metrics, background work and failure handling."""
