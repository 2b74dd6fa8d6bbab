"""The seed's stack doing the gateway's happy-path work, for bench/run.sh.

FastAPI on uvicorn (run with --workers 2, uvloop and httptools from
uvicorn[standard]), nats-py. POST /webhooks/{source}: source allow-list,
timestamp window, HMAC-SHA256 of "timestamp.nonce.body" against
X-Signature (constant-time compare), nonce into an in-memory set (per worker
process), JSON parse, then two JetStream publishes (the raw body and a small
normalized document, with Nats-Msg-Id), both in flight at once and both
acknowledgements awaited, then 202. Nothing else: no metrics, no logging.

Environment: SEED_NATS_URL, SEED_HMAC_SECRET, SEED_ALLOWED_SOURCES (a,b).
Publishes into its own stream bench-seed (subjects seed.>, file storage,
120 s duplicate window, like the gateway's).
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import time

import nats
from fastapi import FastAPI, Request, Response

SECRET = os.environ["SEED_HMAC_SECRET"].encode()
ALLOWED = frozenset(s.strip() for s in os.environ.get("SEED_ALLOWED_SOURCES", "alpha").split(","))
NATS_URL = os.environ.get("SEED_NATS_URL", "nats://127.0.0.1:4222")
REPLAY_WINDOW = 300
STREAM = "bench-seed"

state = {}
nonces = set()


@contextlib.asynccontextmanager
async def lifespan(_app):
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        await js.add_stream(name=STREAM, subjects=["seed.>"], duplicate_window=120)
    except Exception:  # the other worker created it first
        await js.stream_info(STREAM)
    state["js"] = js
    yield
    await nc.drain()


app = FastAPI(lifespan=lifespan)


def error(status, code):
    return Response(
        status_code=status,
        content=json.dumps({"status": "error", "code": code}),
        media_type="application/json",
    )


@app.get("/readyz")
async def readyz():
    return {"ready": "js" in state}


@app.post("/webhooks/{source}")
async def webhook(source: str, request: Request):
    if source not in ALLOWED:
        return error(403, "source_not_allowed")
    body = await request.body()
    ts = request.headers.get("x-timestamp")
    nonce = request.headers.get("x-nonce")
    sig = request.headers.get("x-signature")
    if not ts or not nonce or not sig:
        return error(401, "missing_signature")
    try:
        if abs(int(ts) - time.time()) > REPLAY_WINDOW:
            return error(401, "stale_timestamp")
    except ValueError:
        return error(401, "stale_timestamp")
    mac = hmac.new(SECRET, f"{ts}.{nonce}.".encode() + body, hashlib.sha256).hexdigest()
    if not sig.startswith("sha256=") or not hmac.compare_digest(mac, sig[7:]):
        return error(401, "bad_signature")
    key = (source, nonce)
    if key in nonces:
        return error(409, "replay")
    nonces.add(key)
    try:
        doc = json.loads(body)
    except ValueError:
        return error(422, "invalid_json")
    if not isinstance(doc, dict) or "symbol" not in doc or "action" not in doc:
        return error(422, "invalid_signal")
    idem = doc.get("idempotency_key") or nonce
    normalized = json.dumps(
        {
            "source": source,
            "symbol": doc["symbol"],
            "action": doc["action"],
            "quantity": doc.get("quantity"),
            "price": doc.get("price"),
            "idempotency_key": idem,
            "timestamp": ts,
        }
    ).encode()
    msg_id = f"{source}:{idem}"
    js = state["js"]
    try:
        await asyncio.gather(
            js.publish("seed.raw", body, headers={"Nats-Msg-Id": msg_id + ":raw"}),
            js.publish("seed.normalized", normalized, headers={"Nats-Msg-Id": msg_id + ":normalized"}),
        )
    except Exception:
        return error(503, "nats_unavailable")
    return Response(status_code=202, content=b'{"status":"accepted"}', media_type="application/json")
