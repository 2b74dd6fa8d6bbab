//! Exchange webhook bots (Binance and Bybit TradingView signal trading).
//!
//! Their own documentation pages were not reachable from this project's
//! machines; the format follows the project's issue, which was measured
//! against the platforms' templates: `side` such as `OpenLong`,
//! `OpenShort`, `CloseLong`, `CloseShort`, `Buy`, `Sell`; sizes written
//! `@0.006` (units) or `%100` (a percent: of the position when closing, of
//! the balance when opening); `leverage`; the order's fields at the top
//! level or nested under `order`. The tests use templates written from
//! that description, and say so.
//!
//! Refused (422): a bare number as a size (neither `@` nor `%` says its
//! unit) and a side this adapter does not know.

use serde_json::{Map, Value};

use super::fields::text;
use super::formats::{Input, Read};
use super::template::{object, Field, Fields};
use crate::sources::MappingSettings;

const SIDES: &[(&str, &str)] = &[
    ("openlong", "buy"),
    ("openshort", "sell"),
    ("closelong", "close_long"),
    ("closeshort", "close_short"),
    ("buy", "buy"),
    ("sell", "sell"),
];

const SIZE_KEYS: &[&str] = &["qty", "quantity", "size", "amount"];

/// The order object: `order` if nested, else the body itself.
fn order(o: &Map<String, Value>) -> &Map<String, Value> {
    o.get("order").and_then(Value::as_object).unwrap_or(o)
}

fn is_marked_size(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.trim_start().starts_with(['@', '%']))
}

/// A side of the exchange bots' own vocabulary (`OpenLong`, …), or a size
/// written `@…`/`%…`.
pub fn detect(input: &Input) -> bool {
    input.object().is_some_and(|o| {
        let ord = order(o);
        let side = ord
            .get("side")
            .and_then(Value::as_str)
            .map(super::fields::squash);
        side.is_some_and(|s| SIDES[..4].iter().any(|(k, _)| *k == s))
            || SIZE_KEYS
                .iter()
                .any(|k| ord.get(*k).is_some_and(is_marked_size))
    })
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let mut obj = object(input)?;
    let mut ord = match obj.shift_remove("order") {
        Some(Value::Object(o)) => o,
        Some(other) => {
            obj.insert("order".into(), other);
            std::mem::take(&mut obj)
        }
        None => std::mem::take(&mut obj),
    };
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    let side = ord
        .shift_remove("side")
        .as_ref()
        .and_then(text)
        .unwrap_or_default();
    let action = SIDES
        .iter()
        .find(|(k, _)| *k == super::fields::squash(&side))
        .map(|(_, a)| *a);
    match action {
        Some(a) => f.set_str(Field::Action, "side", a),
        None => reasons.push(format!(
            "side {side:?} is not OpenLong, OpenShort, CloseLong, CloseShort, Buy or Sell"
        )),
    }
    let closing = action.is_some_and(|a| a.starts_with("close"));
    if let Some(key) = SIZE_KEYS.iter().find(|k| ord.contains_key(**k)) {
        let raw = ord.get(*key).and_then(text).unwrap_or_default();
        let raw = raw.trim();
        if let Some(v) = raw.strip_prefix('@') {
            f.set_str(Field::Quantity, *key, v.trim());
            f.set_str(Field::SizeUnit, *key, "units");
        } else if let Some(v) = raw.strip_prefix('%') {
            f.set_str(Field::Quantity, *key, v.trim());
            let unit = if closing {
                "percent_of_position"
            } else {
                "percent_of_balance"
            };
            f.set_str(Field::SizeUnit, *key, unit);
        } else if !raw.is_empty() {
            reasons.push(format!(
                "{key} {raw:?} does not say its unit: write @{raw} for units or %{raw} for a percent"
            ));
        }
        ord.shift_remove(*key);
    }
    for (field, key) in [
        (Field::Symbol, "symbol"),
        (Field::Leverage, "leverage"),
        (Field::OrderType, "type"),
        (Field::OrderType, "orderType"),
        (Field::Price, "price"),
        (Field::StopLoss, "stopLoss"),
        (Field::TakeProfit, "takeProfit"),
    ] {
        if !f.is_set(field) {
            f.take(field, &mut ord, key);
        }
    }
    for (field, key) in [(Field::Symbol, "symbol"), (Field::Leverage, "leverage")] {
        if !f.is_set(field) {
            f.take(field, &mut obj, key);
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    if !ord.is_empty() && !obj.is_empty() {
        obj.insert("order".into(), Value::Object(ord));
    } else if obj.is_empty() {
        obj = ord;
    }
    f.extra = obj;
    Ok(f)
}

#[cfg(test)]
mod tests {
    //! Templates written from the issue's description of these bots (their
    //! documentation was not reachable from here), not copied from it.

    use crate::normalize::{read as normalize, Options};
    use crate::records::Meta;
    use crate::sources::SourceKind;
    use bytes::Bytes;

    fn signal(body: &str) -> serde_json::Value {
        let meta = Meta {
            event_id: "e".into(),
            corr_id: "c".into(),
            source: "s".into(),
            source_kind: SourceKind::Tradingview,
            received_at: "2026-12-03T00:00:00Z".into(),
        };
        let n = normalize(
            Options::defaults(SourceKind::Tradingview),
            &Bytes::copy_from_slice(body.as_bytes()),
            serde_json::from_str(body).ok(),
        );
        assert_eq!(n.format, "exchange_bot");
        match n.stamp(&meta).1 {
            Ok(s) => serde_json::to_value(s).unwrap(),
            Err(r) => serde_json::json!({ "refused": r }),
        }
    }

    #[test]
    fn sides_and_marked_sizes() {
        let s = signal(r#"{"symbol":"BTCUSDT","side":"OpenLong","qty":"@0.006","leverage":"10"}"#);
        assert_eq!(s["action"], "buy");
        assert_eq!(s["size"]["value"], "0.006");
        assert_eq!(s["size"]["unit"], "units");
        assert_eq!(s["leverage"], "10");
        let s = signal(r#"{"order":{"symbol":"ETHUSDT","side":"CloseShort","qty":"%100"}}"#);
        assert_eq!(s["action"], "close_short");
        assert_eq!(s["instrument"]["symbol"], "ETHUSDT");
        assert_eq!(s["size"]["unit"], "percent_of_position");
        let s = signal(r#"{"symbol":"ETHUSDT","side":"OpenShort","qty":"%25"}"#);
        assert_eq!(s["action"], "sell");
        assert_eq!(s["size"]["unit"], "percent_of_balance");
    }

    #[test]
    fn a_percent_is_never_a_quantity_and_a_bare_number_is_refused() {
        let s = signal(r#"{"symbol":"BTCUSDT","side":"OpenLong","qty":"5","x":"@1"}"#);
        assert!(
            s["refused"][0]
                .as_str()
                .unwrap()
                .contains("does not say its unit"),
            "{s}"
        );
    }
}
