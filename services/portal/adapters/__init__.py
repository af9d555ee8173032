"""The portal's outbound adapters: intake's HTTP API."""
