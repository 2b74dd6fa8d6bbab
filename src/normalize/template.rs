//! Adapters that read a payload into [`Fields`]: JSON alert templates (the
//! placeholder names TradingView documents and the key spellings traders
//! use), the canonical form custom sources may send, and plain-text alerts
//! once parsed into key/value pairs.

use serde_json::{Map, Value};

/// Every field the normalizer maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Symbol,
    Exchange,
    Action,
    Quantity,
    Price,
    OrderType,
    StopLoss,
    TakeProfit,
    StrategyName,
    OrderId,
    Comment,
    PositionSize,
    MarketPosition,
    PrevMarketPosition,
    Interval,
    AssertedAt,
}

pub const FIELD_COUNT: usize = 16;

/// A value taken from the payload, with the key it came under (for messages).
#[derive(Clone, Debug)]
pub struct Picked {
    pub key: String,
    pub value: Value,
}

/// What an adapter read: the mapped fields and everything else, kept.
#[derive(Debug, Default)]
pub struct Fields {
    values: [Option<Picked>; FIELD_COUNT],
    pub extra: Map<String, Value>,
}

impl Fields {
    pub fn get(&self, f: Field) -> Option<&Picked> {
        self.values[f as usize].as_ref()
    }

    pub fn set(&mut self, f: Field, key: impl Into<String>, value: Value) {
        self.values[f as usize] = Some(Picked {
            key: key.into(),
            value,
        });
    }

    pub fn is_set(&self, f: Field) -> bool {
        self.values[f as usize].is_some()
    }

    pub fn picked(&self) -> impl Iterator<Item = &Picked> {
        self.values.iter().flatten()
    }
}

/// Top-level keys accepted for each field, first present wins; a key that
/// loses (say `close` beside `price`) stays in `extra`. Matched ignoring case.
const ALIASES: &[(Field, &[&str])] = &[
    (
        Field::Symbol,
        &[
            "symbol",
            "ticker",
            "instrument",
            "pair",
            "market",
            "tv_symbol",
        ],
    ),
    (Field::Exchange, &["exchange", "venue"]),
    (Field::Action, &["action", "side", "order_action", "signal"]),
    (
        Field::Quantity,
        &[
            "quantity",
            "qty",
            "contracts",
            "order_contracts",
            "size",
            "amount",
        ],
    ),
    (
        Field::Price,
        &[
            "price",
            "order_price",
            "limit_price",
            "entry_price",
            "close",
        ],
    ),
    (Field::OrderType, &["order_type", "ordertype", "type"]),
    (Field::StopLoss, &["stop_loss", "stoploss", "sl"]),
    (Field::TakeProfit, &["take_profit", "takeprofit", "tp"]),
    (Field::StrategyName, &["strategy_name", "strategy"]),
    (Field::OrderId, &["order_id", "orderid"]),
    (Field::Comment, &["comment", "order_comment"]),
    (Field::PositionSize, &["position_size"]),
    (Field::MarketPosition, &["market_position"]),
    (Field::PrevMarketPosition, &["prev_market_position"]),
    (
        Field::Interval,
        &["interval", "timeframe", "tf", "resolution"],
    ),
    (
        Field::AssertedAt,
        &["asserted_at", "timenow", "time", "timestamp", "alert_time"],
    ),
];

/// Keys of TradingView's nested `"strategy": {…}` object, as in the widely
/// copied template `"strategy": {"order_action": "{{strategy.order.action}}", …}`.
const STRATEGY_ALIASES: &[(Field, &[&str])] = &[
    (Field::Action, &["order_action", "action"]),
    (Field::Quantity, &["order_contracts", "contracts", "qty"]),
    (Field::Price, &["order_price", "price"]),
    (Field::OrderId, &["order_id", "id"]),
    (Field::Comment, &["order_comment", "comment"]),
    (Field::StrategyName, &["name", "strategy_name"]),
    (Field::PositionSize, &["position_size"]),
    (Field::MarketPosition, &["market_position"]),
    (Field::PrevMarketPosition, &["prev_market_position"]),
];

