//! The binary itself: configuration errors stop start-up naming the
//! setting, and `check-config` prints settings without secrets.

use std::process::Command;

fn gateway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_at-gateway"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TRADINGVIEW_TOKEN", "tv-token-SECRET-0123456789")
        .env("API_KEY_HMAC_SECRET", "hmac-SECRET-0123456789")
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
    assert!(stdout.contains("configuration OK"));
    assert!(stdout.contains("alpha"));
    assert!(!stdout.contains("SECRET"), "{stdout}");
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
