//! Adapters that read a payload into [`Fields`]: JSON alert templates (the
//! placeholder names TradingView documents and the key spellings traders
//! use), the canonical form custom sources may send, and plain-text alerts
//! once parsed into key/value pairs.

use serde_json::{Map, Value};

use super::formats::{Input, Read};
use crate::sources::MappingSettings;

/// `format = "canonical"`: a JSON object with an `instrument` object.
pub fn is_canonical_input(input: &Input) -> bool {
    input.object().is_some_and(is_canonical)
}

pub fn read_canonical_input(input: Input, _: Option<&MappingSettings>) -> Read {
    Ok(read_canonical(object(input)?))
}

/// Any JSON body (the generic template reader's part of the table).
pub fn is_json(input: &Input) -> bool {
    matches!(input, Input::Json(_))
}

/// A generic JSON alert template (TradingView's own placeholders, the
/// Part Time Larry strategy template, a custom source's own keys).
pub fn read_template_input(input: Input, _: Option<&MappingSettings>) -> Read {
    generic(read_template(object(input)?))
}

/// The body as a JSON object, or why it is not one.
pub fn object(input: Input) -> Result<Map<String, Value>, Vec<String>> {
    match input {
        Input::Json(Value::Object(obj)) => Ok(obj),
        Input::Json(_) => Err(vec!["JSON body must be an object".into()]),
        Input::Text(_) => Err(vec!["body is not JSON".into()]),
    }
}

/// A generic reader's fields, refused when a key beside the size says the
/// size is not a count of units (see [`SIZE_QUALIFIERS`]). A TradingView
/// strategy's `buy`/`sell` is read with the positions before and after it
/// (a sell to flat closes the long; see [`fields::strategy_action`]).
pub fn generic(mut fields: Fields) -> Read {
    let word = |f: &Fields, field| f.get(field).and_then(|p| super::fields::text(&p.value));
    if let (Some(action), Some(now), Some(before)) = (
        word(&fields, Field::Action),
        word(&fields, Field::MarketPosition),
        word(&fields, Field::PrevMarketPosition),
    ) {
        let now = super::fields::market_position(&now);
        let before = super::fields::market_position(&before);
        if now.is_some() && before.is_some() {
            let key = fields
                .get(Field::Action)
                .map(|p| p.key.clone())
                .unwrap_or_default();
            match super::fields::strategy_action(&action, now, before) {
                Ok(a) => fields.set(
                    Field::Action,
                    key,
                    serde_json::to_value(a).unwrap_or_default(),
                ),
                Err(e) => return Err(vec![format!("strategy {e}")]),
            }
        }
    } else if let (Some(action), Some(contracts), Some(after)) = (
        word(&fields, Field::Action),
        word(&fields, Field::Quantity),
        word(&fields, Field::PositionSize),
    ) {
        // Without the positions, the signed position after the order says
        // the same (`{{strategy.position_size}}` beside the order's size).
        let key = fields
            .get(Field::Action)
            .map(|p| p.key.clone())
            .unwrap_or_default();
        match super::fields::order_meaning(&action, &contracts, &after) {
            Some(Ok(a)) => fields.set_str(Field::Action, key, super::fields::action_name(a)),
            Some(Err(e)) => return Err(vec![e]),
            None => {}
        }
    }
    let qualifiers = size_qualifiers(&fields.extra);
    if fields.is_set(Field::Quantity) && !qualifiers.is_empty() {
        let key = fields
            .get(Field::Quantity)
            .map(|p| p.key.clone())
            .unwrap_or_default();
        return Err(vec![format!(
            "the size in {key:?} is qualified by {} in a way this generic reader cannot \
             interpret (a unit, percent or risk figure): use a supported platform's format, \
             set the source's format, or map it with [sources.<name>.mapping]",
            qualifiers.join(", ")
        )]);
    }
    Ok(fields)
}

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
    /// The size's unit, as a [`SizeUnit`](super::signal::SizeUnit) name;
    /// adapters set it, generic templates infer it from the size's key.
    SizeUnit,
    /// The currency of a quote, margin or risk size.
    Currency,
    Leverage,
    /// A [`LevelUnit`](super::signal::LevelUnit) name; `price` if unset.
    StopLossUnit,
    TakeProfitUnit,
    Base,
    Quote,
}

