"""The platform's common library: event contracts, settings and adapters shared by every service."""
