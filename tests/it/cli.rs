//! The binary itself: configuration errors stop start-up naming the
//! setting, and `check-config` prints the effective settings as TOML
//! without secrets, which loads back to the same settings.

use std::path::Path;
use std::process::Command;

use crate::common::{record_artifact, HMAC_SECRET, TV_TOKEN};

/// What [`gateway`] configures; no output may contain either.
const SECRETS: [&str; 2] = ["tv-token-SECRET-0123456789", "hmac-SECRET-0123456789"];

fn gateway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_at-gateway"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TRADINGVIEW_TOKEN", SECRETS[0])
        .env("API_KEY_HMAC_SECRET", SECRETS[1])
        .env("ALLOWED_SOURCES", "tradingview,alpha");
    cmd
}

#[test]
fn a_bad_setting_stops_start_up_and_names_it() {
    let out = gateway().env("RATE_LIMIT_RPS", "lots").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RATE_LIMIT_RPS"), "{stderr}");

    let out = gateway().env_remove("TRADINGVIEW_TOKEN").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TRADINGVIEW_TOKEN"));

    let out = gateway()
        .args(["--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}

#[test]
fn check_config_prints_effective_settings_with_secrets_redacted() {
    let out = gateway().arg("check-config").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("# configuration OK\n"), "{stdout}");
    for secret in SECRETS {
        assert!(!stdout.contains(secret), "{stdout}");
    }
    let doc: toml::Table = toml::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    let alpha = &doc["sources"]["alpha"];
    assert_eq!(alpha["secrets"][0]["secret"].as_str(), Some("[redacted]"));
    assert_eq!(
        doc["sources"]["tradingview"]["token"].as_str(),
        Some("[redacted]")
    );
}

/// Sources of every shape: HMAC keys in rotation, a Standard Webhooks
/// secret, a body-hmac sender with its own headers, a mapping under a dotted name, two TradingView tokens (one from
/// TRADINGVIEW_TOKEN), and a secret from API_KEY_HMAC_SECRET.
const ROUND_TRIP_CONFIG: &str = r#"
allowed_sources = ["tradingview", "alpha", "hooks", "vendor.x", "swing", "github"]
trusted_proxies = ["10.0.0.0/8", "192.0.2.7"]
[nats]
normalized_schema = "v1"
[nats.formats]
normalized = "cloudevents-binary"
[stores]
backend = "memory"
[tls]
addr = "127.0.0.1:8443"
cert_file = "/etc/gw/cert.pem"
key_file = "/etc/gw/key.pem"
client_ca_file = "/etc/gw/ca.pem"

[sources.alpha]
kind = "custom"
secrets = [
  { id = "2026-05", secret = "old-secret-Vb6Tn1Qx8Lr3Zk5", not_after = "2026-06-01T00:00:00Z" },
  { id = "2026-11", secret = "new-secret-Hy4Wp9Ds2Mf7Jc0" },
]
rate_limit_rps = 20
priority = "high"
format = "binance"
redact_fields = ["desk_pin"]
content_dedupe_sec = 30

[sources.hooks]
scheme = "standard-webhooks"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
tolerance_sec = 120

[sources.github]
scheme = "body-hmac"
secret = "gh-hook-Lp5Zq9Cw3Mv7Ds2"
signature_header = "X-Hub-Signature-256"
id_header = "X-GitHub-Delivery"
timestamp_header = ""

[sources."vendor.x"]
allowed_ips = ["203.0.113.0/24"]
[sources."vendor.x".mapping]
symbol = "/instrument/ticker"
action = "/signal/direction"
action_values = { LONG_ENTRY = "buy", "long exit" = "close_long" }
size = "/sizing/value"
size_unit = "percent_of_equity"

[sources.swing]
kind = "tradingview"
token = "swing-token-Hq2Wd8Rk5Lp3"
ack_wait_ms = 2000
client_cert = { common_name = "TradingView Webhooks", organization = "TradingView, Inc." }
"#;

/// Every secret of the run above: source, key id (`None`: the token),
/// secret. All are in tests/known-secrets.txt, so the suite's secret scan
/// covers the printouts recorded below.
const ROUND_TRIP_SECRETS: &[(&str, Option<&str>, &str)] = &[
    ("alpha", Some("2026-05"), "old-secret-Vb6Tn1Qx8Lr3Zk5"),
    ("alpha", Some("2026-11"), "new-secret-Hy4Wp9Ds2Mf7Jc0"),
    (
        "hooks",
        Some("default"),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    ("github", Some("default"), "gh-hook-Lp5Zq9Cw3Mv7Ds2"),
    ("vendor.x", Some("default"), HMAC_SECRET),
    ("swing", None, "swing-token-Hq2Wd8Rk5Lp3"),
    ("tradingview", None, TV_TOKEN),
];

/// `check-config --config FILE` with only `env` set: exit code and stdout.
fn check_config(config: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_at-gateway"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    record_artifact("cli", &format!("{stdout}\n{stderr}"));
    (out.status.code(), stdout)
}

#[test]
fn check_config_output_with_its_secrets_put_back_loads_to_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.toml");
    std::fs::write(&first, ROUND_TRIP_CONFIG).unwrap();
    let env = [
        ("TRADINGVIEW_TOKEN", TV_TOKEN),
        ("API_KEY_HMAC_SECRET", HMAC_SECRET),
    ];
    let (code, printed) = check_config(&first, &env);
    assert_eq!(code, Some(0), "{printed}");
    for (_, _, secret) in ROUND_TRIP_SECRETS {
        assert!(!printed.contains(secret), "{printed}");
    }

    // As printed, the placeholders are refused rather than served.
    let as_printed = dir.path().join("as-printed.toml");
    std::fs::write(&as_printed, &printed).unwrap();
    assert_eq!(check_config(&as_printed, &[]).0, Some(2));

    let mut doc: toml::Table =
        toml::from_str(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    for (source, key_id, secret) in ROUND_TRIP_SECRETS {
        let source = doc["sources"][*source].as_table_mut().unwrap();
        let slot = match key_id {
            None => &mut source["token"],
            Some(id) => {
                let keys = source["secrets"].as_array_mut().unwrap();
                let key = keys.iter_mut().find(|k| k["id"].as_str() == Some(id));
                &mut key.unwrap()["secret"]
            }
        };
        assert_eq!(slot.as_str(), Some("[redacted]"));
        *slot = toml::Value::from(*secret);
    }
    let restored = toml::to_string(&doc).unwrap();
    assert!(
        !restored.contains("[redacted]"),
        "a secret was not put back"
    );
    let second = dir.path().join("second.toml");
    std::fs::write(&second, restored).unwrap();

    // No environment this time: everything comes from the printed file.
    let (code, printed_again) = check_config(&second, &[]);
    assert_eq!(code, Some(0), "{printed_again}");
    assert_eq!(printed_again, printed);
}

#[test]
fn an_address_in_use_fails_with_a_message_naming_http_addr() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = gateway()
        .env("HTTP_ADDR", &addr)
        .env("NATS_URL", "nats://127.0.0.1:1")
        .env("LOG_LEVEL", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP_ADDR"));
}

#[test]
fn check_config_reports_every_problem_at_once() {
    let out = gateway()
        .arg("check-config")
        .env("HTTP_ADDR", "nowhere")
        .env("LOG_LEVEL", "chatty[")
        .env("TRUSTED_PROXIES", "10.0.0.0/99")
        .env("ALLOWED_SOURCES", "tradingview,alpha,bad name")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("4 problems"), "{stderr}");
    for setting in ["HTTP_ADDR", "LOG_LEVEL", "TRUSTED_PROXIES", "'bad name'"] {
        assert!(stderr.contains(setting), "{setting} not named: {stderr}");
    }
    assert!(!stderr.contains("SECRET"), "{stderr}");
}
