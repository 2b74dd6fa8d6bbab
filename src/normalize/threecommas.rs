//! 3Commas: DCA bot messages and Signal Bot messages.
//!
//! DCA bots (3Commas "TradingView custom signal" messages, as the bot's
//! page shows them): `{"message_type": "bot", "bot_id": …, "email_token":
//! …, "delay_seconds": 0, "pair": "USDT_ETH", "action": …}`. Without an
//! `action` the message only starts a deal, in the direction and pair set
//! in the bot: no tradable action, 422. `close_at_market_price` closes the
//! deal on `pair` (quote first: `USDT_ETH` is ETH priced in USDT). Other
//! actions (`add_funds_*`, `close_at_market_price_all`, `start_trailing`)
//! depend on the bot's own direction or act on every pair: 422. A JSON
//! array addresses several bots at once; it is not one signal: 422.
//!
//! Signal Bots (help.3commas.io, "Signal Bot JSON file for Strategy type"
//! and "… in Custom signal type"): `secret` (the bot's credential,
//! redacted), `bot_uuid`, `max_lag`, `timestamp`, `trigger_price` (the
//! alert-time price, kept in `extra`), `tv_exchange`, `tv_instrument`,
//! `action` (`enter_long`, `exit_long`, `enter_short`, `exit_short`; or a
//! strategy's `buy`/`sell` read with `strategy_info`'s positions; `disable`
//! controls the bot, 422), `order: {amount, currency_type, order_type,
//! price}` with `currency_type` `base` (units), `quote` or
//! `position_percent`, and `take_profit`/`stop_loss` objects.
//!
//! Refused (422) besides: `margin_percent` sizes (their base is not
//! confirmed), relative order prices (`price_percent`), and take-profit
//! ladders of several steps (a signal carries one level).

use serde_json::{Map, Value};

use super::fields::{self, text};
use super::formats::{Input, Read};
use super::template::{object, Field, Fields};
use crate::sources::MappingSettings;

fn is_dca_object(o: &Map<String, Value>) -> bool {
    o.get("message_type").and_then(Value::as_str) == Some("bot")
        || (o.contains_key("bot_id") && o.contains_key("email_token"))
}

/// A DCA bot message, or an array of them.
pub fn is_dca(input: &Input) -> bool {
    match input {
        Input::Json(Value::Object(o)) => is_dca_object(o),
        Input::Json(Value::Array(items)) => items
            .iter()
            .any(|i| i.as_object().is_some_and(is_dca_object)),
        _ => false,
    }
}

/// `bot_uuid`, or a `secret` beside TradingView's exchange or instrument.
pub fn is_signal_bot(input: &Input) -> bool {
    input.object().is_some_and(|o| {
        o.contains_key("bot_uuid")
            || (o.contains_key("secret")
                && (o.contains_key("tv_instrument") || o.contains_key("tv_exchange")))
    })
}

