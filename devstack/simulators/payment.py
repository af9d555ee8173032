"""A local simulator of the national payment platform that intake's payment provider adapter
(`services/intake/adapters/payment_provider.py`) speaks to, for development and tests.

    python -m devstack.simulators.payment --port 8010 \\
        --callback-url http://127.0.0.1:8001/api/v1/payments/callback

`POST /transactions` checks the checksum and answers `{"payment_url": ".../pay/<id>"}`;
`GET|POST /pay/<id>?outcome=success|failed` plays the citizen paying: it posts a signed callback to
the callback URL and returns what that answered (a browser, asking for HTML, is sent on to the
order's return URL instead, as the real platform does); `POST /pay/<id>/replay` resends the last
callback byte for byte (to exercise replay protection); `GET /health/ready`. Keys:
`DVC_PAYSIM_REQUEST_KEY`, `DVC_PAYSIM_CALLBACK_KEY` (development defaults match intake's).
Transactions live in memory only.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from devstack.simulators.common import serve
from services.intake.domain.payments import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PaymentCallback,
    PaymentOrder,
    checksum_matches,
    sign_callback,
)

DEV_REQUEST_KEY = "dev-payment-request-key"
DEV_CALLBACK_KEY = "dev-payment-callback-key"
DEFAULT_CALLBACK_URL = "http://127.0.0.1:8001/api/v1/payments/callback"


@dataclass
class _Transaction:
    order: PaymentOrder
    status: Literal["pending", "success", "failed"] = "pending"
    last_callback: tuple[bytes, dict[str, str]] | None = None


def create_app(
    request_key: bytes,
    callback_key: bytes,
    callback_url: str,
    *,
    http_client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The simulator app. `http_client` (optional) delivers callbacks, e.g. over an ASGI
    transport in tests; `clock` gives Unix seconds for callback timestamps."""
    app = FastAPI(title="Payment platform simulator", docs_url="/docs")
    transactions: dict[str, _Transaction] = {}
    app.state.transactions = transactions

    async def deliver(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        async def post(client: httpx.AsyncClient) -> httpx.Response:
            return await client.post(callback_url, content=body, headers=headers)

        try:
            if http_client is not None:
                response = await post(http_client)
            else:
                async with httpx.AsyncClient(timeout=10) as client:
                    response = await post(client)
        except httpx.HTTPError as exc:
            raise HTTPException(502, f"callback to {callback_url} failed: {exc!r}") from exc
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text
        return {"callback_status": response.status_code, "callback_response": answer}

    @app.post("/transactions")
    async def create_transaction(request: Request) -> dict[str, str]:
        try:
            order = PaymentOrder.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(400, f"invalid transaction: {exc.errors()[0]['msg']}") from None
        if not checksum_matches(order, order.checksum, request_key):
            raise HTTPException(400, "bad checksum")
        known = transactions.get(order.transaction_id)
        if known is not None and known.order != order:
            raise HTTPException(409, "transaction id already used for another transaction")
        transactions.setdefault(order.transaction_id, _Transaction(order))
        url = request.url_for("pay", transaction_id=order.transaction_id)
        return {"payment_url": str(url), "transaction_id": order.transaction_id}

    @app.api_route(
        "/pay/{transaction_id}", methods=["GET", "POST"], name="pay", response_model=None
    )
    async def pay(
        transaction_id: str, request: Request, outcome: Literal["success", "failed"] = "success"
    ) -> dict[str, Any] | RedirectResponse:
        transaction = transactions.get(transaction_id)
        if transaction is None:
            raise HTTPException(404, "unknown transaction")
        if transaction.status == "success":
            raise HTTPException(409, "already paid; use /replay to resend the callback")
        timestamp = int(clock())
        callback = PaymentCallback(
            transaction_id=transaction_id,
            dossier_code=transaction.order.dossier_code,
            amount_vnd=transaction.order.amount_vnd,
            status=outcome,
            paid_at=datetime.fromtimestamp(timestamp, UTC) if outcome == "success" else None,
            provider_reference="SIM" + uuid.uuid4().hex[:16].upper(),
            timestamp=timestamp,
        )
        body = callback.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_callback(body, timestamp, callback_key),
            TIMESTAMP_HEADER: str(timestamp),
        }
        transaction.status = outcome
        transaction.last_callback = (body, headers)
        delivered = await deliver(body, headers)
        if "text/html" in request.headers.get("accept", ""):  # a citizen's browser: back to the
            return RedirectResponse(transaction.order.return_url, status_code=303)  # return page
        return delivered

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/pay/{transaction_id}/replay")
    async def replay(transaction_id: str) -> dict[str, Any]:
        transaction = transactions.get(transaction_id)
        if transaction is None or transaction.last_callback is None:
            raise HTTPException(404, "no callback sent for this transaction yet")
        return await deliver(*transaction.last_callback)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local simulator of the national payment platform")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument(
        "--callback-url",
        default=os.environ.get("DVC_PAYSIM_CALLBACK_URL", DEFAULT_CALLBACK_URL),
        help="where payment callbacks are posted (env DVC_PAYSIM_CALLBACK_URL)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(
        request_key=os.environ.get("DVC_PAYSIM_REQUEST_KEY", DEV_REQUEST_KEY).encode(),
        callback_key=os.environ.get("DVC_PAYSIM_CALLBACK_KEY", DEV_CALLBACK_KEY).encode(),
        callback_url=args.callback_url,
    )
    serve(app, args.host, args.port)


if __name__ == "__main__":
    main()
