//! MetaAPI CopyFactory webhook signals
//! (metaapi.cloud/docs/copyfactory/models/webhookSignal).
//!
//! `symbol`, `type` (`POSITION_TYPE_BUY`/`_SELL` for market orders,
//! `ORDER_TYPE_BUY_LIMIT`, `…_SELL_LIMIT`, `…_BUY_STOP`, `…_SELL_STOP` for
//! pending ones with `openPrice`), `time`, `volume` (MetaTrader volume:
//! lots), `stopLoss` and `takeProfit` (prices).

use serde_json::Value;

use super::formats::{Input, Read};
use super::template::{object, Field, Fields};
use crate::sources::MappingSettings;

const TYPES: &[(&str, &str, &str)] = &[
    ("POSITION_TYPE_BUY", "buy", "market"),
    ("POSITION_TYPE_SELL", "sell", "market"),
    ("ORDER_TYPE_BUY_LIMIT", "buy", "limit"),
    ("ORDER_TYPE_SELL_LIMIT", "sell", "limit"),
    ("ORDER_TYPE_BUY_STOP", "buy", "stop"),
    ("ORDER_TYPE_SELL_STOP", "sell", "stop"),
];

/// `type` is one of MetaTrader's position or order types.
pub fn detect(input: &Input) -> bool {
    input.object().is_some_and(|o| {
        o.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("POSITION_TYPE_") || t.starts_with("ORDER_TYPE_"))
    })
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let mut obj = object(input)?;
    let mut f = Fields::default();
    let ty = obj
        .shift_remove("type")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let Some((_, action, order_type)) = TYPES.iter().find(|(t, _, _)| *t == ty) else {
        return Err(vec![format!(
            "MetaAPI type {ty:?} is not one of {}",
            TYPES.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
        )]);
    };
    f.set_str(Field::Action, "type", action);
    f.set_str(Field::OrderType, "type", order_type);
    if f.take(Field::Quantity, &mut obj, "volume") {
        f.set_str(Field::SizeUnit, "volume", "lots");
    }
    f.take_each(
        &mut obj,
        &[
            (Field::Symbol, "symbol"),
            (Field::Price, "openPrice"),
            (Field::StopLoss, "stopLoss"),
            (Field::TakeProfit, "takeProfit"),
            (Field::AssertedAt, "time"),
        ],
    );
    f.extra = obj;
    Ok(f)
}