pub fn read_dca(input: Input, _: Option<&MappingSettings>) -> Read {
    if let Input::Json(Value::Array(items)) = &input {
        return Err(vec![format!(
            "3Commas message addresses {} bots at once; one signal is for one bot and pair: \
             send one message per bot",
            items.len()
        )]);
    }
    let mut obj = object(input)?;
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    match obj
        .shift_remove("action")
        .as_ref()
        .and_then(text)
        .as_deref()
    {
        None => reasons.push(
            "3Commas DCA message without an action only starts a deal, in the direction and \
             pair set in the bot: it names no tradable action"
                .into(),
        ),
        Some("close_at_market_price") => f.set_str(Field::Action, "action", "close"),
        Some(other) => reasons.push(format!(
            "3Commas DCA action {other:?} depends on the bot's own direction or acts on every \
             pair; only close_at_market_price with a pair is one signal"
        )),
    }
    match obj.get("pair").and_then(text) {
        Some(pair) => {
            if let Some((base, quote)) = fields::split_pair(&pair, '_', true) {
                f.set_str(Field::Base, "pair", &base);
                f.set_str(Field::Quote, "pair", &quote);
            }
            f.take(Field::Symbol, &mut obj, "pair");
        }
        None => reasons.push(
            "3Commas DCA message without a pair: the instrument is only in the bot's settings"
                .into(),
        ),
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = obj;
    Ok(f)
}

const ACTIONS: &[(&str, &str)] = &[
    ("enter_long", "buy"),
    ("exit_long", "close_long"),
    ("enter_short", "sell"),
    ("exit_short", "close_short"),
];

pub fn read_signal_bot(input: Input, _: Option<&MappingSettings>) -> Read {
    let mut obj = object(input)?;
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    let action = obj.shift_remove("action").as_ref().and_then(text);
    match action.as_deref() {
        None => reasons.push("3Commas Signal Bot message without an action".into()),
        Some(a) => match ACTIONS.iter().find(|(k, _)| *k == a) {
            Some((_, canonical)) => f.set_str(Field::Action, "action", canonical),
            None if a == "buy" || a == "sell" => {
                let info = obj.get("strategy_info");
                let pos = |k: &str| {
                    info.and_then(|i| i.get(k))
                        .and_then(text)
                        .and_then(|t| fields::market_position(&t))
                };
                match fields::strategy_action(
                    a,
                    pos("market_position"),
                    pos("prev_market_position"),
                ) {
                    Ok(act) => f.set(
                        Field::Action,
                        "action",
                        serde_json::to_value(act).unwrap_or_default(),
                    ),
                    Err(e) => reasons.push(format!("3Commas strategy {e}")),
                }
            }
            None => reasons.push(format!(
                "3Commas Signal Bot action {a:?} is not a trade (enter_long, exit_long, \
                 enter_short, exit_short, or a strategy's buy/sell)"
            )),
        },
    }
    f.take(Field::Symbol, &mut obj, "tv_instrument");
    f.take(Field::Exchange, &mut obj, "tv_exchange");
    f.take(Field::AssertedAt, &mut obj, "timestamp");

    if let Some(Value::Object(mut order)) = obj.shift_remove("order") {
        if order.get("amount").and_then(text).is_some() {
            let unit = match order.get("currency_type").and_then(text).as_deref() {
                Some("base") => Some("units"),
                Some("quote") => Some("quote"),
                Some("position_percent") => Some("percent_of_position"),
                other => {
                    reasons.push(format!(
                        "3Commas order.currency_type {other:?}: only base, quote and \
                         position_percent have a confirmed meaning"
                    ));
                    None
                }
            };
            if let Some(unit) = unit {
                f.take(Field::Quantity, &mut order, "amount");
                f.set_str(Field::SizeUnit, "order.currency_type", unit);
                order.shift_remove("currency_type");
            }
        }
        if order.contains_key("price_percent") {
            reasons.push(
                "3Commas order.price_percent is relative to a price the message does not carry"
                    .into(),
            );
        }
        f.take(Field::OrderType, &mut order, "order_type");
        f.take(Field::Price, &mut order, "price");
        if !order.is_empty() {
            obj.insert("order".into(), Value::Object(order));
        }
    }
    level(
        &mut obj,
        &mut f,
        &mut reasons,
        "take_profit",
        Field::TakeProfit,
        Field::TakeProfitUnit,
    );
    level(
        &mut obj,
        &mut f,
        &mut reasons,
        "stop_loss",
        Field::StopLoss,
        Field::StopLossUnit,
    );
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = obj;
    Ok(f)
}

/// A `take_profit`/`stop_loss` object: `{enabled, steps: [{price_percent,
/// …}]}`, or `{enabled, trigger_price_percent | price_percent | price}`.
fn level(
    obj: &mut Map<String, Value>,
    f: &mut Fields,
    reasons: &mut Vec<String>,
    key: &str,
    field: Field,
    unit: Field,
) {
    let Some(Value::Object(mut level)) = obj.shift_remove(key) else {
        return;
    };
    let enabled = level
        .get("enabled")
        .map(|e| e != &Value::Bool(false))
        .unwrap_or(true);
    if !enabled {
        obj.insert(key.into(), Value::Object(level));
        return;
    }
    let spot = match level.shift_remove("steps") {
        Some(Value::Array(steps)) if steps.len() > 1 => {
            reasons.push(format!(
                "3Commas {key} has {} steps; a signal carries one level, so a ladder would be \
                 misstated",
                steps.len()
            ));
            return;
        }
        Some(Value::Array(mut steps)) => match steps.pop() {
            Some(Value::Object(step)) => step,
            _ => return,
        },
        _ => level.clone(),
    };
    let percent = ["trigger_price_percent", "price_percent"]
        .iter()
        .find_map(|k| spot.get(*k).and_then(text).map(|v| (k.to_string(), v)));
    let price = spot.get("price").and_then(|p| match p {
        Value::Object(o) => o.get("value").and_then(text),
        other => text(other),
    });
    match (percent, price) {
        (Some((k, v)), _) => {
            f.set_str(field, format!("{key}.{k}"), &v);
            f.set_str(unit, format!("{key}.{k}"), "percent");
        }
        (None, Some(p)) => f.set_str(field, format!("{key}.price"), &p),
        (None, None) => {
            reasons.push(format!(
                "3Commas {key} has no price or percent this adapter reads"
            ));
        }
    }
}
