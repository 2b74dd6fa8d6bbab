//! Alertatron scripts (alertatron.com/docs/automated-trading: "basic
//! concepts", "market order", "understanding amount and position").
//!
//! `KeysName(SYMBOL) { command(arg=value, …); … }`, often followed by a
//! `#bot` tag. `KeysName` names a stored set of exchange keys (not a
//! credential; the exchange behind it is not in the message). One signal
//! is one order, so the script must hold exactly one command:
//! - `market(side=buy|sell, amount=…)`: `amount=50%` (or `50%b`) is a
//!   percent of the balance, `50%p` of the position; with
//!   `reduceOnly=true` a sell closes (part of) a long, a buy of a short;
//! - `market(position=0)` / `limit(position=0…)` without an offset: close
//!   the position, either side;
//! - `cancel(which=all)`: cancel every open order.
//!
//! Refused (422): a bare `amount=100` ("The units depend on the symbol and
//! exchange": contracts, dollars or coins), `%a`/`%%` (of the available
//! balance, no unit says that), non-zero target positions, relative
//! offsets, scripts of several commands (`wait`, ladders, stops), and
//! side-filtered cancels.

use serde_json::{Map, Value};

use super::formats::{Input, Read};
use super::template::{Field, Fields};
use crate::sources::MappingSettings;

/// `Name(SYMBOL) {` … `}`.
fn split(text: &str) -> Option<(&str, &str, &str)> {
    let text = text.trim();
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    let close = open + text[open..].find(')')?;
    let symbol = text[open + 1..close].trim();
    let rest = text[close + 1..].trim_start();
    let body = rest.strip_prefix('{')?;
    let end = body.rfind('}')?;
    Some((name, symbol, &body[..end]))
}

pub fn detect(input: &Input) -> bool {
    input.text().and_then(split).is_some()
}

/// The commands of a script body: `name(args)`, comments (`#`) dropped.
fn commands(body: &str) -> Vec<(String, Map<String, Value>)> {
    body.lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let (name, args) = c.split_once('(').unwrap_or((c, ")"));
            let args = args.trim_end().trim_end_matches(')');
            let map = args
                .split(',')
                .filter_map(|a| a.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), Value::String(v.trim().to_owned())))
                .collect();
            (name.trim().to_owned(), map)
        })
        .collect()
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let Some((keys, symbol, body)) = input.text().and_then(split) else {
        return Err(vec![
            "Alertatron scripts are Keys(SYMBOL) { command(…); }".into()
        ]);
    };
    let cmds = commands(body);
    let [(name, args)] = cmds.as_slice() else {
        let names: Vec<&str> = cmds.iter().map(|(n, _)| n.as_str()).collect();
        return Err(vec![format!(
            "Alertatron script holds {} commands ({}); one signal is one order: send one \
             command per alert",
            cmds.len(),
            names.join(", ")
        )]);
    };
    let mut args = args.clone();
    let arg = |args: &Map<String, Value>, k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    f.set_str(Field::Symbol, "symbol", symbol);
    let reduce = arg(&args, "reduceonly")
        .or(arg(&args, "reduceOnly"))
        .as_deref()
        == Some("true");
    match name.as_str() {
        "cancel" => match arg(&args, "which").as_deref() {
            None | Some("all") => f.set_str(Field::Action, "cancel", "cancel"),
            Some(w) => reasons.push(format!(
                "Alertatron cancel(which={w}) cancels only some orders; the signal's cancel \
                 cancels every open order"
            )),
        },
        "market" | "limit" => {
            if name == "limit" {
                f.set_str(Field::OrderType, "limit", "limit");
            } else {
                f.set_str(Field::OrderType, "market", "market");
            }
            if let Some(offset) = arg(&args, "offset") {
                reasons.push(format!(
                    "Alertatron offset={offset} is relative to a price the message does not \
                     carry"
                ));
            }
            match arg(&args, "position").as_deref() {
                Some("0") => f.set_str(Field::Action, "position", "close"),
                Some(p) => reasons.push(format!(
                    "Alertatron position={p} is a target position, whose trade depends on the \
                     position held now"
                )),
                None => {
                    let side = arg(&args, "side");
                    let action = match (side.as_deref(), reduce) {
                        (Some("buy"), false) => Some("buy"),
                        (Some("sell"), false) => Some("sell"),
                        (Some("buy"), true) => Some("close_short"),
                        (Some("sell"), true) => Some("close_long"),
                        _ => None,
                    };
                    match action {
                        Some(a) => f.set_str(Field::Action, "side", a),
                        None => reasons.push(format!(
                            "Alertatron side {:?} is not buy or sell",
                            side.unwrap_or_default()
                        )),
                    }
                    amount(&arg(&args, "amount"), &mut f, &mut reasons);
                }
            }
        }
        other => reasons.push(format!(
            "Alertatron command {other}() is not a single market order, close or cancel"
        )),
    }
    for k in [
        "side",
        "amount",
        "position",
        "which",
        "reduceOnly",
        "reduceonly",
    ] {
        args.shift_remove(k);
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    args.insert("keys".into(), Value::String(keys.to_owned()));
    f.extra = args;
    Ok(f)
}

fn amount(amount: &Option<String>, f: &mut Fields, reasons: &mut Vec<String>) {
    let Some(a) = amount else { return };
    let (value, unit) = if let Some(v) = a.strip_suffix("%p") {
        (v, Some("percent_of_position"))
    } else if let Some(v) = a.strip_suffix("%b") {
        (v, Some("percent_of_balance"))
    } else if a.ends_with("%a") || a.ends_with("%%") || a.ends_with("%x") {
        (a.as_str(), None)
    } else if let Some(v) = a.strip_suffix('%') {
        (v, Some("percent_of_balance"))
    } else {
        reasons.push(format!(
            "Alertatron amount={a} has no unit in the message: \"The units depend on the symbol \
             and exchange\" (contracts, dollars or coins)"
        ));
        return;
    };
    match unit {
        Some(u) => {
            f.set_str(Field::Quantity, "amount", value);
            f.set_str(Field::SizeUnit, "amount", u);
        }
        None => reasons.push(format!(
            "Alertatron amount={a} is a percent of the available balance or of a leveraged \
             balance; no size unit says that"
        )),
    }
}
