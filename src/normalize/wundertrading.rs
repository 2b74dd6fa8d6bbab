//! WunderTrading signal codes (help.wundertrading.com; the codes a bot's
//! page shows, as pasted into TradingView alerts).
//!
//! A code is `ACTION_EXCHANGE_PAIR_BOTNAME_TIMEFRAME_ID`, e.g.
//! `ENTER-LONG_BINANCE-FUTURES_BTCUSDT_MyBot_1H_5a1f03c9e7b2d486`, sent as
//! plain text or as the `code` of a JSON message with `orderType`,
//! `amountPerTradeType` (`quote`, `base`, `contracts`) and
//! `amountPerTrade`, `leverage`, `takeProfits`/`stopLoss` with
//! `priceDeviation` as a fraction (0.01 = 1 %). The trailing id identifies
//! the bot and with the public webhook URL is enough to trade: it is
//! redacted as a credential. Actions: `ENTER-LONG` (buy), `ENTER-SHORT`
//! (sell), `EXIT-LONG`, `EXIT-SHORT`, `EXIT-ALL` (close).
//!
//! Refused (422): a code without a pair (a bare `Enter-Long`, or a
//! multi-pair bot's `MULTIPLE-PAIRS`), `percents` sizes (a ratio whose
//! base the message does not state), several take-profit levels.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::fields::text;
use super::formats::{Input, Read};
use super::template::{Field, Fields};
use crate::sources::MappingSettings;

const ACTIONS: &[(&str, &str)] = &[
    ("ENTER-LONG", "buy"),
    ("ENTER-SHORT", "sell"),
    ("EXIT-LONG", "close_long"),
    ("EXIT-SHORT", "close_short"),
    ("EXIT-ALL", "close"),
];

fn action_of(code: &str) -> Option<&'static str> {
    let head = code.split('_').next()?.trim();
    ACTIONS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(head))
        .map(|(_, a)| *a)
}

fn code(input: &Input) -> Option<String> {
    match input {
        Input::Text(t) => Some(t.trim().to_owned()),
        Input::Json(Value::Object(o)) => o.get("code").and_then(Value::as_str).map(str::to_owned),
        Input::Json(_) => None,
    }
}

pub fn detect(input: &Input) -> bool {
    code(input).is_some_and(|c| !c.contains(char::is_whitespace) && action_of(&c).is_some())
}

/// The id at the end of a full code, to redact.
pub fn bot_id(input: &Input) -> Vec<String> {
    let text = code(input).unwrap_or_default();
    let parts: Vec<&str> = text.split('_').collect();
    match parts.as_slice() {
        [_, _, _, _, _, id] if action_of(&text).is_some() && !id.is_empty() => {
            vec![(*id).to_owned()]
        }
        _ => Vec::new(),
    }
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let code = code(&input).unwrap_or_default();
    let mut obj = match input {
        Input::Json(Value::Object(o)) => o,
        _ => Map::new(),
    };
    obj.shift_remove("code");
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    if let Some(a) = action_of(&code) {
        f.set_str(Field::Action, "code", a);
    }
    let parts: Vec<&str> = code.split('_').collect();
    match parts.as_slice() {
        [_, exchange, pair, bot, timeframe, _] => {
            if pair.eq_ignore_ascii_case("MULTIPLE-PAIRS") {
                reasons.push(
                    "WunderTrading multi-pair bot code names no instrument (MULTIPLE-PAIRS)".into(),
                );
            }
            f.set_str(Field::Symbol, "code", pair);
            f.set_str(Field::Exchange, "code", exchange);
            f.set_str(Field::Interval, "code", timeframe);
            obj.insert("bot".into(), Value::String((*bot).to_owned()));
        }
        _ => reasons.push(format!(
            "WunderTrading code {:?} names no pair: the bot's settings hold it, so the signal \
             would have no instrument (use the full code ACTION_EXCHANGE_PAIR_BOT_TF_ID)",
            parts.first().copied().unwrap_or_default()
        )),
    }
    if obj.get("amountPerTrade").and_then(text).is_some() {
        match obj.get("amountPerTradeType").and_then(text).as_deref() {
            Some(t @ ("quote" | "base" | "contracts")) => {
                let unit = match t {
                    "base" => "units",
                    other => other,
                };
                f.take(Field::Quantity, &mut obj, "amountPerTrade");
                f.set_str(Field::SizeUnit, "amountPerTradeType", unit);
                obj.shift_remove("amountPerTradeType");
            }
            other => reasons.push(format!(
                "WunderTrading amountPerTradeType {other:?}: only quote, base and contracts have \
                 a unit the message states"
            )),
        }
    }
    f.take(Field::OrderType, &mut obj, "orderType");
    f.take(Field::Leverage, &mut obj, "leverage");
    for (key, field, unit) in [
        ("takeProfits", Field::TakeProfit, Field::TakeProfitUnit),
        ("stopLoss", Field::StopLoss, Field::StopLossUnit),
    ] {
        let level = match obj.shift_remove(key) {
            Some(Value::Array(levels)) if levels.len() > 1 => {
                reasons.push(format!(
                    "WunderTrading {key} has {} levels; a signal carries one",
                    levels.len()
                ));
                continue;
            }
            Some(Value::Array(mut levels)) => levels.pop(),
            other => other,
        };
        let Some(deviation) = level
            .as_ref()
            .and_then(|l| l.get("priceDeviation"))
            .and_then(text)
        else {
            continue;
        };
        match Decimal::from_str(&deviation) {
            Ok(d) => {
                let percent = (d * Decimal::ONE_HUNDRED).normalize().to_string();
                f.set_str(field, format!("{key}.priceDeviation"), &percent);
                f.set_str(unit, format!("{key}.priceDeviation"), "percent");
            }
            Err(_) => reasons.push(format!(
                "WunderTrading {key}.priceDeviation {deviation:?} is not a decimal"
            )),
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = obj;
    Ok(f)
}
