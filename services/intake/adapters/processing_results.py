"""The processing service's result documents, read over HTTP (the `ResultDocuments` port)."""

from __future__ import annotations

import httpx


class ProcessingResultDocuments:
    """Fetches an issued result document from the processing service over HTTP (services never
    read each other's databases), authenticated with a service token."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.token = token

    async def fetch(self, storage_id: str) -> bytes:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.client.get(
            f"{self.base_url}/api/v1/results/{storage_id}", headers=headers, timeout=30
        )
        response.raise_for_status()
        return response.content
