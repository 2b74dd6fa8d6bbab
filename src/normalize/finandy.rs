//! Finandy TradingView signals (docs.finandy.com, "Signals TradingView";
//! the message Finandy shows after a webhook is saved, as reproduced in
//! Infinity Algo's Finandy guide).
//!
//! `{"name": …, "secret": …, "side": "buy"|"sell", "symbol": "{{ticker}}"}`,
//! optionally `tp: {orders: [{ofs, price, piece}], update}`. The size is
//! set in the webhook's settings, not in the message, so a Finandy signal
//! has none; `secret` is the webhook's credential (redacted). What `side`
//! does depends on the webhook's "Position side" setting, so `sell` is a
//! sell, not a close.
//!
//! Refused (422): several take-profit orders (a signal carries one level),
//! and sizing or stop objects this adapter does not know.

use serde_json::Value;

use super::fields::text;
use super::formats::{Input, Read};
use super::template::{object, Field, Fields};
use crate::sources::MappingSettings;

/// `name`, `secret` and `side`, Finandy's three fields.
pub fn detect(input: &Input) -> bool {
    input.object().is_some_and(|o| {
        ["name", "secret", "side", "symbol"]
            .iter()
            .all(|k| o.contains_key(*k))
    })
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let mut obj = object(input)?;
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    match obj.shift_remove("side").as_ref().and_then(text).as_deref() {
        Some(s @ ("buy" | "sell")) => f.set_str(Field::Action, "side", s),
        other => reasons.push(format!("Finandy side {other:?} is not buy or sell")),
    }
    f.take(Field::Symbol, &mut obj, "symbol");
    if let Some(tp) = obj.shift_remove("tp") {
        let orders = tp
            .get("orders")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match orders.as_slice() {
            [] => {}
            [one] => {
                let price = one.get("price").and_then(text);
                let ofs = one.get("ofs").and_then(text);
                let piece = one.get("piece").and_then(text);
                if piece.as_deref().is_some_and(|p| p != "100") {
                    reasons.push(format!(
                        "Finandy take-profit closes {}% of the position; a signal's take_profit \
                         closes all of it",
                        piece.unwrap_or_default()
                    ));
                }
                match (price, ofs) {
                    (Some(p), _) => f.set_str(Field::TakeProfit, "tp.orders[0].price", &p),
                    (None, Some(o)) => {
                        f.set_str(Field::TakeProfit, "tp.orders[0].ofs", &o);
                        f.set_str(Field::TakeProfitUnit, "tp.orders[0].ofs", "percent");
                    }
                    (None, None) => {}
                }
            }
            many => reasons.push(format!(
                "Finandy alert sets {} take-profit orders; a signal carries one level",
                many.len()
            )),
        }
    }
    for key in ["sl", "open", "close"] {
        if obj.contains_key(key) {
            reasons.push(format!(
                "Finandy {key:?} object is not interpreted: its units are not documented in the \
                 message format this adapter follows"
            ));
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = obj;
    Ok(f)
}