/// Reads an alert template object (TradingView JSON, or a custom source's
/// own JSON): aliases first at the top level, then inside `strategy`.
pub fn read_template(mut obj: Map<String, Value>) -> Fields {
    let mut fields = Fields::default();
    // A nested strategy object is read after the top level, so flat keys win.
    let nested = match obj.get("strategy") {
        Some(Value::Object(_)) => obj.shift_remove("strategy"),
        _ => None,
    };
    take_aliases(&mut obj, &mut fields, ALIASES);
    if let Some(Value::Object(mut strategy)) = nested {
        take_aliases(&mut strategy, &mut fields, STRATEGY_ALIASES);
        if !strategy.is_empty() {
            obj.insert("strategy".into(), Value::Object(strategy));
        }
    }
    fields.extra = obj;
    fields
}

fn take_aliases(obj: &mut Map<String, Value>, fields: &mut Fields, table: &[(Field, &[&str])]) {
    for (field, aliases) in table {
        if fields.is_set(*field) {
            continue;
        }
        let found = aliases.iter().find_map(|alias| {
            obj.keys()
                .find(|k| k.eq_ignore_ascii_case(alias))
                .filter(|k| !matches!(obj.get(*k), Some(Value::Object(_) | Value::Array(_))))
                .cloned()
        });
        if let Some(key) = found {
            if let Some(value) = obj.shift_remove(&key) {
                fields.set(*field, key, value);
            }
        }
    }
}

/// Reads the canonical form: the normalized schema's own field names, with
/// `instrument` and `strategy` as objects. Unknown keys go to `extra`.
pub fn read_canonical(mut obj: Map<String, Value>) -> Fields {
    let mut fields = Fields::default();
    if let Some(Value::Object(mut instrument)) = obj.shift_remove("instrument") {
        for (field, key) in [(Field::Symbol, "symbol"), (Field::Exchange, "exchange")] {
            if let Some(v) = instrument.shift_remove(key) {
                fields.set(field, format!("instrument.{key}"), v);
            }
        }
        if !instrument.is_empty() {
            obj.insert("instrument".into(), Value::Object(instrument));
        }
    }
    if let Some(Value::Object(mut strategy)) = obj.shift_remove("strategy") {
        for (field, key) in [
            (Field::StrategyName, "name"),
            (Field::OrderId, "order_id"),
            (Field::Comment, "comment"),
            (Field::PositionSize, "position_size"),
            (Field::MarketPosition, "market_position"),
            (Field::PrevMarketPosition, "prev_market_position"),
        ] {
            if let Some(v) = strategy.shift_remove(key) {
                fields.set(field, format!("strategy.{key}"), v);
            }
        }
        if !strategy.is_empty() {
            obj.insert("strategy".into(), Value::Object(strategy));
        }
    }
    for (field, key) in [
        (Field::Action, "action"),
        (Field::Quantity, "quantity"),
        (Field::Price, "price"),
        (Field::OrderType, "order_type"),
        (Field::StopLoss, "stop_loss"),
        (Field::TakeProfit, "take_profit"),
        (Field::Interval, "interval"),
        (Field::AssertedAt, "asserted_at"),
    ] {
        if let Some(v) = obj.shift_remove(key) {
            fields.set(field, key, v);
        }
    }
    // A sender's own `extra` object merges into ours.
    if let Some(Value::Object(extra)) = obj.shift_remove("extra") {
        for (k, v) in extra {
            obj.entry(k).or_insert(v);
        }
    }
    fields.extra = obj;
    fields
}

/// `true` when a JSON object is in the canonical form (an `instrument` object).
pub fn is_canonical(obj: &Map<String, Value>) -> bool {
    matches!(obj.get("instrument"), Some(Value::Object(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn first_alias_wins_and_losers_stay_in_extra() {
        let f = read_template(obj(
            json!({"Ticker": "BTCUSDT", "price": "1", "close": "2", "side": "buy"}),
        ));
        assert_eq!(f.get(Field::Symbol).unwrap().value, "BTCUSDT");
        assert_eq!(f.get(Field::Price).unwrap().value, "1");
        assert_eq!(f.get(Field::Action).unwrap().value, "buy");
        assert_eq!(f.extra["close"], "2");
    }

    #[test]
    fn nested_strategy_object_fills_what_the_top_level_left() {
        let f = read_template(obj(json!({
            "ticker": "ES1!",
            "strategy": {"order_action": "sell", "order_contracts": 2, "market_position_size": 2}
        })));
        assert_eq!(f.get(Field::Action).unwrap().value, "sell");
        assert_eq!(f.get(Field::Quantity).unwrap().value, json!(2));
        assert_eq!(f.extra["strategy"]["market_position_size"], json!(2));
    }
}
