"""The national-portal sync's adapters: its MongoDB store and the portal's HTTP client."""
