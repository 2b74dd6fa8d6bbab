//! Senders that already sign their own way (`scheme = "body-hmac"`): the
//! seed's HTTP-webhook publisher (ADR-002: `X-Webhook-Signature` over the
//! body, `X-Webhook-Id`, `X-Webhook-Timestamp`, retries of 5xx) and a
//! GitHub-style sender (`X-Hub-Signature-256`, `X-GitHub-Delivery`) work
//! unchanged; forgeries, stale copies and expired keys do not; and a source
//! that did not opt in still refuses body-only signatures. The parsing and
//! known answers are unit tests in src/auth/body.rs.

use crate::common;

use std::sync::Mutex;
use std::time::Duration;

use at_gateway::auth::body;
use common::*;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const SEED_SECRET: &str = "body-secret-Rw4Kt8Xn2Pq6Lz1";
const GITHUB_SECRET: &str = "gh-hook-Lp5Zq9Cw3Mv7Ds2";
const OLD: &str = "old-body-Jd3Vm7Fs0Qc5Hy9";
const NEW: &str = "new-body-Tb8Nx2Wg6Kr4Ue1";
const FORGER: &str = "forger-key-Xa1Yb2Zc3Wd4";

/// Three sources: the seed publisher's (every default), a GitHub-style
/// one, and one in the middle of a key rotation whose old key has ended.
fn options() -> AppOptions {
    let ended = (OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    AppOptions {
        env: vec![("ALLOWED_SOURCES", "seed-pub,gh-style,rotating,alpha".into())],
        config: format!(
            r#"
[sources.seed-pub]
scheme = "body-hmac"
secret = "{SEED_SECRET}"

[sources.gh-style]
scheme = "body-hmac"
secret = "{GITHUB_SECRET}"
signature_header = "X-Hub-Signature-256"
id_header = "X-GitHub-Delivery"
timestamp_header = ""

[sources.rotating]
scheme = "body-hmac"
timestamp_format = "unix_ms"
secrets = [
  {{ id = "old", secret = "{OLD}", not_after = "{ended}" }},
  {{ id = "new", secret = "{NEW}" }},
]
"#
        ),
        ..Default::default()
    }
}

/// The seed's publisher as ADR-002 describes it: a JSON body, its
/// HMAC-SHA256 in `X-Webhook-Signature`, a uuid in `X-Webhook-Id` and the
/// ISO 8601 send time in `X-Webhook-Timestamp`; a 5xx is retried after
/// 1, 2, 4, 8 and 16 `unit`s (1 s in the seed), with the same id and body;
/// a 2xx or 4xx ends the delivery.
struct SeedPublisher {
    http: reqwest::Client,
    url: String,
    secret: &'static str,
    unit: Duration,
    /// Every answer so far, for a test that acts on what the sender saw.
    answers: Mutex<Vec<u16>>,
}

/// One delivery: what is sent on every attempt.
struct Delivery {
    id: String,
    timestamp: String,
    body: String,
}

impl SeedPublisher {
    fn new(app: &TestApp, secret: &'static str, unit: Duration) -> SeedPublisher {
        SeedPublisher {
            http: app.http.clone(),
            url: app.url("/webhooks/seed-pub"),
            secret,
            unit,
            answers: Mutex::new(Vec::new()),
        }
    }

    /// A new delivery of `body`, stamped now as Python's
    /// `datetime.now(timezone.utc).isoformat()` writes it.
    fn delivery(body: &str) -> Delivery {
        let iso = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
        );
        Delivery {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: OffsetDateTime::now_utc().format(iso).unwrap(),
            body: body.to_owned(),
        }
    }

    /// One attempt.
    async fn send(&self, d: &Delivery) -> (u16, Value) {
        let signature = body::sign(self.secret.as_bytes(), d.body.as_bytes());
        let req = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Webhook-Signature", signature)
            .header("X-Webhook-Id", &d.id)
            .header("X-Webhook-Timestamp", &d.timestamp)
            .body(d.body.clone());
        let answer = answer(req).await;
        self.answers.lock().unwrap().push(answer.0);
        answer
    }

    /// The retry loop: every attempt's answer, the last one final.
    async fn deliver(&self, d: &Delivery) -> Vec<(u16, Value)> {
        let mut answers = vec![self.send(d).await];
        for factor in [1, 2, 4, 8, 16] {
            if answers.last().is_some_and(|(status, _)| *status < 500) {
                break;
            }
            tokio::time::sleep(self.unit * factor).await;
            answers.push(self.send(d).await);
        }
        answers
    }

    fn answered(&self) -> usize {
        self.answers.lock().unwrap().len()
    }
}

/// A request to `source` with `headers` and `body`.
async fn post(app: &TestApp, source: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url(&format!("/webhooks/{source}")))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    answer(req).await
}

