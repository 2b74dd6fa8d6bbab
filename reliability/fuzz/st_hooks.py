"""Schemathesis hooks for reliability/fuzz/schemathesis.sh.

Generated webhook requests would almost all stop at the source allowlist
(403) or at authentication (401). So, before each call:

- the generated `{source}` is mapped, for 8 cases in 10 (chosen from a hash
  of the generated name, so a case replays identically while shrinking), to
  a source the gateway under test serves: `alpha` (custom, hmac-sha256),
  `stdwh` (custom, standard-webhooks), `tradingview` / `tvtwo` (TradingView);
- cases generated in positive mode are then authenticated: the body is
  serialized here, exactly once, and sent as those bytes, and
  `X-Signature = "sha256=" + hex(HMAC-SHA256(secret, X-Timestamp + "." +
  X-Nonce + "." + body))` is computed over them with a fresh timestamp and
  nonce (Standard Webhooks: a fresh `webhook-id` / `webhook-timestamp` and
  its `v1,` signature; TradingView: the `token` query parameter, and the
  `passphrase` field set to the token when the JSON body has one);
- negative-mode cases whose only violation is the body are signed too, so
  schema-violating payloads reach the normalizer; other negative cases are
  sent as generated (unsigned): they exercise the checks made before and
  during authentication.

After each call the status and error code are appended to $ST_LOG (one JSON
line each) for the campaign's figures. All secrets are fake test values.
"""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import schemathesis

HMAC_SECRET = os.environ["FUZZ_HMAC_SECRET"].encode()
WHSEC = os.environ["FUZZ_WHSEC"]
TV_TOKEN = os.environ["FUZZ_TV_TOKEN"]
TV2_TOKEN = os.environ["FUZZ_TV2_TOKEN"]
LOG = os.environ.get("ST_LOG")

CUSTOM = {"alpha": "hmac", "stdwh": "standard"}
TOKENS = {"tradingview": TV_TOKEN, "tvtwo": TV2_TOKEN}


def _bucket(name) -> int:
    return hashlib.sha256(str(name).encode()).digest()[0] % 10


def _is_positive(case) -> bool:
    meta = getattr(case, "meta", None)
    return meta is None or meta.generation.mode.is_positive


def _only_body_negative(case) -> bool:
    """A negative case whose only schema-violating part is the body."""
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_negative:
        return False
    negative = {str(getattr(loc, "value", loc)) for loc, c in meta.components.items() if c.mode.is_negative}
    return negative == {"body"}


def _body_bytes(case) -> bytes | None:
    """The body as it will be sent, or None when there is none."""
    body = case.body
    if body is None or type(body).__name__ == "NotSet":
        return None
    if isinstance(body, bytes):
        return body
    media = (case.media_type or "").lower()
    if isinstance(body, str) and not media.endswith("json"):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


@schemathesis.hook
def before_call(context, case, kwargs):
    template = case.operation.path
    if case.method.upper() != "POST" or not template.startswith("/webhooks"):
        return
    params = case.path_parameters if case.path_parameters is not None else {}
    generated = params.get("source")
    if template == "/webhooks/{source}":
        b = _bucket(generated)
        if b < 8:
            params["source"] = ["alpha", "alpha", "alpha", "stdwh", "stdwh", "tradingview", "tradingview", "tvtwo"][b]
        source = params["source"]
    elif template == "/webhooks/tradingview/{source}":
        if _bucket(generated) < 8:
            params["source"] = "tvtwo"
        source = params["source"]
    else:
        source = "tradingview"
    # Positive cases, and negative cases whose only violation is the body
    # (so schema-violating payloads reach the normalizer), are signed.
    if not (_is_positive(case) or _only_body_negative(case)):
        return

    # Edit the case itself: `headers` and `params` are named arguments of
    # Case.call, not transport kwargs.
    if case.headers is None:
        case.headers = {}
    headers = case.headers
    if source in TOKENS:
        token = TOKENS[source]
        if isinstance(case.body, dict) and "passphrase" in case.body:
            case.body["passphrase"] = token
        if case.query is None:
            case.query = {}
        case.query["token"] = token
    body = _body_bytes(case)
    raw = body if body is not None else b""
    if CUSTOM.get(source) == "hmac":
        ts = str(int(time.time()))
        nonce = uuid.uuid4().hex
        mac = hmac.new(HMAC_SECRET, ts.encode() + b"." + nonce.encode() + b"." + raw, hashlib.sha256)
        headers.update({"X-Timestamp": ts, "X-Nonce": nonce, "X-Signature": "sha256=" + mac.hexdigest()})
    elif CUSTOM.get(source) == "standard":
        ts = str(int(time.time()))
        msg_id = "msg_" + uuid.uuid4().hex
        key = base64.b64decode(WHSEC.removeprefix("whsec_"))
        mac = hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + raw, hashlib.sha256)
        headers.update(
            {
                "webhook-id": msg_id,
                "webhook-timestamp": ts,
                "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
            }
        )
    if body is not None:
        kwargs["data"] = body


def _served_methods() -> dict:
    """{path: {METHOD, ...}} of the operations openapi.yaml documents as
    served: every operation but those that only document the 405 refusal."""
    import yaml  # schemathesis depends on PyYAML

    spec = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "openapi.yaml")
    with open(spec) as f:
        doc = yaml.safe_load(f)
    served = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op and set(op["responses"]) != {"405"}:
                served.setdefault(path, set()).add(method.upper())
    return served


SERVED = _served_methods()


def _allow_is_exact(case, response) -> bool:
    """ST205 counts every documented operation as served, including the ones
    openapi.yaml documents only to say they answer 405; the gateway's Allow
    lists exactly the served ones, which is what RFC 9110 asks."""
    allow = response.headers.get("allow") or response.headers.get("Allow") or ""
    if isinstance(allow, list):
        allow = ",".join(allow)
    methods = {m.strip().upper() for m in allow.split(",") if m.strip()}
    return response.status_code == 405 and methods == SERVED.get(case.operation.path)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    code = getattr(failure, "code", None)
    if code == "ST201" and _only_body_negative(case) and response.status_code in (202, 409):
        # The documented contract: a body is not refused by its shape; an
        # authentic body outside the SignalTemplate schema that still
        # normalizes (e.g. {"symbol": 5, "action": "buy"}) is accepted (or is
        # a duplicate of one that was). Whatever does not normalize is 422.
        why = "schema-violating body that normalizes, accepted (documented)"
    elif code == "ST205" and _allow_is_exact(case, response):
        why = "405 whose Allow lists exactly the served methods (ST205 also counts documented refusals)"
    else:
        return True
    if why is None:
        return True
    if LOG:
        with open(LOG + ".known", "a") as f:
            f.write(json.dumps({"op": f"{case.method.upper()} {path_of(case)}", "why": why}) + "\n")
    return False


def path_of(case):
    return case.operation.path


@schemathesis.hook
def after_call(context, case, response):
    if not LOG:
        return
    code = None
    try:
        doc = json.loads(response.content or b"null")
        if isinstance(doc, dict):
            code = doc.get("code") or doc.get("status")
    except ValueError:
        pass
    meta = getattr(case, "meta", None)
    record = {
        "op": f"{case.method.upper()} {case.operation.path}",
        "path": case.formatted_path if hasattr(case, "formatted_path") else None,
        "mode": str(meta.generation.mode) if meta else "explicit",
        "status": response.status_code,
        "code": code,
        "elapsed": round(response.elapsed, 4) if isinstance(response.elapsed, float) else None,
    }
    with open(LOG, "a") as f:
        f.write(json.dumps(record) + "\n")
