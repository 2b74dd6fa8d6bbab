//! PickMyTrade alerts (pickmytrade.io/pages/alert.html "Alert Format
//! Explanation"; docs.pickmytrade.io, Rithmic JSON configuration).
//!
//! `symbol`, `date` (`{{timenow}}`), `data` (`buy`, `sell`, `close`: "Buy
//! and Sell would open new position", "Close would close open position and
//! cancel open orders as well"), `quantity` ("absolute no of contract"),
//! `risk_percentage` (size from account value and stop loss; quantity is
//! then 0), `price`, `tp`/`sl` (price levels), `dollar_tp`/`dollar_sl`
//! (currency amounts), `order_type` (`MKT`, `LMT`, …), `token` (the
//! credential, redacted), `multiple_accounts` (per-account tokens and
//! sizes). Fields a template sets to 0 are unused.
//!
//! Refused (422): both a quantity and a risk percentage; per-account sizes
//! in `multiple_accounts` (one signal carries one size); `percentage_tp`,
//! `percentage_sl` and trailing stops, whose base the documentation does
//! not define; several stop or target forms at once.

use serde_json::Value;

use super::fields::text;
use super::formats::{Input, Read};
use super::template::{object, Field, Fields};
use crate::sources::MappingSettings;

/// `data` as the action, beside keys only PickMyTrade uses.
pub fn detect(input: &Input) -> bool {
    input.object().is_some_and(|o| {
        o.contains_key("data")
            && o.contains_key("symbol")
            && [
                "risk_percentage",
                "multiple_accounts",
                "reverse_order_close",
                "duplicate_position_allow",
                "dollar_tp",
                "percentage_tp",
                "quantity_multiplier",
            ]
            .iter()
            .any(|k| o.contains_key(*k))
    })
}

/// The value as text when it is set: not null, empty, or zero.
fn set(v: Option<&Value>) -> Option<String> {
    let t = text(v?)?;
    let zero = t.trim_start_matches(['0', '.']).is_empty();
    (!zero).then_some(t)
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let mut obj = object(input)?;
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    match obj
        .shift_remove("data")
        .as_ref()
        .and_then(text)
        .map(|s| s.to_ascii_lowercase())
    {
        Some(a) if ["buy", "sell", "close"].contains(&a.as_str()) => {
            f.set_str(Field::Action, "data", &a)
        }
        other => reasons.push(format!(
            "PickMyTrade data {other:?} is not buy, sell or close"
        )),
    }
    let quantity = set(obj.get("quantity"));
    let risk = set(obj.get("risk_percentage"));
    match (quantity, risk) {
        (Some(_), Some(_)) => reasons.push(
            "PickMyTrade alert gives both a quantity and a risk_percentage; the size is ambiguous"
                .into(),
        ),
        (Some(q), None) => {
            f.set_str(Field::Quantity, "quantity", &q);
            f.set_str(Field::SizeUnit, "quantity", "contracts");
        }
        (None, Some(r)) => {
            f.set_str(Field::Quantity, "risk_percentage", &r);
            f.set_str(Field::SizeUnit, "risk_percentage", "risk_percent");
        }
        (None, None) => {}
    }
    obj.shift_remove("quantity");
    obj.shift_remove("risk_percentage");
    if let Some(Value::Array(accounts)) = obj.get("multiple_accounts") {
        let sized = accounts.iter().any(|a| {
            set(a.get("risk_percentage")).is_some()
                || a.get("quantity_multiplier")
                    .and_then(text)
                    .is_some_and(|m| m != "1")
        });
        if sized {
            reasons.push(
                "PickMyTrade multiple_accounts sets per-account sizes (risk_percentage, \
                 quantity_multiplier); one signal carries one size"
                    .into(),
            );
        }
    }
    for key in [
        "percentage_tp",
        "percentage_sl",
        "trail",
        "trail_stop",
        "trail_trigger",
    ] {
        if let Some(v) = set(obj.get(key)) {
            reasons.push(format!(
                "PickMyTrade {key}={v}: its base is not defined by the documentation, so it \
                 cannot be published as a level"
            ));
        }
    }
    for (field, unit, price_key, dollar_key) in [
        (Field::TakeProfit, Field::TakeProfitUnit, "tp", "dollar_tp"),
        (Field::StopLoss, Field::StopLossUnit, "sl", "dollar_sl"),
    ] {
        match (set(obj.get(price_key)), set(obj.get(dollar_key))) {
            (Some(_), Some(_)) => reasons.push(format!(
                "PickMyTrade sets both {price_key} and {dollar_key}; the level is ambiguous"
            )),
            (Some(p), None) => f.set_str(field, price_key, &p),
            (None, Some(d)) => {
                f.set_str(field, dollar_key, &d);
                f.set_str(unit, dollar_key, "quote");
            }
            (None, None) => {}
        }
        obj.shift_remove(price_key);
        obj.shift_remove(dollar_key);
    }
    f.take_each(
        &mut obj,
        &[
            (Field::Symbol, "symbol"),
            (Field::Price, "price"),
            (Field::OrderType, "order_type"),
            (Field::AssertedAt, "date"),
        ],
    );
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = obj;
    Ok(f)
}
