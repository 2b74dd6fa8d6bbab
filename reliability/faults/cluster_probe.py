"""Open-loop signed load for the cluster campaign, with retries.

Like probe.py (whose signing it copies, so that file can change under its
owners): request i is first sent at start + i/rate whatever happened to the
earlier ones, each with its own Idempotency-Key (`<prefix>-<i>`). Unlike
probe.py, a request answered 503 or not answered at all (transport error,
timeout) is sent again, as API_SPEC asks callers to: the same body and
Idempotency-Key, a fresh nonce and signature, after `Retry-After` (1 s),
until it gets a final answer (2xx, 409, any other 4xx) or --retry-until
seconds after the start have passed. With --retries 0 there are no retries.

One JSON line per attempt (--out):
  {"k": key, "a": attempt (0 = first), "t0": send time, "lat_ms": ...,
   "status": 202, "code": ..., "event_id": ...}
Status 0 means a transport error (the "err" field says which).

The secret comes from the environment (FAULTS_SECRET), never the command line.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import sys
import time
import uuid

import aiohttp


def sign(secret: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    """X-Signature as API_SPEC.md defines it: HMAC-SHA256 over ts.nonce.body."""
    mac = hmac.new(secret, timestamp.encode() + b"." + nonce.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def body_of(seq: int) -> bytes:
    doc = {"symbol": "BTCUSDT", "action": "buy", "quantity": "0.5", "probe_seq": seq}
    return json.dumps(doc, separators=(",", ":")).encode()


def headers_for(secret: bytes, key: str, body: bytes) -> dict:
    ts = str(int(time.time()))
    nonce = str(uuid.uuid4())  # fresh per attempt
    return {
        "Content-Type": "application/json",
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": sign(secret, ts, nonce, body),
        "Idempotency-Key": key,
    }


def retryable(status: int) -> bool:
    return status == 0 or status >= 500


class Probe:
    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.secret = os.environ["FAULTS_SECRET"].encode()
        self.stop = asyncio.Event()
        self.start = time.time()

    def write(self, rec):
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    async def attempt(self, session, key, seq, a):
        body = body_of(seq)
        t0 = time.time()
        rec = {"k": key, "a": a, "t0": t0}
        try:
            async with session.post(self.args.url, data=body, headers=headers_for(self.secret, key, body)) as resp:
                text = await resp.text()
                rec["status"] = resp.status
                try:
                    doc = json.loads(text)
                    rec["code"] = doc.get("code") or doc.get("status")
                    if "event_id" in doc:
                        rec["event_id"] = doc["event_id"]
                except ValueError:
                    rec["code"] = None
        except Exception as e:  # timeouts and resets are data here, not bugs
            rec["status"] = 0
            rec["err"] = type(e).__name__
        rec["lat_ms"] = round((time.time() - t0) * 1000, 2)
        self.write(rec)
        return rec["status"]

    async def one(self, session, seq):
        key = f"{self.args.prefix}-{seq}"
        a = 0
        while True:
            status = await self.attempt(session, key, seq, a)
            if not retryable(status) or a >= self.args.retries:
                return
            if time.time() + self.args.retry_after > self.start + self.args.retry_until:
                return
            await asyncio.sleep(self.args.retry_after)
            a += 1

    async def run(self):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        timeout = aiohttp.ClientTimeout(total=self.args.timeout)
        conn = aiohttp.TCPConnector(limit=int(self.args.rate * self.args.timeout) + 16)
        tasks = set()
        async with aiohttp.ClientSession(timeout=timeout, connector=conn) as session:
            start = time.monotonic()
            self.start = time.time()
            seq = 0
            while not self.stop.is_set():
                due = start + seq / self.args.rate
                if due - start >= self.args.duration:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self.stop.wait(), delay)
                        break
                    except asyncio.TimeoutError:
                        pass
                t = asyncio.create_task(self.one(session, seq))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                seq += 1
            if tasks:
                await asyncio.wait(tasks)
        print(f"cluster_probe: {seq} keys", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8001/webhooks/alpha")
    p.add_argument("--rate", type=float, default=20.0, help="new keys per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of new keys")
    p.add_argument("--timeout", type=float, default=30.0, help="per-attempt limit, seconds")
    p.add_argument("--retries", type=int, default=30, help="retries per key after 503 / no answer")
    p.add_argument("--retry-after", type=float, default=1.0, help="seconds between attempts")
    p.add_argument("--retry-until", type=float, default=90.0, help="no attempt starts later (s after start)")
    p.add_argument("--prefix", default=f"cluster-{uuid.uuid4().hex[:8]}", help="idempotency key prefix")
    p.add_argument("--out", required=True, help="JSON lines file")
    args = p.parse_args()
    with open(args.out, "a") as out:
        asyncio.run(Probe(args, out).run())


if __name__ == "__main__":
    main()
