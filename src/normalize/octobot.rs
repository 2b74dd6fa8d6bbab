//! OctoBot TradingView signals (octobot.cloud guides "alert format" and
//! "automating trading from a Pine Script strategy"; the cheatsheet
//! `TradingViewSignalsTradingMode.md` in OctoBot-Tentacles).
//!
//! `KEY=VALUE` parameters separated by new lines or `;` (OctoBot's parser
//! also splits at a literal `\n`): `EXCHANGE`, `SYMBOL`, `SIGNAL`
//! (`BUY`, `SELL`, `CANCEL`), `ORDER_TYPE` (`MARKET`, `LIMIT`, `STOP`),
//! `VOLUME` (base units; `N%` of the portfolio value, `Na%` of the
//! available holdings), `PRICE`, `STOP_PRICE`, `TAKE_PROFIT_PRICE`,
//! `REDUCE_ONLY`, `TAG`. Keys are read ignoring case.
//!
//! Refused (422): `Ns%`/`Nt%` volumes and delta prices (`10d`, `-5%`),
//! which need market data to become a figure; several take-profit levels;
//! a cancel filtered by side or tag (the signal's cancel cancels every
//! open order).

use serde_json::{Map, Value};

use super::formats::{Input, Read};
use super::template::{Field, Fields};
use crate::sources::MappingSettings;

fn params(text: &str) -> Option<Vec<(String, String)>> {
    text.replace("\\n", "\n")
        .split(['\n', ';'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim().to_owned()))
        })
        .collect()
}

/// `KEY=VALUE` lines with a `SIGNAL` key.
pub fn detect(input: &Input) -> bool {
    input
        .text()
        .and_then(params)
        .is_some_and(|p| p.iter().any(|(k, _)| k == "SIGNAL"))
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let Some(params) = input.text().and_then(params) else {
        return Err(vec!["OctoBot signals are KEY=VALUE lines".into()]);
    };
    let mut p = Map::new();
    for (k, v) in params {
        if p.insert(k.clone(), Value::String(v)).is_some() {
            return Err(vec![format!("OctoBot parameter {k} is given twice")]);
        }
    }
    fn get(p: &Map<String, Value>, k: &str) -> Option<String> {
        p.get(k).and_then(Value::as_str).map(str::to_owned)
    }
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    let reduce_only = get(&p, "REDUCE_ONLY").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match get(&p, "SIGNAL").map(|s| s.to_ascii_uppercase()).as_deref() {
        Some("BUY") if reduce_only => f.set_str(Field::Action, "SIGNAL", "close_short"),
        Some("SELL") if reduce_only => f.set_str(Field::Action, "SIGNAL", "close_long"),
        Some("BUY") => f.set_str(Field::Action, "SIGNAL", "buy"),
        Some("SELL") => f.set_str(Field::Action, "SIGNAL", "sell"),
        Some("CANCEL") if p.contains_key("PARAM_SIDE") || p.contains_key("TAG") => reasons.push(
            "OctoBot CANCEL filtered by PARAM_SIDE or TAG cancels only some orders; the \
             signal's cancel cancels every open order"
                .into(),
        ),
        Some("CANCEL") => f.set_str(Field::Action, "SIGNAL", "cancel"),
        Some(other) => reasons.push(format!("OctoBot SIGNAL={other} is not BUY, SELL or CANCEL")),
        None => reasons.push("OctoBot signal without SIGNAL: no tradable action".into()),
    }
    if let Some(v) = get(&p, "VOLUME") {
        let lower = v.to_ascii_lowercase();
        let (value, unit) = if let Some(n) = lower.strip_suffix("a%") {
            (n.to_owned(), Some("percent_of_balance"))
        } else if lower.ends_with("s%") || lower.ends_with("t%") {
            (lower.clone(), None)
        } else if let Some(n) = lower.strip_suffix('%') {
            (n.to_owned(), Some("percent_of_equity"))
        } else {
            (lower.clone(), Some("units"))
        };
        match unit {
            Some(unit) => {
                f.set_str(Field::Quantity, "VOLUME", &value);
                f.set_str(Field::SizeUnit, "VOLUME", unit);
            }
            None => reasons.push(format!(
                "OctoBot VOLUME={v} is a percent of holdings of some assets only; no size unit \
                 says that"
            )),
        }
    }
    let take_profits = p
        .keys()
        .filter(|k| k.starts_with("TAKE_PROFIT_PRICE"))
        .count();
    if take_profits > 1 {
        reasons.push(format!(
            "OctoBot alert sets {take_profits} take-profit levels; a signal carries one"
        ));
    }
    let tp_key = p
        .keys()
        .find(|k| k.starts_with("TAKE_PROFIT_PRICE"))
        .cloned();
    for (field, key) in [
        (Field::Price, Some("PRICE".to_string())),
        (Field::StopLoss, Some("STOP_PRICE".to_string())),
        (Field::TakeProfit, tp_key),
    ] {
        let Some(key) = key else { continue };
        if let Some(v) = get(&p, &key) {
            let relative = v.ends_with(['d', 'D', '%']);
            if relative {
                reasons.push(format!(
                    "OctoBot {key}={v} is relative to the current price, which the message \
                     does not carry"
                ));
            } else {
                f.take(field, &mut p, &key);
            }
        }
    }
    f.take_each(
        &mut p,
        &[
            (Field::Symbol, "SYMBOL"),
            (Field::Exchange, "EXCHANGE"),
            (Field::OrderType, "ORDER_TYPE"),
        ],
    );
    for key in ["SIGNAL", "VOLUME"] {
        p.shift_remove(key);
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = p;
    Ok(f)
}
