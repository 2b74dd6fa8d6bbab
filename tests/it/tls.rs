//! HTTPS served by the gateway itself, and TradingView's client certificate
//! as a second factor beside the token: self-signed CAs for both sides.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::json;

/// A CA that can issue certificates.
struct Ca {
    cert: Certificate,
    key: KeyPair,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        cert,
        key,
    }
}

/// A certificate issued by `ca`: (certificate PEM, key PEM).
fn issue(ca: &Ca, names: &[&str], subject: &[(DnType, &str)], client: bool) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    for (ty, value) in subject {
        params.distinguished_name.push(ty.clone(), *value);
    }
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The gateway's server certificate for `names`, issued by `ca`.
fn gateway_cert(ca: &Ca, names: &[&str]) -> (String, String) {
    issue(ca, names, &[(DnType::CommonName, "gateway")], false)
}

fn tradingview_cert(ca: &Ca, common_name: &str) -> (String, String) {
    issue(
        ca,
        &[],
        &[
            (DnType::CommonName, common_name),
            (DnType::OrganizationName, "TradingView, Inc."),
        ],
        true,
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// An HTTPS client trusting `server_ca`, presenting `identity` if given.
fn client(server_ca: &str, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(server_ca.as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The TLS settings, with the files written to `dir`.
fn tls_env(
    dir: &Path,
    addr: String,
    cert: &str,
    key: &str,
    client_ca: &Ca,
) -> Vec<(&'static str, String)> {
    let file = |name: &str, text: &str| write(dir, name, text).display().to_string();
    vec![
        ("TLS_ADDR", addr),
        ("TLS_CERT_FILE", file("server.pem", cert)),
        ("TLS_KEY_FILE", file("server.key", key)),
        ("TLS_CLIENT_CA_FILE", file("clients.pem", &client_ca.pem)),
    ]
}

struct Setup {
    app: TestApp,
    _dir: tempfile::TempDir,
    server_ca: Ca,
    client_ca: Ca,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("gateway test server CA");
    let client_ca = ca("TradingView test client CA");
    let (cert, key) = gateway_cert(&server_ca, &["localhost", "127.0.0.1"]);
    let env = tls_env(dir.path(), "127.0.0.1:0".into(), &cert, &key, &client_ca);
    let app = spawn_app(AppOptions {
        env,
        config: "[sources.tradingview]\nclient_cert = { common_name = \"TradingView Webhooks\", organization = \"TradingView, Inc.\" }\n".into(),
        ..Default::default()
    })
    .await;
    Setup {
        app,
        _dir: dir,
        server_ca,
        client_ca,
    }
}

fn alert() -> serde_json::Value {
    json!({"passphrase": TV_TOKEN, "ticker": "BTCUSDT", "action": "buy", "qty": 1})
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> reqwest::Result<(u16, serde_json::Value)> {
    let resp = client.post(url).json(body).send().await?;
    Ok(json_body(resp).await)
}

#[actix_rt::test]
async fn tradingview_over_https_needs_its_client_certificate_beside_the_token() {
    let s = setup().await;
    let https = s.app.tls_base.clone().expect("HTTPS listener");
    let url = format!("{https}/webhooks/tradingview");

    let tv = client(
        &s.server_ca.pem,
        Some(&tradingview_cert(&s.client_ca, "TradingView Webhooks")),
    );
    let (status, body) = post(&tv, &url, &alert()).await.unwrap();
    assert_eq!(status, 202, "{body}");
    // The certificate is a second factor, not a replacement for the token.
    let mut forged = alert();
    forged["passphrase"] = json!("wrong-token-0123456789");
    assert_eq!(post(&tv, &url, &forged).await.unwrap().0, 401);

    let no_cert = client(&s.server_ca.pem, None);
    let (status, body) = post(&no_cert, &url, &alert()).await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("client_certificate_required"))
    );
    let (status, body) = answer(
        s.app
            .http
            .post(s.app.url("/webhooks/tradingview"))
            .json(&alert()),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("client_certificate_required")),
        "plain HTTP"
    );

    let impostor = client(
        &s.server_ca.pem,
        Some(&tradingview_cert(&s.client_ca, "Not TradingView")),
    );
    let (status, body) = post(&impostor, &url, &alert()).await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("client_certificate_mismatch"))
    );

    // Right subject, wrong issuer: refused in the handshake.
    let rogue = client(
        &s.server_ca.pem,
        Some(&tradingview_cert(&ca("rogue CA"), "TradingView Webhooks")),
    );
    assert!(post(&rogue, &url, &alert()).await.is_err());

    // Sources without the rule are served over HTTPS without a certificate.
    let signed = sign(r#"{"symbol":"ETHUSDT","action":"sell"}"#);
    let resp = SignedRequest::new(&no_cert, &https, &signed).send().await;
    assert_eq!(resp.status(), 202);

    let symbols: Vec<String> = s
        .app
        .messages_on("signals.normalized")
        .await
        .iter()
        .map(|m| m.json["instrument"]["symbol"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(symbols, ["BTCUSDT", "ETHUSDT"]);
}

/// Waits until the gateway process has logged `needle` `count` times.
async fn wait_for_log(gateway: &GatewayProcess, needle: &str, count: usize) {
    for _ in 0..200 {
        if gateway.logs().matches(needle).count() >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "never logged {needle:?} {count} time(s):\n{}",
        gateway.logs()
    );
}

#[actix_rt::test]
async fn a_renewed_certificate_is_served_after_sighup() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let old_ca = ca("server CA");
    let client_ca = ca("client CA");
    let (cert, key) = gateway_cert(&old_ca, &["127.0.0.1"]);
    let tls_port = free_port();
    let gateway = GatewayProcess::start(
        &nats.url(),
        &AppOptions {
            env: tls_env(
                dir.path(),
                format!("127.0.0.1:{tls_port}"),
                &cert,
                &key,
                &client_ca,
            ),
            ..Default::default()
        },
    )
    .await;
    let url = format!("https://127.0.0.1:{tls_port}/webhooks/tradingview");
    let tv_cert = tradingview_cert(&client_ca, "TradingView Webhooks");
    let trusts_old = client(&old_ca.pem, Some(&tv_cert));
    assert_eq!(post(&trusts_old, &url, &alert()).await.unwrap().0, 202);

    let new_ca = ca("renewed server CA");
    let (cert, key) = gateway_cert(&new_ca, &["127.0.0.1"]);
    let trusts_new = client(&new_ca.pem, Some(&tv_cert));
    assert!(
        post(&trusts_new, &url, &alert()).await.is_err(),
        "the old certificate is served"
    );

    // Half-way through a renewal (new certificate, old key) the pair is
    // refused and the current certificate stays.
    write(dir.path(), "server.pem", &cert);
    gateway.signal("-HUP");
    wait_for_log(&gateway, "TLS certificate reload refused", 1).await;
    let mut second = alert();
    second["ticker"] = json!("ETHUSDT");
    assert_eq!(
        post(&client(&old_ca.pem, Some(&tv_cert)), &url, &second)
            .await
            .unwrap()
            .0,
        202
    );

    write(dir.path(), "server.key", &key);
    gateway.signal("-HUP");
    wait_for_log(&gateway, "TLS certificate reloaded", 1).await;
    let mut third = alert();
    third["ticker"] = json!("SOLUSDT");
    assert_eq!(post(&trusts_new, &url, &third).await.unwrap().0, 202);
    assert!(
        post(&client(&old_ca.pem, Some(&tv_cert)), &url, &alert())
            .await
            .is_err(),
        "new connections get the renewed certificate"
    );
    record_artifact("logs", &gateway.logs());
}
