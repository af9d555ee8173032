"""Building the services' URLs from user-supplied values."""

from urllib.parse import quote


def path_segment(value: str) -> str:
    """A path segment: never lets a value add segments or a query to the URL."""
    return quote(value, safe="")