pub const FIELD_COUNT: usize = 23;

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

    /// Sets `f` to a string an adapter derived (a mapped action, a unit).
    pub fn set_str(&mut self, f: Field, key: impl Into<String>, value: &str) {
        self.set(f, key, Value::String(value.to_owned()));
    }

    /// [`Fields::take`] for each `(field, key)` pair.
    pub fn take_each(&mut self, obj: &mut Map<String, Value>, pairs: &[(Field, &str)]) {
        for (field, key) in pairs {
            self.take(*field, obj, key);
        }
    }

    /// Sets `f` from `obj[key]` if it is there (and not null), removing it.
    pub fn take(&mut self, f: Field, obj: &mut Map<String, Value>, key: &str) -> bool {
        match obj.shift_remove(key) {
            Some(Value::Null) | None => false,
            Some(v) => {
                self.set(f, key, v);
                true
            }
        }
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
    (Field::Leverage, &["leverage", "lev"]),
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

/// Keys that qualify a size in a way the generic reader cannot interpret
/// (a unit, a percent, a risk figure). Beside a size they make it
/// ambiguous, so the generic reader refuses rather than read the size as
/// a count of units. Compared squashed (lower case, no `_`, `-`, spaces).
const SIZE_QUALIFIERS: &[&str] = &[
    "quantitytype",
    "qtytype",
    "quantityunit",
    "qtyunit",
    "sizetype",
    "sizeunit",
    "unit",
    "units",
    "amounttype",
    "currencytype",
    "investmenttype",
    "amountpertradetype",
    "ordersizetype",
    "percent",
    "percentage",
    "qtypercent",
    "quantitypercent",
    "sizepercent",
    "riskpercent",
    "riskpercentage",
    "risk",
    "lots",
    "vollots",
    "usdamount",
    "quoteamount",
    "qtyusd",
    "sizeusd",
];

/// The keys of `extra` that make a generic size ambiguous (see above).
pub fn size_qualifiers(extra: &Map<String, Value>) -> Vec<String> {
    extra
        .keys()
        .filter(|k| SIZE_QUALIFIERS.contains(&super::fields::squash(k).as_str()))
        .cloned()
        .collect()
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

/// Reads the canonical form: the normalized schema's own field names (v2:
/// `size`, `stop_loss` and `take_profit` as `{value, unit}` objects; v1's
/// bare `quantity` is a count of units), with `instrument` and `strategy`
/// as objects. Unknown keys go to `extra`.
pub fn read_canonical(mut obj: Map<String, Value>) -> Fields {
    let mut fields = Fields::default();
    if let Some(Value::Object(mut instrument)) = obj.shift_remove("instrument") {
        for (field, key) in [
            (Field::Symbol, "symbol"),
            (Field::Exchange, "exchange"),
            (Field::Base, "base"),
            (Field::Quote, "quote"),
        ] {
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
    if let Some(Value::Object(mut size)) = obj.shift_remove("size") {
        for (field, key) in [
            (Field::Quantity, "value"),
            (Field::SizeUnit, "unit"),
            (Field::Currency, "currency"),
        ] {
            if let Some(v) = size.shift_remove(key) {
                fields.set(field, format!("size.{key}"), v);
            }
        }
        if !size.is_empty() {
            obj.insert("size".into(), Value::Object(size));
        }
    }
    for (field, unit, key) in [
        (Field::StopLoss, Field::StopLossUnit, "stop_loss"),
        (Field::TakeProfit, Field::TakeProfitUnit, "take_profit"),
    ] {
        if let Some(Value::Object(mut level)) = obj.shift_remove(key) {
            for (f, k) in [(field, "value"), (unit, "unit")] {
                if let Some(v) = level.shift_remove(k) {
                    fields.set(f, format!("{key}.{k}"), v);
                }
            }
            if !level.is_empty() {
                obj.insert(key.into(), Value::Object(level));
            }
        }
    }
    for (field, key) in [
        (Field::Action, "action"),
        (Field::Quantity, "quantity"),
        (Field::Leverage, "leverage"),
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