fn order(quantity: &str) -> String {
    format!(r#"{{"symbol":"BTCUSDT","action":"buy","quantity":"{quantity}"}}"#)
}

#[actix_rt::test]
async fn the_seed_publisher_rides_out_a_nats_outage_and_its_signal_is_stored_once() {
    let app = spawn_app(options()).await;
    // A tenth of the seed's backoff unit: retries after 0.5 s … 8 s, time
    // enough for NATS to come back and the gateway to reconnect.
    let publisher = SeedPublisher::new(&app, SEED_SECRET, Duration::from_millis(500));
    let delivery = SeedPublisher::delivery(&order("0.25"));

    app.nats.kill();
    app.wait_ready(false).await;
    let bring_nats_back = async {
        while publisher.answered() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.nats.restart();
    };
    let (answers, ()) = futures_util::join!(publisher.deliver(&delivery), bring_nats_back);

    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    let (last, earlier) = answers.split_last().unwrap();
    assert!(
        !earlier.is_empty(),
        "no attempt met the outage: {statuses:?}"
    );
    for (status, resp) in earlier {
        assert_eq!(*status, 503, "{statuses:?}: {resp}");
    }
    assert_eq!(last.0, 202, "{statuses:?}: {}", last.1);
    let event_id = last.1["event_id"].as_str().unwrap().to_owned();

    let raws = app.messages_on("signals.raw").await;
    let normalized = app.messages_on("signals.normalized").await;
    assert_eq!((raws.len(), normalized.len()), (1, 1), "{statuses:?}");
    assert_eq!(raws[0].json["event_id"], event_id.as_str());
    assert_eq!(normalized[0].json["event_id"], event_id.as_str());
    assert_eq!(raws[0].json["auth_scheme"], "body-hmac");
    assert_eq!(raws[0].json["key_id"], "default");
    let key = format!("seed-pub:w:{}", delivery.id);
    assert_eq!(raws[0].json["idempotency_key"], key.as_str());
    assert_valid("signal.raw.v1.json", &raws[0].json);

    // The same delivery again (a sender that never saw the 202): 409 with
    // the stored signal's id, and still one copy.
    let again = publisher.deliver(&delivery).await;
    assert_eq!(again.len(), 1, "a 4xx is not retried");
    let (status, resp) = &again[0];
    assert_eq!((*status, resp["code"].as_str()), (409, Some("duplicate")));
    assert_eq!(resp["event_id"], event_id.as_str());
    assert_eq!(resp["payload_mismatch"], false);
    assert_eq!(app.messages_on("signals.raw").await.len(), 1);
    assert_eq!(app.messages_on("signals.normalized").await.len(), 1);
}

#[actix_rt::test]
async fn a_github_style_sender_is_accepted_with_its_delivery_id_as_the_key() {
    let app = spawn_app(options()).await;
    let body = order("3");
    let signature = body::sign(GITHUB_SECRET.as_bytes(), body.as_bytes());
    let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let headers = [
        ("X-Hub-Signature-256", signature.as_str()),
        ("X-GitHub-Delivery", delivery),
        ("X-GitHub-Event", "push"),
    ];
    let (status, resp) = post(&app, "gh-style", &headers, &body).await;
    assert_eq!(status, 202, "{resp}");
    let (status, again) = post(&app, "gh-style", &headers, &body).await;
    assert_eq!((status, again["code"].as_str()), (409, Some("duplicate")));
    assert_eq!(again["event_id"], resp["event_id"]);

    // An explicit Idempotency-Key still wins over the delivery id.
    let other = order("4");
    let signature = body::sign(GITHUB_SECRET.as_bytes(), other.as_bytes());
    let headers = [
        ("X-Hub-Signature-256", signature.as_str()),
        ("X-GitHub-Delivery", "a0c4b0f6-0000-4000-8000-000000000001"),
        ("Idempotency-Key", "order-4"),
    ];
    assert_eq!(post(&app, "gh-style", &headers, &other).await.0, 202);

    let raws = app.messages_on("signals.raw").await;
    let keys: Vec<&str> = raws
        .iter()
        .map(|m| m.json["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            format!("gh-style:w:{delivery}").as_str(),
            "gh-style:h:order-4"
        ]
    );
    assert_eq!(app.messages_on("signals.normalized").await.len(), 2);
}

#[actix_rt::test]
async fn forged_missing_malformed_and_stale_are_401_and_nothing_is_stored() {
    let app = spawn_app(options()).await;
    let body = order("1");
    let good = body::sign(SEED_SECRET.as_bytes(), body.as_bytes());
    let forged = body::sign(FORGER.as_bytes(), body.as_bytes());
    let d = SeedPublisher::delivery(&body);
    let hour_ago = (OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    let unix_now = now_secs().to_string();
    let cases: [(&str, Option<&str>, Option<&str>, &str); 7] = [
        (
            "forged",
            Some(&forged),
            Some(&d.timestamp),
            "invalid_signature",
        ),
        (
            "missing signature",
            None,
            Some(&d.timestamp),
            "missing_signature",
        ),
        (
            "not hex",
            Some("sha256=zz"),
            Some(&d.timestamp),
            "invalid_signature",
        ),
        (
            "no prefix",
            Some(&good[7..]),
            Some(&d.timestamp),
            "invalid_signature",
        ),
        ("stale", Some(&good), Some(&hour_ago), "stale_timestamp"),
        ("no timestamp", Some(&good), None, "invalid_timestamp"),
        (
            "not ISO 8601",
            Some(&good),
            Some(&unix_now),
            "invalid_timestamp",
        ),
    ];
    for (case, signature, timestamp, code) in cases {
        let mut headers = vec![("X-Webhook-Id", d.id.as_str())];
        headers.extend(signature.map(|s| ("X-Webhook-Signature", s)));
        headers.extend(timestamp.map(|t| ("X-Webhook-Timestamp", t)));
        let (status, resp) = post(&app, "seed-pub", &headers, &body).await;
        assert_eq!(
            (status, resp["code"].as_str()),
            (401, Some(code)),
            "{case}: {resp}"
        );
    }
    // The body is what is signed: the same signature over another body fails.
    let headers = [
        ("X-Webhook-Signature", good.as_str()),
        ("X-Webhook-Timestamp", d.timestamp.as_str()),
    ];
    let (status, resp) = post(&app, "seed-pub", &headers, &order("100")).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    assert!(
        app.stream_messages().await.is_empty(),
        "a refused request was stored"
    );

    // A proven sender whose id cannot be an idempotency key is told so.
    let long_id = "x".repeat(256);
    let headers = [
        ("X-Webhook-Signature", good.as_str()),
        ("X-Webhook-Timestamp", d.timestamp.as_str()),
        ("X-Webhook-Id", long_id.as_str()),
    ];
    let (status, resp) = post(&app, "seed-pub", &headers, &body).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("invalid_idempotency_key")),
        "{resp}"
    );
    let failures = app.metrics().await;
    assert!(
        failures.contains(
            r#"gateway_auth_failures_total{reason="stale_timestamp",source="seed-pub"} 1"#
        ),
        "{failures}"
    );
}

