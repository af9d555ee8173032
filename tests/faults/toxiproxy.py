"""A small client of Toxiproxy's HTTP API (devstack/toxiproxy_server.py runs the server).

A proxy listens on one port and forwards every connection to its upstream; toxics change what
passes: `latency` delays each chunk of data, `reset_peer` resets a connection (TCP RST) as soon as
data arrives, `timeout` stops all data. Each toxic acts on one direction of the stream:
`downstream` (server to client) or `upstream` (client to server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class ToxiproxyError(Exception):
    pass


@dataclass(frozen=True)
class Toxiproxy:
    url: str  # the API, e.g. http://127.0.0.1:8474

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, self.url + path, json=body, timeout=10)
        if response.status_code >= 300:
            raise ToxiproxyError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def version(self) -> str:
        return httpx.get(self.url + "/version", timeout=5).text

    def create_proxy(self, name: str, listen: str, upstream: str) -> dict[str, Any]:
        """A proxy on `listen` (host:port) to `upstream`, enabled at once."""
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        return dict(self._call("POST", "/proxies", body))

    def proxies(self) -> dict[str, Any]:
        return dict(self._call("GET", "/proxies"))

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    def set_enabled(self, name: str, enabled: bool) -> None:
        """A disabled proxy closes its connections and accepts none until enabled again."""
        self._call("POST", f"/proxies/{name}", {"enabled": enabled})

    def add_toxic(
        self,
        proxy: str,
        kind: str,
        attributes: dict[str, Any],
        stream: str = "downstream",
        name: str | None = None,
        toxicity: float = 1.0,
    ) -> str:
        """Add a toxic of `kind` (latency, reset_peer, timeout, bandwidth, ...); its name."""
        name = name or f"{kind}_{stream}"
        body = {
            "name": name,
            "type": kind,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        self._call("POST", f"/proxies/{proxy}/toxics", body)
        return name

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/proxies/{proxy}/toxics"))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def reset(self) -> None:
        """Every proxy enabled again, every toxic removed."""
        self._call("POST", "/reset")
