"""CPU per request of the two HTTP client libraries the platform has, httpx and aiohttp, for the
adapters that call an HTTP API once or more per dossier (the portal sync, the SMS gateway).

    .venv/bin/python bench/bench_http_clients.py [--requests 3000] [--concurrency 8]

Each client POSTs the same JSON body (a portal dossier message's size) to a minimal HTTP/1.1
server in the same process, keep-alive, `--concurrency` requests at a time; the figure is this
process's CPU time per request, the server's share included (the same for both). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

PAYLOAD = {
    "MaHoSo": "000.00.21.G12-261129-0001",
    "MaTTHC": "1.004473",
    "ChuHoSo": "Nguyễn Văn A",
    "LoaiDoiTuong": 1,
    "NgayNopHoSo": "20261127090000",
    "TrangThaiHoSo": 1,
    "KenhThucHien": 2,
    "DonViXuLy": "G12",
    "NoiDung": "x" * 300,
}
HEADERS = {"Authorization": "Bearer token"}


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer `{}` to every request of the connection."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            writer.write(b"Content-Length: 2\r\n\r\n{}")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def measure(post: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> float:
    """CPU milliseconds per request."""
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            await post()

    await asyncio.gather(*(one() for _ in range(50)))  # connections opened, code warm
    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    return (time.process_time() - started) / requests * 1000


async def main(requests: int, concurrency: int) -> None:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/dossiers"
    print(f"{requests} POSTs of {len(str(PAYLOAD))} bytes, {concurrency} at a time")
    for _ in range(2):
        async with httpx.AsyncClient() as client:

            async def with_httpx() -> None:
                response = await client.post(url, json=PAYLOAD, headers=HEADERS)
                response.raise_for_status()

            cost = await measure(with_httpx, requests, concurrency)
            print(f"  httpx    {cost:.3f} ms CPU each")
        async with aiohttp.ClientSession() as session:

            async def with_aiohttp() -> None:
                async with session.post(url, json=PAYLOAD, headers=HEADERS) as response:
                    await response.read()
                    response.raise_for_status()

            cost = await measure(with_aiohttp, requests, concurrency)
            print(f"  aiohttp  {cost:.3f} ms CPU each")
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency))
