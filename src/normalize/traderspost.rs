//! TradersPost signals (docs.traderspost.io, "Signal Message Reference"
//! and "TradingView").
//!
//! `ticker`, `action` (`buy`, `sell`, `exit`, `cancel`, `add`),
//! `sentiment` (the position *after* the trade: `bullish`/`long`,
//! `bearish`/`short`, `flat`), `quantity` with `quantityType`
//! (`fixed_quantity`, `dollar_amount`, `risk_dollar_amount`,
//! `risk_percent`, `percent_of_equity`, `percent_of_position`),
//! `orderType`, `limitPrice`, `stopPrice`, `stopLoss`/`takeProfit` objects
//! (`limitPrice`/`stopPrice` absolute, `percent`, `amount` a price offset).
//! `price`/`signalPrice` is the alert-time price, not an order price; it
//! stays in `extra`. The credential is in the webhook URL, not the body.
//!
//! `sell` with sentiment `flat` "will exit a bullish position without
//! entering a bearish position", for the whole position whatever quantity
//! is sent: `close_long` without a size. Refused (422): `add` without a
//! sentiment (no side), `exit` with a sentiment (TradersPost's own
//! `invalid-sentiment-action`), trailing stops.

use serde_json::{Map, Value};

use super::fields::text;
use super::formats::{Input, Read};
use super::template::{object, Field, Fields};
use crate::sources::MappingSettings;

/// Keys only TradersPost uses, beside `ticker` and `action`.
const MARKERS: &[&str] = &[
    "sentiment",
    "quantityType",
    "orderType",
    "limitPrice",
    "stopPrice",
    "signalPrice",
    "stopLoss",
    "takeProfit",
    "timeInForce",
    "extendedHours",
    "cancelOrderType",
];

pub fn detect(input: &Input) -> bool {
    input.object().is_some_and(|o| {
        o.contains_key("ticker")
            && o.contains_key("action")
            && (MARKERS.iter().any(|k| o.contains_key(*k))
                || matches!(
                    o.get("action").and_then(Value::as_str),
                    Some("add" | "exit")
                ))
    })
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let mut obj = object(input)?;
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    let action = obj
        .shift_remove("action")
        .as_ref()
        .and_then(text)
        .unwrap_or_default();
    let sentiment = obj.shift_remove("sentiment").as_ref().and_then(text);
    let side = sentiment.as_deref().map(|s| match s {
        "bullish" | "long" => "long",
        "bearish" | "short" => "short",
        "flat" => "flat",
        _ => "?",
    });
    let mut whole_position = false;
    let canonical = match (action.as_str(), side) {
        (_, Some("?")) => {
            reasons.push(format!(
                "TradersPost sentiment {:?} is not bullish, bearish or flat",
                sentiment.clone().unwrap_or_default()
            ));
            None
        }
        ("buy", None | Some("long")) => Some("buy"),
        ("buy", Some("short")) => Some("close_short"),
        ("buy", Some(_)) => {
            whole_position = true;
            Some("close_short")
        }
        ("sell", None | Some("short")) => Some("sell"),
        ("sell", Some("long")) => Some("close_long"),
        ("sell", Some(_)) => {
            whole_position = true;
            Some("close_long")
        }
        ("exit", None) => Some("close"),
        ("exit", Some(_)) => {
            reasons.push(
                "TradersPost action exit cannot carry a sentiment (invalid-sentiment-action)"
                    .into(),
            );
            None
        }
        ("cancel", _) => Some("cancel"),
        ("add", Some("long")) => Some("buy"),
        ("add", Some("short")) => Some("sell"),
        ("add", _) => {
            reasons.push(
                "TradersPost action add adds to the open position whichever side it is; the \
                 message does not say long or short (send sentiment)"
                    .into(),
            );
            None
        }
        (other, _) => {
            reasons.push(format!(
                "TradersPost action {other:?} is not buy, sell, exit, cancel or add"
            ));
            None
        }
    };
    if let Some(a) = canonical {
        f.set_str(Field::Action, "action", a);
    }
    if let Some(s) = sentiment {
        obj.insert("sentiment".into(), Value::String(s));
    }

    let quantity_type = obj.shift_remove("quantityType").as_ref().and_then(text);
    if whole_position {
        // Documented: a sell (buy) to flat exits the whole position.
        if let Some(q) = obj.shift_remove("quantity") {
            obj.insert("quantity_ignored".into(), q);
        }
    } else if obj.get("quantity").and_then(text).is_some() {
        let unit = match quantity_type.as_deref().unwrap_or("fixed_quantity") {
            "fixed_quantity" => Some(("units", None)),
            "dollar_amount" => Some(("quote", Some("USD"))),
            "risk_dollar_amount" => Some(("risk_quote", Some("USD"))),
            "risk_percent" => Some(("risk_percent", None)),
            "percent_of_equity" => Some(("percent_of_equity", None)),
            "percent_of_position" => Some(("percent_of_position", None)),
            other => {
                reasons.push(format!(
                    "TradersPost quantityType {other:?} is not documented"
                ));
                None
            }
        };
        if let Some((unit, currency)) = unit {
            f.take(Field::Quantity, &mut obj, "quantity");
            f.set_str(Field::SizeUnit, "quantityType", unit);
            if let Some(c) = currency {
                f.set_str(Field::Currency, "quantityType", c);
            }
        }
    }
    f.take(Field::Symbol, &mut obj, "ticker");
    f.take(Field::OrderType, &mut obj, "orderType");
    if !f.take(Field::Price, &mut obj, "limitPrice") {
        f.take(Field::Price, &mut obj, "stopPrice");
    }
    f.take(Field::AssertedAt, &mut obj, "time");
    f.take(Field::Interval, &mut obj, "interval");
    for (key, field, unit) in [
        ("takeProfit", Field::TakeProfit, Field::TakeProfitUnit),
        ("stopLoss", Field::StopLoss, Field::StopLossUnit),
    ] {
        if let Some(Value::Object(level)) = obj.shift_remove(key) {
            read_level(key, level, &mut f, field, unit, &mut reasons);
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = obj;
    Ok(f)
}

/// One of `limitPrice`/`stopPrice` (a price), `percent`, or `amount` (a
/// price offset from the entry: 18500 + 100 → 18600, in the instrument's
/// price units, so `points`).
fn read_level(
    key: &str,
    level: Map<String, Value>,
    f: &mut Fields,
    field: Field,
    unit: Field,
    reasons: &mut Vec<String>,
) {
    if level
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t == "trailing_stop")
        || level.contains_key("trailAmount")
        || level.contains_key("trailPercent")
    {
        reasons.push(format!(
            "TradersPost {key} is a trailing stop; a signal's level is fixed"
        ));
        return;
    }
    let forms: Vec<(&str, &str)> = [
        ("stopPrice", "price"),
        ("limitPrice", "price"),
        ("percent", "percent"),
        ("amount", "points"),
    ]
    .into_iter()
    .filter(|(k, _)| level.get(*k).and_then(text).is_some())
    .collect();
    match forms.as_slice() {
        [] => {}
        [(k, u)] | [(k @ "stopPrice", u), (_, "price")] => {
            if let Some(v) = level.get(*k).and_then(text) {
                f.set_str(field, format!("{key}.{k}"), &v);
                f.set_str(unit, format!("{key}.{k}"), u);
            }
        }
        many => reasons.push(format!(
            "TradersPost {key} gives {} levels at once ({}); one is expected",
            many.len(),
            many.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
        )),
    }
}
