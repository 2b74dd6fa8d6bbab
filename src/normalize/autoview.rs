//! AutoView commands (autoview.com/syntax; the OANDA command reference at
//! autoview.com/builder/oanda gives the examples used in the tests).
//!
//! One command is space-separated `key=value` parameters: `s=` symbol,
//! `e=` exchange, `b=` book (`buy`/`long`, `sell`/`short`), `c=` cancel or
//! close (`order` | `position`), `q=` quantity (`0.01`, or `50%` of the
//! balance, of the equity with `y=equity`, of the position when closing),
//! `t=` order type, `l=` leverage, `fp=` fixed price. `c=position b=long`
//! closes a long; it does not buy.
//!
//! Refused (422), because one signal would misstate them: several commands
//! in one alert (new lines or `|`), a cancel of one side's orders only,
//! a quantity range (randomised), and `p=`/`sl=`/`tp=`, which AutoView
//! reads as offsets from the current price whose base the message does
//! not carry.

use serde_json::{Map, Value};

use super::formats::{Input, Read};
use super::template::{Field, Fields};
use crate::sources::MappingSettings;

/// AutoView's parameter names (the ones this adapter may meet).
const KEYS: &[&str] = &[
    "a", "b", "c", "cm", "cmo", "e", "q", "s", "t", "l", "p", "fp", "y", "sl", "tp", "ts", "delay",
    "d", "dt", "close", "cot", "eh", "ab", "aid", "amr", "ar", "bcc", "cc", "ro", "u",
];

fn pairs(line: &str) -> Option<Vec<(&str, &str)>> {
    line.split_whitespace()
        .map(|t| t.split_once('='))
        .collect::<Option<Vec<_>>>()
}

/// Every token a `key=value` with a short lower-case AutoView-style key
/// (AutoView has dozens; the ones read here are listed in [`KEYS`]), a
/// symbol, and a book or a cancel/close.
pub fn detect(input: &Input) -> bool {
    let Some(text) = input.text() else {
        return false;
    };
    text.split(['\n', '|'])
        .filter(|l| !l.trim().is_empty())
        .all(|line| {
            pairs(line).is_some_and(|p| {
                let has = |k: &str| p.iter().any(|(key, _)| *key == k);
                let autoview_key = |k: &str| {
                    KEYS.contains(&k)
                        || (1..=5).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_lowercase())
                };
                p.iter().all(|(k, _)| autoview_key(k)) && has("s") && (has("b") || has("c"))
            })
        })
}

pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let Input::Text(text) = input else {
        return Err(vec!["an AutoView command is plain text".into()]);
    };
    let commands: Vec<&str> = text
        .split(['\n', '|'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if commands.len() != 1 {
        return Err(vec![format!(
            "AutoView alert holds {} commands: each is its own order, and one signal carries one; \
             send one command per alert",
            commands.len()
        )]);
    }
    let params = pairs(commands[0])
        .ok_or_else(|| vec!["AutoView parameters must be key=value".to_string()])?;
    let mut p: Map<String, Value> = Map::new();
    for (k, v) in params {
        if p.insert(k.to_owned(), Value::String(v.to_owned()))
            .is_some()
        {
            return Err(vec![format!("AutoView parameter {k}= is given twice")]);
        }
    }
    fn get(p: &Map<String, Value>, k: &str) -> Option<String> {
        p.get(k)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    }
    let book = get(&p, "b");
    let mut f = Fields::default();
    let mut reasons = Vec::new();
    let side = |b: &str| match b {
        "buy" | "long" => Some("long"),
        "sell" | "short" => Some("short"),
        _ => None,
    };
    let action = match (get(&p, "c").as_deref(), book.as_deref()) {
        (Some("position"), None | Some("all")) => Some("close"),
        (Some("position"), Some(b)) => match side(b) {
            Some("long") => Some("close_long"),
            Some(_) => Some("close_short"),
            None => None,
        },
        (Some("order"), None | Some("all")) => Some("cancel"),
        (Some("order"), Some(b)) => {
            reasons.push(format!(
                "AutoView c=order b={b} cancels only one side's orders; the signal's cancel \
                 cancels every open order"
            ));
            None
        }
        (Some(c), _) => {
            reasons.push(format!("AutoView c={c} is not order or position"));
            None
        }
        (None, Some(b)) => match side(b) {
            Some("long") => Some("buy"),
            Some(_) => Some("sell"),
            None => None,
        },
        (None, None) => None,
    };
    match action {
        Some(a) => f.set_str(Field::Action, "b", a),
        None if reasons.is_empty() => reasons.push(format!(
            "AutoView b={} is not buy, long, sell or short",
            book.unwrap_or_default()
        )),
        None => {}
    }
    let closing = action.is_some_and(|a| a.starts_with("close"));
    for key in ["p", "sl", "tp", "ts"] {
        if let Some(v) = get(&p, key).filter(|v| v != "0") {
            reasons.push(format!(
                "AutoView {key}={v} is an offset from the current price; its base is not in \
                 the message, so it cannot be published as a price"
            ));
        }
    }
    if let Some(q) = p.shift_remove("q").as_ref().and_then(Value::as_str) {
        let (value, unit) = match q.strip_suffix('%') {
            Some(v) if closing => (v, "percent_of_position"),
            Some(v) if get(&p, "y").as_deref() == Some("equity") => (v, "percent_of_equity"),
            Some(v) => (v, "percent_of_balance"),
            None => (q, "units"),
        };
        if value.contains('-') {
            reasons.push(format!(
                "AutoView q={q} is a random range; one signal needs one size"
            ));
        } else {
            f.set_str(Field::Quantity, "q", value);
            f.set_str(Field::SizeUnit, "q", unit);
        }
    }
    f.take_each(
        &mut p,
        &[
            (Field::Symbol, "s"),
            (Field::Exchange, "e"),
            (Field::OrderType, "t"),
            (Field::Leverage, "l"),
            (Field::Price, "fp"),
        ],
    );
    for key in ["b", "c"] {
        p.shift_remove(key);
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    f.extra = p;
    Ok(f)
}
