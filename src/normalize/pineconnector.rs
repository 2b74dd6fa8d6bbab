//! PineConnector alerts, TradingView to MetaTrader
//! (docs.pineconnector.com/syntax and /cheatsheet).
//!
//! `LicenseID,Command,Symbol,key=value,…`: "Components must be separated
//! by commas", with or without spaces around them. The first field is the
//! trader's licence id (a credential, redacted), never a ticker. Commands:
//! `buy` (`long`, `bull`, `bullish`), `sell` (`short`, `bear`, `bearish`),
//! `closelong`, `closeshort`. `risk=` is "required for ALL entry
//! commands" and means what the EA's Volume Type setting says (lots,
//! dollars, percent of balance, …): unit `risk`, never a quantity.
//! `vol_lots=` is lots.
//!
//! Refused (422): `sl=`, `tp=`, `price=` (pips, price or percent by the
//! EA's Target Type setting, not the message), pending orders
//! (`buystop`, `selllimit`, …, priced the same way), side-filtered
//! cancels, `newsltp…`, and `eaon`/`eaoff` (EA switches, not trades).

use serde_json::{Map, Value};

use super::formats::{Input, Read};
use super::template::{Field, Fields};
use crate::sources::MappingSettings;

fn parts(text: &str) -> Vec<&str> {
    text.trim().split(',').map(str::trim).collect()
}

fn is_licence(field: &str) -> bool {
    (6..=20).contains(&field.len()) && field.bytes().all(|b| b.is_ascii_digit())
}

/// A licence id, then a command word (no `=`), then a symbol.
pub fn detect(input: &Input) -> bool {
    input.text().is_some_and(|t| {
        let p = parts(t);
        p.len() >= 3 && is_licence(p[0]) && !p[1].contains('=') && !p[1].is_empty()
    })
}

/// The licence id, to redact from the raw body.
pub fn licence_id(input: &Input) -> Vec<String> {
    let p = parts(input.text().unwrap_or_default());
    match p.first() {
        Some(first) if p.len() >= 3 && is_licence(first) => vec![(*first).to_owned()],
        _ => Vec::new(),
    }
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let Input::Text(text) = input else {
        return Err(vec!["a PineConnector alert is plain text".into()]);
    };
    let p = parts(&text);
    if p.len() < 3 {
        return Err(vec![
            "PineConnector alerts are LicenseID,Command,Symbol[,key=value…]".into(),
        ]);
    }
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    let command = p[1].to_ascii_lowercase();
    let action = match command.as_str() {
        "buy" | "long" | "bull" | "bullish" => Some("buy"),
        "sell" | "short" | "bear" | "bearish" => Some("sell"),
        "closelong" => Some("close_long"),
        "closeshort" => Some("close_short"),
        "buystop" | "buylimit" | "sellstop" | "selllimit" => {
            reasons.push(format!(
                "PineConnector {command} is a pending order priced by price=, whose unit (pips, \
                 price or percent) is the EA's Target Type setting, not the message"
            ));
            None
        }
        "cancellong" | "cancelshort" => {
            reasons.push(format!(
                "PineConnector {command} cancels one side's pending orders; the signal's \
                 cancel cancels every open order"
            ));
            None
        }
        "eaon" | "eaoff" => {
            reasons.push(format!(
                "PineConnector {command} switches the EA on or off; it is not a trade"
            ));
            None
        }
        other => {
            reasons.push(format!(
                "PineConnector command {other:?} has no canonical action (buy, sell, \
                 closelong, closeshort)"
            ));
            None
        }
    };
    if let Some(a) = action {
        f.set_str(Field::Action, "command", a);
    }
    f.set_str(Field::Symbol, "symbol", p[2]);
    let mut extra = Map::new();
    let mut sizes = 0;
    for param in &p[3..] {
        let Some((k, v)) = param.split_once('=') else {
            reasons.push(format!(
                "PineConnector parameter {param:?} is not key=value"
            ));
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k.to_ascii_lowercase().as_str() {
            "risk" => {
                sizes += 1;
                f.set_str(Field::Quantity, k, v);
                f.set_str(Field::SizeUnit, k, "risk");
            }
            "vol_lots" => {
                sizes += 1;
                f.set_str(Field::Quantity, k, v);
                f.set_str(Field::SizeUnit, k, "lots");
            }
            "sl" | "tp" | "price" => reasons.push(format!(
                "PineConnector {k}={v}: pips, price or percent by the EA's Target Type setting; \
                 the message does not say which"
            )),
            _ => {
                extra.insert(k.to_owned(), Value::String(v.to_owned()));
            }
        }
    }
    if sizes > 1 {
        reasons.push("PineConnector alert gives both risk= and vol_lots=".into());
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = extra;
    Ok(f)
}
