"""Intake's adapters: the MongoDB store, HTTP clients (payment provider, processing's results),
the catalogue's Kafka publisher, the shipped catalogue files and the HTTP request limits."""
