"""Steady-rate probe: signed webhooks at a fixed rate, one JSON line each.

Open loop: request i is sent at start + i/rate whatever happened to the
earlier ones, so a stalled gateway shows up as growing latency and many
requests in flight, not as a quietly slower probe. Every request has its own
Idempotency-Key (`<prefix>-<i>`) and nonce. Alongside, the gateway's VmRSS is
sampled from /proc/PID/status.

Output lines (--out):
  {"k": key, "t0": send time, "lat_ms": ..., "status": 202, "code": ..., "event_id": ...}
  {"rss_kb": ..., "t": ...}
Status 0 means a transport error (the "err" field says which).

Stops after --duration seconds, or at SIGTERM/SIGINT, then waits for the
requests in flight (each bounded by --timeout).

Retrying mode (--retry-for SECONDS > 0) behaves like a careful caller: each
logical request is sent again with the same Idempotency-Key and body (fresh
timestamp, nonce and signature) after any answer that is not 2xx, 409 or
another 4xx -- 503s and transport errors alike -- with a backoff of 0.2 s
doubling to 2 s, until it gets a 2xx or a 409 `duplicate` (stored earlier:
the record then carries `"stored": true` and the original event id) or
--retry-for seconds have passed since its first attempt. Then the "k" record
is the logical request's outcome (status/code/event_id of the last attempt,
"attempts", "statuses"), and every attempt is also written as
  {"a": key, "n": attempt, "t0": start, "t_sent": body written, "conn":
   "new"|"reused", "t_conn": connection made, "status", "code", "err", "lat_ms"}
so a campaign can tell requests sent before an event from those sent after.

The secret comes from the environment (FAULTS_SECRET), never the command
line, so it does not show up in `ps`.
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


def signed_request(secret: bytes, key: str, seq: int, pad: int):
    """Headers and body of one normalizable signal with its own key."""
    doc = {"symbol": "BTCUSDT", "action": "buy", "quantity": "0.5", "probe_seq": seq}
    if pad:
        doc["padding"] = "x" * pad
    body = json.dumps(doc, separators=(",", ":")).encode()
    ts = str(int(time.time()))
    nonce = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": sign(secret, ts, nonce, body),
        "Idempotency-Key": key,
    }
    return headers, body


def rss_kb(pid: int):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def tracing():
    """Records, per request, when its body was written and on which connection."""
    trace = aiohttp.TraceConfig()

    async def created(session, ctx, params):
        ctx.trace_request_ctx["conn"] = "new"
        ctx.trace_request_ctx["t_conn"] = time.time()

    async def reused(session, ctx, params):
        ctx.trace_request_ctx["conn"] = "reused"

    async def chunk_sent(session, ctx, params):
        ctx.trace_request_ctx["t_sent"] = time.time()

    async def headers_sent(session, ctx, params):
        ctx.trace_request_ctx.setdefault("t_sent", time.time())

    trace.on_connection_create_end.append(created)
    trace.on_connection_reuseconn.append(reused)
    trace.on_request_chunk_sent.append(chunk_sent)
    trace.on_request_headers_sent.append(headers_sent)
    return trace


class Probe:
    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.secret = os.environ["FAULTS_SECRET"].encode()
        self.stop = asyncio.Event()

    def write(self, rec):
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    async def attempt(self, session, key, seq, n):
        """One HTTP attempt; returns its record (also written as an "a" line)."""
        headers, body = signed_request(self.secret, key, seq, self.args.pad)
        ctx = {}
        t0 = time.time()
        rec = {"a": key, "n": n, "t0": t0}
        try:
            async with session.post(self.args.url, data=body, headers=headers, trace_request_ctx=ctx) as resp:
                text = await resp.text()
                rec["status"] = resp.status
                try:
                    doc = json.loads(text)
                    rec["code"] = doc.get("code") or doc.get("status")
                    if "event_id" in doc:
                        rec["event_id"] = doc["event_id"]
                except ValueError:
                    rec["code"] = None
        except Exception as e:
            rec["status"] = 0
            rec["err"] = type(e).__name__
        rec["lat_ms"] = round((time.time() - t0) * 1000, 2)
        rec.update(ctx)
        self.write(rec)
        return rec

    async def one_retrying(self, session, seq):
        key = f"{self.args.prefix}-{seq}"
        first = time.time()
        backoff, n, statuses = 0.2, 0, []
        while True:
            n += 1
            rec = await self.attempt(session, key, seq, n)
            statuses.append(rec["status"] if rec["status"] else rec.get("err", "0"))
            st = rec["status"]
            # 408, 429 and 400 body_error say "retry"; other 4xx are final.
            final = 200 <= st < 300 or (400 <= st < 500 and st not in (408, 429)
                                        and rec.get("code") != "body_error")
            if final or time.time() + backoff - first > self.args.retry_for:
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        out = {"k": key, "t0": first, "status": st, "code": rec.get("code"), "attempts": n,
               "statuses": statuses, "lat_ms": round((time.time() - first) * 1000, 2),
               "t_done": time.time()}
        if "event_id" in rec:
            out["event_id"] = rec["event_id"]
        if 200 <= st < 300 or (st == 409 and rec.get("code") == "duplicate"):
            out["stored"] = True
        self.write(out)

    async def one(self, session, seq):
        if self.args.retry_for > 0:
            return await self.one_retrying(session, seq)
        key = f"{self.args.prefix}-{seq}"
        headers, body = signed_request(self.secret, key, seq, self.args.pad)
        t0 = time.time()
        rec = {"k": key, "t0": t0}
        try:
            async with session.post(self.args.url, data=body, headers=headers) as resp:
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

    async def sample_rss(self):
        while not self.stop.is_set():
            if self.args.pid:
                kb = rss_kb(self.args.pid)
                if kb is not None:
                    self.write({"rss_kb": kb, "t": time.time()})
            try:
                await asyncio.wait_for(self.stop.wait(), self.args.rss_every)
            except asyncio.TimeoutError:
                pass

    async def run(self):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        timeout = aiohttp.ClientTimeout(total=self.args.timeout)
        # Room for every request that could be in flight at once.
        conn = aiohttp.TCPConnector(limit=int(self.args.rate * self.args.timeout) + 16)
        sampler = asyncio.create_task(self.sample_rss())
        tasks = set()
        traces = [tracing()] if self.args.retry_for > 0 else []
        async with aiohttp.ClientSession(timeout=timeout, connector=conn, trace_configs=traces) as session:
            start = time.monotonic()
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
        self.stop.set()
        await sampler
        print(f"probe: sent {seq} requests", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8001/webhooks/alpha")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds (or until SIGTERM)")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request limit, seconds")
    p.add_argument("--prefix", default=f"probe-{uuid.uuid4().hex[:8]}", help="idempotency key prefix")
    p.add_argument("--pad", type=int, default=0, help="extra body bytes per request")
    p.add_argument("--pid", type=int, default=0, help="gateway PID for VmRSS samples")
    p.add_argument("--rss-every", type=float, default=0.5, help="seconds between RSS samples")
    p.add_argument("--retry-for", type=float, default=0.0,
                   help="retrying mode: retry each request until 2xx/409/4xx or this many seconds (0: off)")
    p.add_argument("--out", required=True, help="JSON lines file")
    args = p.parse_args()
    with open(args.out, "a") as out:
        asyncio.run(Probe(args, out).run())


if __name__ == "__main__":
    main()
