//! `openapi.yaml` against the code: the routes `ingress::routes` registers,
//! every error code of the closed list (`error::Code::ALL`) with its
//! status, every error body `GatewayError::to_response` renders, and the
//! real server's answers to a set of requests, each validated against the
//! documented status, content type, body schema and headers.
//!
//! The checkers return their problems as text; `checkers_detect_drift`
//! feeds them deliberately wrong documents so they are known to be able to
//! fail.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use at_gateway::error::{Code, GatewayError};
use at_gateway::ids::{CorrId, EventId};
use common::*;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load_spec() -> Value {
    let text = std::fs::read_to_string(repo().join("openapi.yaml")).expect("openapi.yaml");
    serde_norway::from_str(&text).expect("openapi.yaml is valid YAML")
}

/// Follows a local `$ref` (`#/components/...`).
fn pointer<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// `v` with every `$ref` replaced by its target, recursively.
fn resolve(doc: &Value, v: &Value) -> Value {
    resolve_depth(doc, v, 0)
}

fn resolve_depth(doc: &Value, v: &Value, depth: usize) -> Value {
    assert!(depth < 64, "$ref cycle in openapi.yaml");
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let target = pointer(doc, r).unwrap_or_else(|| panic!("unresolved $ref {r}"));
                return resolve_depth(doc, target, depth + 1);
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), resolve_depth(doc, v, depth + 1)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve_depth(doc, v, depth + 1))
                .collect(),
        ),
        other => other.clone(),
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// (method, path) -> the resolved operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let item = resolve(doc, item);
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.insert((m.to_string(), path.clone()), op.clone());
            }
        }
    }
    out
}

