//! What `sources add` and `sources rotate` print: the one time a new token
//! or secret is shown, with what its owner needs to use it at once (the
//! webhook URL and, for TradingView, the alert message to paste; for a
//! custom source, a request signed with it).

use std::io::Write;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::write_error;
use crate::cli::check_config::scheme_name;
use crate::cli::sign::{curl_command, signature_headers};
use crate::cli::CliError;
use crate::sources::{CustomScheme, HmacKey, SourceConfig};

/// The body of the signed example request a custom source gets.
const EXAMPLE_BODY: &str = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"0.01"}"#;

/// A new credential in clear: printed once, never stored so.
pub enum Credential {
    Token(SecretString),
    Secret {
        key_id: String,
        secret: SecretString,
    },
}

/// A new credential and where it is used.
pub struct Handover<'a> {
    pub source: &'a SourceConfig,
    pub url: String,
    pub credential: Credential,
    /// The first line: what was done.
    pub headline: String,
    /// `rotate`: until when the previous credentials work.
    pub previous_until: Option<String>,
}

/// The alert message a trader pastes into TradingView for a strategy:
/// TradingView fills in the `{{…}}` placeholders; the generic template
/// reader maps each key (`contracts` is a size in contracts, and with the
/// position after the order a sell to flat is read as `close_long`). The
/// placeholders are quoted so the message stays JSON even where one is not
/// filled in (an indicator alert has no `strategy.*`), and the gateway then
/// answers 422 with the reason instead of a parse error.
pub fn alert_message(token: &str) -> String {
    let message = json!({
        "passphrase": token,
        "ticker": "{{ticker}}",
        "exchange": "{{exchange}}",
        "action": "{{strategy.order.action}}",
        "contracts": "{{strategy.order.contracts}}",
        "position_size": "{{strategy.position_size}}",
        "price": "{{close}}",
        "interval": "{{interval}}",
        "time": "{{timenow}}",
    });
    serde_json::to_string_pretty(&message).unwrap_or_default()
}

impl Handover<'_> {
    pub fn print(&self, json: bool, out: &mut impl Write) -> Result<(), CliError> {
        let name = self.source.id.as_str();
        let mut doc = json!({
            "source": name,
            "kind": self.source.kind.as_str(),
            "url": self.url,
        });
        let mut text = format!("{}\n\n", self.headline);
        text.push_str(&format!("Webhook URL:  {}\n", self.url));
        match &self.credential {
            Credential::Token(token) => {
                let token = token.expose_secret();
                let message = alert_message(token);
                text.push_str(&format!(
                    "Token:        {token}\n\n\
                     The token is shown this once: the registry keeps only its SHA-256 digest.\n\
                     Lost, it is replaced with `at-gateway sources rotate {name}`.\n\n\
                     Alert message for a strategy (TradingView: the alert's Message box; the \
                     webhook URL goes under Notifications → Webhook URL):\n{message}\n"
                ));
                doc["token"] = token.into();
                doc["alert_message"] = message.into();
            }
            Credential::Secret { key_id, secret } => {
                let key = HmacKey {
                    id: key_id.clone(),
                    secret: secret.clone(),
                    not_after: None,
                };
                let body = EXAMPLE_BODY.as_bytes();
                let headers = signature_headers(self.source, &key, body)?;
                let curl = curl_command(&self.url, &headers, body, None)?;
                let scheme = scheme_name(self.source.scheme);
                text.push_str(&format!(
                    "Key id:       {key_id}\n\
                     Secret:       {}\n\n\
                     The secret is shown this once: the registry keeps it sealed with the \
                     registry key.\n\
                     Lost, it is replaced with `at-gateway sources rotate {name}`.\n\n\
                     Signing ({scheme}): {}\n\
                     A request signed now with this secret (the timestamp is checked, the id \
                     is used once):\n{curl}\n",
                    secret.expose_secret(),
                    signing_rule(self.source.scheme),
                ));
                doc["scheme"] = scheme.into();
                doc["key_id"] = key_id.as_str().into();
                doc["secret"] = secret.expose_secret().into();
                doc["example"] = json!({
                    "headers": headers.iter().map(|(n, v)| (n.clone(), Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
                    "body": EXAMPLE_BODY,
                    "curl": curl,
                });
            }
        }
        if let Some(until) = &self.previous_until {
            doc["previous_until"] = until.as_str().into();
        }
        let written = if json {
            writeln!(out, "{doc}")
        } else {
            out.write_all(text.as_bytes())
        };
        written.map_err(write_error)
    }
}

/// One line saying how a request of `scheme` is signed (API_SPEC.md).
fn signing_rule(scheme: CustomScheme) -> &'static str {
    match scheme {
        CustomScheme::HmacSha256 => {
            "X-Signature: sha256=<hex HMAC-SHA256(secret, X-Timestamp + \".\" + X-Nonce + \".\" + body)>, \
             X-Timestamp in Unix seconds, X-Nonce unique per request (API_SPEC.md, \"Signing\")"
        }
        CustomScheme::StandardWebhooks => {
            "webhook-signature: v1,<base64 HMAC-SHA256(base64-decoded secret after whsec_, \
             webhook-id + \".\" + webhook-timestamp + \".\" + body)> (standardwebhooks.com; \
             API_SPEC.md, \"Standard Webhooks\")"
        }
        CustomScheme::BodyHmac => {
            "<signature_header>: sha256=<hex HMAC-SHA256(secret, body)>, with the source's id and \
             timestamp headers, which are not signed (API_SPEC.md, \"Body signatures\"; SECURITY.md)"
        }
    }
}