#[actix_rt::test]
async fn a_key_past_its_not_after_is_refused_and_the_new_one_verifies() {
    let app = spawn_app(options()).await;
    let body = order("2");
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).to_string();
    let signed_by = |secret: &str| {
        let signature = body::sign(secret.as_bytes(), body.as_bytes());
        let app = &app;
        let (body, now_ms) = (&body, &now_ms);
        async move {
            let headers = [
                ("X-Webhook-Signature", signature.as_str()),
                ("X-Webhook-Timestamp", now_ms.as_str()),
            ];
            post(app, "rotating", &headers, body).await
        }
    };
    let (status, resp) = signed_by(OLD).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (401, Some("key_expired")),
        "{resp}"
    );
    assert!(
        resp["message"].as_str().unwrap().contains("'old'"),
        "{resp}"
    );
    let (status, resp) = signed_by(NEW).await;
    assert_eq!(status, 202, "{resp}");

    let raws = app.messages_on("signals.raw").await;
    assert_eq!(raws.len(), 1);
    assert_eq!(raws[0].json["key_id"], "new");
    // No id header sent: the body hash is the key, for content_dedupe_sec.
    assert!(raws[0].json["idempotency_key"]
        .as_str()
        .unwrap()
        .starts_with("rotating:b:"));
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"gateway_auth_key_used_total{key_id="new",source="rotating"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"key_id="old""#), "{metrics}");
}

#[actix_rt::test]
async fn an_hmac_sha256_source_still_refuses_body_only_signatures() {
    let app = spawn_app(options()).await;
    let body = order("5");
    let body_only = body::sign(HMAC_SECRET.as_bytes(), body.as_bytes());
    let d = SeedPublisher::delivery(&body);
    // The seed publisher's own headers: alpha reads X-Signature only.
    let seed_headers = [
        ("X-Webhook-Signature", body_only.as_str()),
        ("X-Webhook-Id", d.id.as_str()),
        ("X-Webhook-Timestamp", d.timestamp.as_str()),
    ];
    let (status, resp) = post(&app, "alpha", &seed_headers, &body).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (401, Some("missing_signature"))
    );
    // A body-only MAC in alpha's own header is not timestamp.nonce.body.
    let signed = sign(&body);
    let (status, resp) = app
        .signed(&signed)
        .header("X-Signature", &body_only)
        .answer()
        .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    assert!(app.stream_messages().await.is_empty());
}
