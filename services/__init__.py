"""The platform's four services, each runnable as `python -m services.<name>`."""
