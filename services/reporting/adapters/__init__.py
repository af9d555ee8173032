"""Reporting's adapters: the read-model stores (MongoDB and in memory) and the Kafka readers."""
