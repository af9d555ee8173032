"""Local infrastructure for development and tests: a real Kafka broker and a MongoDB-protocol
server (FerretDB) as plain processes, plus the four services. See `python -m devstack --help`."""
