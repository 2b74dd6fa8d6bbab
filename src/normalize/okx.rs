//! OKX Signal Bot alert messages.
//!
//! Follows OKX's "Signal bot alert message specifications"
//! (okx.com/help/signal-bot-alert-message-specifications):
//! - Section A, for TradingView strategies: `action` is
//!   `{{strategy.order.action}}` (buy/sell) with `marketPosition` and
//!   `prevMarketPosition`, which say whether it enters or exits;
//! - Section B, for indicators: `action` is `ENTER_LONG`, `EXIT_LONG`,
//!   `ENTER_SHORT` or `EXIT_SHORT`.
//!
//! `instrument` is the TradingView ticker or an OKX id (`BTC-USDT-SWAP`);
//! `investmentType` gives the unit of `amount`: `base` (units), `margin`
//! (quote-currency margin), `contract`, `percentage_balance`,
//! `percentage_investment` (of the bot's investment) or
//! `percentage_position`. `signalToken` is the bot's credential (redacted
//! before this adapter runs). `id` is `{{strategy.order.id}}`, which repeats
//! across fills: it is not an idempotency key.

use serde_json::Value;

use super::fields::{self, text};
use super::formats::{Input, Read};
use super::template::{object, Field, Fields};
use crate::sources::MappingSettings;

const ACTIONS: &[(&str, &str)] = &[
    ("ENTER_LONG", "buy"),
    ("EXIT_LONG", "close_long"),
    ("ENTER_SHORT", "sell"),
    ("EXIT_SHORT", "close_short"),
];

/// `signalToken` is OKX's alone; or a Section B action with `instrument`.
pub fn detect(input: &Input) -> bool {
    input.object().is_some_and(|o| {
        o.contains_key("signalToken")
            || (o.get("instrument").is_some_and(Value::is_string)
                && o.contains_key("investmentType"))
            || o.get("action")
                .and_then(Value::as_str)
                .is_some_and(|a| ACTIONS.iter().any(|(k, _)| *k == a))
                && o.get("instrument").is_some_and(Value::is_string)
    })
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let mut obj = object(input)?;
    let mut f = Fields::default();
    let mut reasons = Vec::new();

    let instrument = obj.get("instrument").and_then(text);
    f.take(Field::Symbol, &mut obj, "instrument");
    let (base, quote) = instrument
        .as_deref()
        .filter(|s| s.contains('-'))
        .and_then(|s| fields::split_pair(s, '-', false))
        .unzip();
    if let (Some(b), Some(q)) = (&base, &quote) {
        f.set_str(Field::Base, "instrument", b);
        f.set_str(Field::Quote, "instrument", q);
    }

    let action = obj.shift_remove("action").as_ref().and_then(text);
    let market = obj.shift_remove("marketPosition");
    let prev = obj.shift_remove("prevMarketPosition");
    match action.as_deref() {
        None => reasons.push("an action is required (OKX action)".to_string()),
        Some(a) => match ACTIONS.iter().find(|(k, _)| k.eq_ignore_ascii_case(a)) {
            Some((_, canonical)) => f.set_str(Field::Action, "action", canonical),
            None => {
                let pos = |v: &Option<Value>| {
                    v.as_ref()
                        .and_then(text)
                        .and_then(|t| fields::market_position(&t))
                };
                match fields::strategy_action(a, pos(&market), pos(&prev)) {
                    Ok(act) => f.set(
                        Field::Action,
                        "action",
                        serde_json::to_value(act).unwrap_or_default(),
                    ),
                    Err(e) => reasons.push(format!("OKX {e}")),
                }
            }
        },
    }
    for (k, v) in [("marketPosition", market), ("prevMarketPosition", prev)] {
        if let Some(v) = v {
            obj.insert(k.into(), v);
        }
    }

    let investment = obj.get("investmentType").and_then(text);
    if obj.get("amount").and_then(text).is_some() {
        let unit = match investment.as_deref() {
            Some("base") => Some("units"),
            Some("margin") => Some("margin"),
            Some("contract") => Some("contracts"),
            Some("percentage_balance") => Some("percent_of_balance"),
            Some("percentage_investment") => Some("percent_of_allocation"),
            Some("percentage_position") => Some("percent_of_position"),
            Some(other) => {
                reasons.push(format!(
                    "OKX investmentType {other:?} is not one of base, margin, contract, \
                     percentage_balance, percentage_investment, percentage_position"
                ));
                None
            }
            None => {
                reasons.push("OKX amount without investmentType: its unit is unknown".to_string());
                None
            }
        };
        if let Some(unit) = unit {
            f.take(Field::Quantity, &mut obj, "amount");
            f.set_str(Field::SizeUnit, "investmentType", unit);
            if unit == "margin" {
                if let Some(q) = &quote {
                    f.set_str(Field::Currency, "instrument", q);
                }
            }
            obj.shift_remove("investmentType");
        }
    } else {
        obj.shift_remove("amount");
    }
    if obj.get("orderType").and_then(text).is_some() {
        f.take(Field::OrderType, &mut obj, "orderType");
    }
    f.take(Field::AssertedAt, &mut obj, "timestamp");
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = obj;
    Ok(f)
}