/// An operation that only documents the refusal of its method: 405 (404
/// where a path is served by a plain route without a method fallback).
fn is_wrong_method(op: &Value) -> bool {
    let statuses: Vec<&String> = op["responses"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    statuses == ["405"] || statuses == ["404"]
}

// ---------------------------------------------------------------------------
// Routes

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Route {
    path: String,
    methods: BTreeSet<String>,
    /// Other methods answer the gateway's JSON 405 with `Allow` (a resource with
    /// `default_service(refuse_other_methods(..))`); otherwise the method guard
    /// fails and the app's default service answers 404 `not_found`.
    json_405: bool,
}

/// The routes `ingress::routes` registers, read from its source.
fn served_routes() -> Vec<Route> {
    let text = std::fs::read_to_string(repo().join("src/ingress/mod.rs")).unwrap();
    let start = text.find("pub fn routes(").expect("ingress::routes");
    let body = &text[start..];
    let body = &body[..body.find("\n}\n").expect("end of routes")];
    let mut routes = Vec::new();
    // Split at each registration; each piece starts with its path literal.
    let mut rest = body;
    while let Some(pos) = [rest.find("web::resource(\""), rest.find(".route(\"")]
        .into_iter()
        .flatten()
        .min()
    {
        let piece = &rest[pos..];
        let is_resource = piece.starts_with("web::resource(");
        let quote = piece.find('"').unwrap() + 1;
        let path = piece[quote..quote + piece[quote..].find('"').unwrap()].to_string();
        let after = &piece[quote + path.len() + 1..];
        let end = [after.find("web::resource(\""), after.find(".route(\"")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(after.len());
        let segment = &after[..end];
        let methods = METHODS
            .iter()
            .filter(|m| segment.contains(&format!("web::{m}()")))
            .map(|m| m.to_string())
            .collect();
        routes.push(Route {
            path,
            methods,
            json_405: is_resource && segment.contains("refuse_other_methods("),
        });
        rest = after;
    }
    // `/webhooks/…` is one scope split by hand (`ingress::webhook_path`).
    assert!(
        body.contains("web::scope(\"/webhooks\").default_service(web::to(webhook))"),
        "the webhook scope is registered"
    );
    for path in at_gateway::ingress::WEBHOOK_ROUTES {
        routes.push(Route {
            path: path.to_string(),
            methods: BTreeSet::from(["post".to_string()]),
            json_405: true,
        });
    }
    assert!(
        body.contains(".default_service(web::to(not_found))"),
        "unknown paths must answer the documented 404"
    );
    routes
}

/// Whether an OpenAPI path is served by an actix-web route template.
fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

fn check_routes(doc: &Value, routes: &[Route]) -> Vec<String> {
    let mut problems = Vec::new();
    let ops = operations(doc);
    // Code -> document: every route and method is documented at its own path.
    for r in routes {
        for m in &r.methods {
            match ops.get(&(m.clone(), r.path.clone())) {
                Some(op) if !is_wrong_method(op) => {}
                _ => problems.push(format!("{} {} is served but not documented", m, r.path)),
            }
        }
        // Resources answer JSON 405 to the common methods they do not
        // serve: documented.
        if r.json_405 {
            for m in ["get", "post", "put", "patch", "delete"] {
                if !r.methods.contains(m) && !ops.contains_key(&(m.to_string(), r.path.clone())) {
                    problems.push(format!("{m} {} answers 405 but is not documented", r.path));
                }
            }
        }
    }
    // Document -> code: every documented operation is what the router does
    // for that method and path (actix-web picks the first matching route).
    for ((m, path), op) in &ops {
        let Some(route) = routes.iter().find(|r| template_matches(&r.path, path)) else {
            problems.push(format!(
                "{m} {path} is documented but no route serves the path"
            ));
            continue;
        };
        let serves = route.methods.contains(m);
        if serves == is_wrong_method(op) {
            problems.push(format!(
                "{m} {path}: documented as {}, but route {} {}",
                if serves { "405" } else { "served" },
                route.path,
                if serves { "serves it" } else { "does not" }
            ));
        }
        if !serves {
            let expected = if route.json_405 { "405" } else { "404" };
            if op["responses"].get(expected).is_none() {
                problems.push(format!(
                    "{m} {path}: the router answers {expected}, the document does not say so"
                ));
            }
        }
    }
    problems
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_served() {
    let doc = load_spec();
    let routes = served_routes();
    assert!(
        routes.len() >= 5,
        "routes read from ingress::routes: {routes:?}"
    );
    let problems = check_routes(&doc, &routes);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// Error codes

/// Every variant with a fixed code. The exhaustive match fails to compile
/// when a variant is added, so this list cannot silently fall behind.
fn fixed_code_variants() -> Vec<GatewayError> {
    let event_id = EventId::generate();
    let all = vec![
        GatewayError::NotFound,
        GatewayError::MethodNotAllowed { allow: "POST" },
        GatewayError::BodyTimeout(Duration::from_secs(10)),
        GatewayError::Replay,
        GatewayError::Duplicate {
            event_id,
            payload_mismatch: true,
        },
        GatewayError::PayloadTooLarge { limit: 1 << 20 },
        GatewayError::TooLargeForStream,
        GatewayError::Unprocessable {
            reasons: vec!["a symbol is required".into()],
            event_id,
        },
        GatewayError::RateLimited {
            retry_after: Duration::from_millis(1500),
        },
        GatewayError::AuthThrottled {
            retry_after: Duration::from_secs(2),
        },
    ];
    for e in &all {
        match e {
            GatewayError::Refused { .. } => unreachable!(),
            GatewayError::NotFound
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::BodyTimeout(_)
            | GatewayError::Replay
            | GatewayError::Duplicate { .. }
            | GatewayError::PayloadTooLarge { .. }
            | GatewayError::TooLargeForStream
            | GatewayError::Unprocessable { .. }
            | GatewayError::RateLimited { .. }
            | GatewayError::AuthThrottled { .. } => {}
        }
    }
    all
}

/// The codes a resolved response schema allows (`const`/`enum`, through `oneOf`).
fn schema_codes(schema: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
        for alt in alts {
            out.extend(schema_codes(alt));
        }
    }
    let code = &schema["properties"]["code"];
    if let Some(c) = code.get("const").and_then(Value::as_str) {
        out.insert(c.to_string());
    }
    for c in code
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.insert(c.as_str().unwrap_or_default().to_string());
    }
    out
}

fn response_codes(response: &Value) -> BTreeSet<String> {
    schema_codes(&response["content"]["application/json"]["schema"])
}

/// Every error the gateway can render, with the documented response it must
/// match: not_found at any unknown path, method_not_allowed on webhook
/// paths, everything else on `POST /webhooks/{source}`.
fn documented_response_for(doc: &Value, e: &GatewayError) -> Option<Value> {
    let status = e.status().as_u16().to_string();
    let resp = match e.code().as_str() {
        "not_found" => doc.pointer("/components/responses/NotFound")?.clone(),
        "method_not_allowed" => doc
            .pointer("/paths/~1webhooks~1{source}/get/responses/405")?
            .clone(),
        _ => doc
            .pointer(&format!(
                "/paths/~1webhooks~1{{source}}/post/responses/{status}"
            ))?
            .clone(),
    };
    Some(resolve(doc, &resp))
}

/// One error per code: the variants that own theirs, and a `Refused` for
/// every other code in the closed list.
fn all_errors() -> Vec<GatewayError> {
    let mut errors = fixed_code_variants();
    let owned: Vec<Code> = errors.iter().map(GatewayError::code).collect();
    for code in Code::ALL.iter().filter(|c| !owned.contains(c)) {
        errors.push(GatewayError::refused(*code, "m"));
    }
    errors
}

fn check_codes(doc: &Value, errors: &[GatewayError]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut produced = BTreeSet::new();
    for e in errors {
        produced.insert(e.code().as_str().to_string());
        let status = e.status().as_u16();
        match documented_response_for(doc, e) {
            None => problems.push(format!(
                "{} ({status}) has no documented response",
                e.code().as_str()
            )),
            Some(resp) if !response_codes(&resp).contains(e.code().as_str()) => {
                problems.push(format!(
                    "{} is answered {status}, but the documented {status} does not list it",
                    e.code().as_str()
                ))
            }
            Some(_) => {}
        }
    }
    // Document -> code: no documented code that nothing produces, at any
    // operation or response component.
    let mut documented = BTreeSet::new();
    for op in operations(doc).values() {
        for resp in op["responses"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            documented.extend(response_codes(resp));
        }
    }
    for resp in doc["components"]["responses"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        documented.extend(response_codes(&resolve(doc, resp)));
    }
    for code in documented.difference(&produced) {
        problems.push(format!(
            "{code} is documented but the code never produces it"
        ));
    }
    problems
}

#[test]
fn every_error_code_is_documented_with_its_status_and_nothing_else_is() {
    let doc = load_spec();
    let problems = check_codes(&doc, &all_errors());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// Validating answers against the document

fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    let validator = jsonschema::draft202012::new(schema).map_err(|e| format!("schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Checks one answer against a resolved documented response: content type,
/// body schema (or an empty body) and every required header.
fn check_answer(
    response: &Value,
    content_type: Option<&str>,
    headers: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<(), String> {
    match response.get("content").and_then(Value::as_object) {
        Some(content) => {
            let ct = content_type.unwrap_or_default();
            let (media, spec) = content
                .iter()
                .find(|(m, _)| ct.starts_with(m.as_str()))
                .ok_or_else(|| format!("content type {ct:?} is not documented"))?;
            if media == "application/json" {
                let value: Value = serde_json::from_slice(body).map_err(|e| {
                    format!("body is not JSON ({e}): {}", String::from_utf8_lossy(body))
                })?;
                validate(&spec["schema"], &value).map_err(|e| format!("body {value}: {e}"))?;
            }
        }
        None if body.is_empty() => {}
        None => {
            return Err(format!(
                "documented without a body, got {}",
                String::from_utf8_lossy(body)
            ))
        }
    }
    for (name, h) in response
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        match headers(name) {
            Some(v) => {
                validate(&h["schema"], &json!(v)).map_err(|e| format!("header {name}: {e}"))?
            }
            None if h["required"] == true => return Err(format!("header {name} is missing")),
            None => {}
        }
    }
    Ok(())
}

#[actix_rt::test]
async fn every_rendered_error_matches_its_documented_response() {
    let doc = load_spec();
    let corr = CorrId::from_header(Some("corr-openapi-1"));
    let mut problems = Vec::new();
    for e in all_errors() {
        let Some(documented) = documented_response_for(&doc, &e) else {
            problems.push(format!("{}: undocumented", e.code()));
            continue;
        };
        let resp = e.to_response(&corr);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let ct = header("content-type");
        let headers: BTreeMap<String, String> = ["x-correlation-id", "retry-after", "allow"]
            .into_iter()
            .filter_map(|h| header(h).map(|v| (h.to_string(), v)))
            .collect();
        let body = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
        let lookup = |name: &str| headers.get(&name.to_ascii_lowercase()).cloned();
        if let Err(p) = check_answer(&documented, ct.as_deref(), &lookup, &body) {
            problems.push(format!("{} ({}): {p}", e.code(), e.status()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Finds the documented operation for a concrete method and path: a
/// literal path wins over a template, as in the router.
fn find_operation(doc: &Value, method: &str, path: &str) -> Option<(String, Value)> {
    let ops = operations(doc);
    let path = path.split('?').next().unwrap();
    let mut candidates: Vec<_> = ops
        .iter()
        .filter(|((m, p), _)| m == method && template_matches(p, path))
        .collect();
    candidates.sort_by_key(|((_, p), _)| p.matches('{').count());
    candidates
        .first()
        .map(|((_, p), op)| (p.clone(), (*op).clone()))
}

/// Sends `req` and checks the answer against the document: the status must
/// be documented for that operation (or be the documented 404 of an
/// unknown path) and the answer must match it. Returns status and body.
async fn exchange(
    doc: &Value,
    req: reqwest::RequestBuilder,
    problems: &mut Vec<String>,
) -> (u16, Value) {
    let req = req.build().unwrap();
    let method = req.method().as_str().to_ascii_lowercase();
    let path = req.url().path().to_string();
    let label = format!("{} {}", method, req.url().path());
    let resp = reqwest::Client::new()
        .execute(req)
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    record_artifact(
        "responses",
        &format!("{status} {}", String::from_utf8_lossy(&body)),
    );
    let documented = match find_operation(doc, &method, &path) {
        Some((_, op)) => op["responses"].get(status.to_string()).cloned(),
        None if status == 404 => doc.pointer("/components/responses/NotFound").cloned(),
        None => None,
    };
    match documented {
        None => problems.push(format!("{label}: status {status} is not documented")),
        Some(d) => {
            let d = resolve(doc, &d);
            let lookup = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let ct = lookup("content-type");
            if let Err(p) = check_answer(&d, ct.as_deref(), &lookup, &body) {
                problems.push(format!("{label} -> {status}: {p}"));
            }
        }
    }
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[actix_rt::test]
async fn the_real_server_answers_as_documented() {
    let doc = load_spec();
    let app = spawn_app(AppOptions::default()).await;
    let http = &app.http;
    let mut p = Vec::new();
    let body = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"0.5"}"#;
    let signed = |b: &str| sign(b);
    let post_signed = |s: &Signed| app.signed(s).request();
    let mut expect = |what: &str, got: (u16, Value), status: u16, code: &str| {
        let (s, v) = got;
        let c = v.get("code").and_then(Value::as_str).unwrap_or("");
        if s != status || (!code.is_empty() && c != code) {
            p.push(format!("{what}: expected {status} {code}, got {s} {v}"));
        }
    };

    // Operations endpoints.
    let mut q = Vec::new();
    expect(
        "healthz",
        exchange(&doc, http.get(app.url("/healthz")), &mut q).await,
        200,
        "",
    );
    expect(
        "readyz",
        exchange(&doc, http.get(app.url("/readyz")), &mut q).await,
        200,
        "",
    );
    expect(
        "metrics",
        exchange(&doc, http.get(app.url("/metrics")), &mut q).await,
        200,
        "",
    );
    expect(
        "HEAD /healthz",
        exchange(&doc, http.head(app.url("/healthz")), &mut q).await,
        200,
        "",
    );
    expect(
        "POST /healthz",
        exchange(&doc, http.post(app.url("/healthz")), &mut q).await,
        405,
        "method_not_allowed",
    );
    expect(
        "POST /metrics",
        exchange(&doc, http.post(app.url("/metrics")).body("x"), &mut q).await,
        405,
        "method_not_allowed",
    );
    // Routing.
    expect(
        "unknown path",
        exchange(&doc, http.get(app.url("/nope")), &mut q).await,
        404,
        "not_found",
    );
    expect(
        "no source",
        exchange(&doc, http.post(app.url("/webhooks/")), &mut q).await,
        404,
        "not_found",
    );
    expect(
        "GET webhook",
        exchange(&doc, http.get(app.url("/webhooks/alpha")), &mut q).await,
        405,
        "method_not_allowed",
    );
    expect(
        "DELETE tv",
        exchange(
            &doc,
            http.delete(app.url("/webhooks/tradingview/x")),
            &mut q,
        )
        .await,
        405,
        "method_not_allowed",
    );
    expect(
        "unknown source",
        exchange(
            &doc,
            http.post(app.url("/webhooks/gamma")).body(body),
            &mut q,
        )
        .await,
        403,
        "source_not_allowed",
    );
    expect(
        "custom source on the TV route",
        exchange(
            &doc,
            http.post(app.url("/webhooks/tradingview/alpha")).body(body),
            &mut q,
        )
        .await,
        403,
        "source_not_allowed",
    );
    // Custom source: accepted, replayed, duplicated.
    let s = signed(body);
    let (status, accepted) = exchange(&doc, post_signed(&s), &mut q).await;
    expect("signed", (status, accepted.clone()), 202, "");
    expect(
        "same nonce",
        exchange(&doc, post_signed(&s), &mut q).await,
        409,
        "replay",
    );
    let (status, dup) = exchange(&doc, post_signed(&signed(body)), &mut q).await;
    expect("same body", (status, dup.clone()), 409, "duplicate");
    if dup["event_id"] != accepted["event_id"] {
        q.push(format!(
            "duplicate names {dup}, not the original {accepted}"
        ));
    }
    // Refusals.
    expect(
        "unsigned",
        exchange(
            &doc,
            http.post(app.url("/webhooks/alpha")).body(body),
            &mut q,
        )
        .await,
        401,
        "missing_signature",
    );
    let mut bad = signed(body);
    bad.signature = "sha256=zz".into();
    expect(
        "malformed signature",
        exchange(&doc, post_signed(&bad), &mut q).await,
        401,
        "invalid_signature",
    );
    let stale = sign_with(HMAC_SECRET, now_secs() - 3600, "n-stale", body);
    expect(
        "stale",
        exchange(&doc, post_signed(&stale), &mut q).await,
        401,
        "stale_timestamp",
    );
    expect(
        "xml",
        exchange(
            &doc,
            app.signed(&signed(body))
                .header("Content-Type", "application/xml")
                .request(),
            &mut q,
        )
        .await,
        415,
        "unsupported_content_type",
    );
    expect(
        "gzip",
        exchange(
            &doc,
            post_signed(&signed(body)).header("Content-Encoding", "gzip"),
            &mut q,
        )
        .await,
        415,
        "unsupported_content_encoding",
    );
    expect(
        "too large",
        exchange(
            &doc,
            http.post(app.url("/webhooks/alpha"))
                .body(vec![b' '; (1 << 20) + 1]),
            &mut q,
        )
        .await,
        413,
        "payload_too_large",
    );
    expect(
        "bad key",
        exchange(
            &doc,
            post_signed(&signed(r#"{"symbol":"ETHUSDT","action":"sell"}"#))
                .header("Idempotency-Key", "has space"),
            &mut q,
        )
        .await,
        400,
        "invalid_idempotency_key",
    );
    expect(
        "does not normalize",
        exchange(
            &doc,
            post_signed(&signed(r#"{"symbol":"BTCUSDT","action":"hodl"}"#)),
            &mut q,
        )
        .await,
        422,
        "validation_failed",
    );
    // Campaign 7's defect: a time that leaves years 0000-9999 in UTC made the
    // normalizer panic (503 stage_unavailable); now it is an honest 422.
    expect(
        "time out of range",
        exchange(
            &doc,
            post_signed(&signed(
                r#"{"symbol":"BTCUSDT","action":"buy","time":"9999-12-31T23:59:59-01:00"}"#,
            )),
            &mut q,
        )
        .await,
        422,
        "validation_failed",
    );
    // TradingView.
    let tv = |path: &str| {
        http.post(app.url(path))
            .header("Content-Type", "text/plain")
            .body("buy BTCUSDT 1 @ 42000")
    };
    expect(
        "tv no token",
        exchange(&doc, tv("/webhooks/tradingview"), &mut q).await,
        401,
        "missing_token",
    );
    expect(
        "tv wrong token",
        exchange(
            &doc,
            tv("/webhooks/tradingview?token=not-the-token-000"),
            &mut q,
        )
        .await,
        401,
        "invalid_token",
    );
    expect(
        "tv text",
        exchange(
            &doc,
            tv(&format!("/webhooks/tradingview?token={TV_TOKEN}")),
            &mut q,
        )
        .await,
        202,
        "",
    );
    expect(
        "tv escaped passphrase",
        exchange(
            &doc,
            http.post(app.url("/webhooks/tradingview"))
                .header("Content-Type", "application/json")
                // The right token with its first character escaped: it
                // matches, but its bytes cannot be found to redact them.
                .body(format!(
                    r#"{{"passphrase":"\u{:04x}{}","symbol":"BTCUSDT","action":"buy"}}"#,
                    TV_TOKEN.as_bytes()[0],
                    &TV_TOKEN[1..]
                )),
            &mut q,
        )
        .await,
        400,
        "escaped_token",
    );
    p.extend(q);
    assert!(p.is_empty(), "{}", p.join("\n"));
}

// ---------------------------------------------------------------------------
// The checkers can fail

fn remove_enum_value(doc: &mut Value, schema: &str, code: &str) {
    let codes = doc
        .pointer_mut(&format!(
            "/components/schemas/{schema}/properties/code/enum"
        ))
        .and_then(Value::as_array_mut)
        .unwrap();
    codes.retain(|c| c != code);
}

#[test]
fn checkers_detect_drift() {
    let doc = load_spec();
    let routes = served_routes();
    let errors = all_errors();

    // An error code dropped from its status.
    let mut d = doc.clone();
    remove_enum_value(&mut d, "UnavailableError", "stage_unavailable");
    let problems = check_codes(&d, &errors);
    assert!(
        problems.iter().any(|p| p.contains("stage_unavailable")),
        "{problems:?}"
    );
    // A code documented that nothing produces.
    let mut d = doc.clone();
    d.pointer_mut("/components/schemas/ForbiddenError/properties/code/enum")
        .and_then(Value::as_array_mut)
        .unwrap()
        .push(json!("banned"));
    assert!(check_codes(&d, &errors)
        .iter()
        .any(|p| p.contains("banned")));
    // A route missing from the document, and one documented that is not served.
    let mut d = doc.clone();
    d["paths"].as_object_mut().unwrap().remove("/metrics");
    assert!(check_routes(&d, &routes)
        .iter()
        .any(|p| p.contains("get /metrics")));
    let mut d = doc.clone();
    d["paths"]["/version"] = json!({"get": {"responses": {"200": {"description": "x"}}}});
    assert!(check_routes(&d, &routes)
        .iter()
        .any(|p| p.contains("/version")));
    // A rendered body outside its schema, and a missing header.
    let resp = resolve(&doc, doc.pointer("/components/responses/Conflict").unwrap());
    let no_headers = |_: &str| None;
    let with_corr = |n: &str| (n == "X-Correlation-Id").then(|| "c-1".to_string());
    let dup = br#"{"code":"duplicate","message":"m","corr_id":"c-1"}"#;
    assert!(check_answer(&resp, Some("application/json"), &with_corr, dup).is_err());
    let ok = br#"{"code":"replay","message":"m","corr_id":"c-1"}"#;
    assert!(check_answer(&resp, Some("application/json"), &with_corr, ok).is_ok());
    assert!(check_answer(&resp, Some("application/json"), &no_headers, ok).is_err());
}
