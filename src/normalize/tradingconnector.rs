//! TradingConnector alerts, TradingView to MetaTrader
//! (tradingconnector.com/alerts-syntax).
//!
//! "Each alert must contain 1 and only 1 of the basic mandatory commands:
//! long (or buy), short (or sell), closelong, closeshort, cancel long,
//! cancel short, closepart, slmod, tpmod, closeall, closeall_on_ticker",
//! with `key=value` parameters after it (`tradesymbol=EURUSD`,
//! `lotsize=0.15`, …). The symbol normally comes from the TradingView alert
//! header, which a webhook body does not carry: the body must name it, as
//! `tradesymbol=` or as its first word ("EURUSD long").
//!
//! Refused (422): a message without a symbol; `closeall` (every symbol),
//! side-filtered cancels, `closepart`/`slmod`/`tpmod` (no canonical
//! action); `sl=`/`tp=` distances, whose unit (points or pips) the
//! documentation does not state; `risk=` sizes.

use serde_json::{Map, Value};

use super::formats::{Input, Read};
use super::template::{Field, Fields};
use crate::sources::MappingSettings;

const COMMANDS: &[&str] = &[
    "long",
    "buy",
    "short",
    "sell",
    "closelong",
    "closeshort",
    "cancel",
    "closepart",
    "slmod",
    "tpmod",
    "closeall",
    "closeall_on_ticker",
];

fn is_command(word: &str) -> bool {
    COMMANDS.contains(&word.to_ascii_lowercase().as_str())
}

/// A command word first (or second, after a symbol), `key=value` after.
pub fn detect(input: &Input) -> bool {
    let Some(text) = input.text() else {
        return false;
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = match words.as_slice() {
        [first, ..] if is_command(first) => 1,
        [first, second, ..] if !first.contains('=') && is_command(second) => 2,
        _ => return false,
    };
    // `cancel long`: the side is a word of the command.
    let at = if words[at - 1].eq_ignore_ascii_case("cancel") {
        at + 1
    } else {
        at
    };
    words.len() >= at && words[at.min(words.len())..].iter().all(|w| w.contains('='))
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let Input::Text(text) = input else {
        return Err(vec!["a TradingConnector alert is plain text".into()]);
    };
    let mut words: Vec<&str> = text.split_whitespace().collect();
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    if words.first().is_some_and(|w| !is_command(w)) {
        f.set_str(Field::Symbol, "header", words.remove(0));
    }
    let command = words
        .first()
        .map(|w| w.to_ascii_lowercase())
        .unwrap_or_default();
    let action = match command.as_str() {
        "long" | "buy" => Some("buy"),
        "short" | "sell" => Some("sell"),
        "closelong" => Some("close_long"),
        "closeshort" => Some("close_short"),
        "closeall_on_ticker" => Some("close"),
        "closeall" => {
            reasons
                .push("TradingConnector closeall closes every symbol; a signal names one".into());
            None
        }
        "cancel" => {
            reasons.push(
                "TradingConnector cancel long/short cancels one side's orders; the signal's \
                 cancel cancels every open order"
                    .into(),
            );
            None
        }
        other => {
            reasons.push(format!(
                "TradingConnector {other:?} has no canonical action (buy, sell, close_long, \
                 close_short, close)"
            ));
            None
        }
    };
    if let Some(a) = action {
        f.set_str(Field::Action, "command", a);
    }
    let mut extra = Map::new();
    for word in words.iter().skip(if command == "cancel" { 2 } else { 1 }) {
        let Some((k, v)) = word.split_once('=') else {
            reasons.push(format!(
                "TradingConnector parameter {word:?} is not key=value"
            ));
            continue;
        };
        match k.to_ascii_lowercase().as_str() {
            "tradesymbol" => f.set_str(Field::Symbol, k, v),
            "lotsize" => {
                f.set_str(Field::Quantity, k, v);
                f.set_str(Field::SizeUnit, k, "lots");
            }
            "sl" | "tp" | "risk" => reasons.push(format!(
                "TradingConnector {k}={v}: its unit (points, pips or percent) is set in the \
                 EA, not in the message"
            )),
            _ => {
                extra.insert(k.to_owned(), Value::String(v.to_owned()));
            }
        }
    }
    if !f.is_set(Field::Symbol) {
        reasons.push(
            "TradingConnector takes the symbol from the TradingView alert header, which a \
             webhook does not carry: add tradesymbol=SYMBOL or start the message with it"
                .into(),
        );
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = extra;
    Ok(f)
}
