//! Key rotation: several live secrets per source, each with an optional
//! not-after time, reloaded on SIGHUP without a restart.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const OLD: &str = "old-secret-Vb6Tn1Qx8Lr3Zk5";
const NEW: &str = "new-secret-Hy4Wp9Ds2Mf7Jc0";

fn body(i: usize) -> String {
    format!(r#"{{"symbol":"BTCUSDT","action":"buy","quantity":"{i}"}}"#)
}

fn in_secs(s: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::seconds(s))
        .format(&Rfc3339)
        .unwrap()
}

fn keys_config(keys: &[(&str, &str, Option<String>)]) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|(id, secret, not_after)| match not_after {
            Some(t) => format!(r#"{{ id = "{id}", secret = "{secret}", not_after = "{t}" }}"#),
            None => format!(r#"{{ id = "{id}", secret = "{secret}" }}"#),
        })
        .collect();
    format!("[sources.alpha]\nsecrets = [{}]\n", list.join(", "))
}

#[actix_rt::test]
async fn old_and_new_secrets_both_verify_during_the_overlap_and_the_old_fails_after() {
    let app = spawn_app(AppOptions::with_config(keys_config(&[
        ("k1", OLD, Some(in_secs(3))),
        ("k2", NEW, None),
    ])))
    .await;
    let app = &app;
    let send = |secret: &'static str, i: usize| {
        let s = sign_with(secret, now_secs(), &format!("n-{i}"), &body(i));
        async move { json_body(app.send_signed("alpha", &s).await).await }
    };
    assert_eq!(send(OLD, 1).await.0, 202);
    assert_eq!(send(NEW, 2).await.0, 202);
    let raws = app.messages_on("signals.raw").await;
    assert_eq!(
        (
            raws[0].json["key_id"].as_str(),
            raws[1].json["key_id"].as_str()
        ),
        (Some("k1"), Some("k2"))
    );

    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, resp) = send(OLD, 3).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (401, Some("key_expired")),
        "{resp}"
    );
    assert_eq!(send(NEW, 4).await.0, 202);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"gateway_auth_key_used_total{key_id="k1",source="alpha"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gateway_auth_key_used_total{key_id="k2",source="alpha"} 2"#),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn sighup_reloads_keys_without_a_restart() {
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(
        &nats.url(),
        &AppOptions::with_config(keys_config(&[("k1", OLD, None)])),
    )
    .await;
    let mut i = 0;
    let mut send = |secret: &'static str| {
        i += 1;
        let s = sign_with(secret, now_secs(), &format!("n-{i}"), &body(i));
        let gw = &gw;
        async move { json_body(gw.send_signed("alpha", &s).await).await }
    };
    assert_eq!(send(OLD).await.0, 202);
    assert_eq!(send(NEW).await.0, 401, "the new key is not known yet");

    // A broken configuration is refused; the keys in force stay.
    std::fs::write(gw.config_path(), "[sources.alpha]\nsecrets = 7\n").unwrap();
    gw.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(send(OLD).await.0, 202, "still serving after a bad reload");
    assert!(gw.logs().contains("reload refused"), "{}", gw.logs());

    // The rotation: the new key added, the old one given an end.
    let config = format!(
        "{}\n[nats]\nrequest_ack_wait_ms = 1500\nmessage_window_sec = 4\nprobe_interval_ms = 100\nack_timeout_ms = 1000\n",
        keys_config(&[("k1", OLD, Some(in_secs(3))), ("k2", NEW, None)])
    );
    std::fs::write(gw.config_path(), config).unwrap();
    gw.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(NEW).await.0 != 202 {
        assert!(
            Instant::now() < deadline,
            "the reload never took effect:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        send(OLD).await.0,
        202,
        "the old key still works during the overlap"
    );
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, resp) = send(OLD).await;
    assert_eq!((status, resp["code"].as_str()), (401, Some("key_expired")));
    assert_eq!(send(NEW).await.0, 202);
    let logs = gw.logs();
    assert!(logs.contains("configuration reloaded"));
    assert!(
        logs.contains(r#""key_id":"k2""#),
        "the matching key is logged:\n{logs}"
    );
}

/// The configuration `reloads_under_traffic_never_refuse_a_source_that_stays`
/// writes on its `n`th reload: alpha's key and both sources' rates change
/// every time, so every reload builds new entries and new buckets.
fn churning_config(n: usize) -> String {
    let rate = 1000 - (n % 2);
    format!(
        "[auth_failures]\nburst = 100\n[http]\nworkers = 2\n\
         [sources.alpha]\nrate_limit_rps = {rate}\nrate_limit_burst = {rate}\n\
         secrets = [{{ id = \"k1\", secret = \"{OLD}\" }}, {{ id = \"r{n}\", secret = \"{NEW}\" }}]\n\
         [sources.beta]\nrate_limit_rps = {rate}\nrate_limit_burst = {rate}\n"
    )
}

#[actix_rt::test]
async fn reloads_under_traffic_never_refuse_a_source_that_stays() {
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(&nats.url(), &AppOptions::with_config(churning_config(0))).await;
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Two sources sent to, back to back, while the table is swapped every
    // 20 ms: each answer must be a 202 (no 403 from a half-swapped table,
    // no 429 from a bucket lost in the swap).
    let traffic = |source: &'static str, secret: &'static str| {
        let (gw, stop) = (&gw, &stop);
        async move {
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let s = sign_with(secret, now_secs(), &format!("{source}-{i}"), &body(i));
                let status = gw.send_signed(source, &s).await.status().as_u16();
                *statuses.entry(status).or_default() += 1;
            }
            statuses
        }
    };
    let reloads = async {
        for n in 1..=60 {
            std::fs::write(gw.config_path(), churning_config(n)).unwrap();
            gw.signal("-HUP");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let the last reload be read before the traffic stops.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (alpha, beta, ()) =
        futures_util::join!(traffic("alpha", OLD), traffic("beta", HMAC_SECRET), reloads);
    for (source, statuses) in [("alpha", &alpha), ("beta", &beta)] {
        assert_eq!(
            statuses.keys().copied().collect::<Vec<_>>(),
            vec![202],
            "{source}: {statuses:?}\n{}",
            gw.logs()
        );
    }
    let reloaded = gw.logs().matches("configuration reloaded").count();
    assert!(reloaded >= 10, "only {reloaded} reloads took effect");
}
