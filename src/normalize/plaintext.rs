//! TradingView plain-text alerts. The raw text is always published as is;
//! it is normalized only when it has one of these documented forms:
//!
//! 1. `key=value` pairs separated by spaces, commas, semicolons or new lines:
//!    `action=buy symbol=BTCUSDT qty=0.5 price=42000` (keys as in JSON templates);
//! 2. `action symbol [quantity] [@ price]`, e.g. `buy BTCUSDT 0.5 @ 42000`;
//! 3. TradingView's default strategy message:
//!    `Name (params): order buy @ 1 filled on BTCUSDT. New strategy position is 1`.
//!
//! Anything else answers 422 with the reason.

use serde_json::{Map, Value};

use super::fields;
use super::formats::{Input, Read};
use super::template;
use crate::sources::MappingSettings;

/// The generic plain-text adapter: one of the forms above, read as a
/// template; otherwise 422 with the reason (and the JSON parse error when
/// the text was meant to be JSON).
pub fn read(input: Input, _: Option<&MappingSettings>) -> Read {
    let Input::Text(text) = input else {
        return Err(vec!["JSON body must be an object".into()]);
    };
    match parse(&text) {
        Ok(map) => template::generic(template::read_template(map)),
        Err(reason) => {
            let mut reasons = vec![reason];
            if text.trim_start().starts_with(['{', '[']) {
                if let Err(e) = serde_json::from_str::<Value>(&text) {
                    reasons.insert(0, format!("body is not valid JSON: {e}"));
                }
            }
            Err(reasons)
        }
    }
}

/// Parses `text` into a JSON object of string values for the template
/// reader, or explains why it could not.
pub fn parse(text: &str) -> Result<Map<String, Value>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("body is empty".into());
    }
    if let Some(map) = default_strategy_message(text) {
        return map;
    }
    if text.contains('=') {
        return key_values(text);
    }
    positional(text)
}

fn key_values(text: &str) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for pair in text
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("plain text: {pair:?} is not a key=value pair"))?;
        if k.is_empty() {
            return Err(format!("plain text: {pair:?} has no key"));
        }
        map.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    Ok(map)
}

/// `action symbol [quantity] [@ price]`; symbol and quantity may swap places.
fn positional(text: &str) -> Result<Map<String, Value>, String> {
    let unknown = || {
        format!(
            "plain text {:?} is not a recognised form: use key=value pairs, \
             'action symbol [quantity] [@ price]', or JSON",
            truncate(text, 80)
        )
    };
    let tokens: Vec<&str> = text
        .split_whitespace()
        .flat_map(|t| match t.strip_prefix('@') {
            Some("") => vec!["@"],
            Some(rest) => vec!["@", rest],
            None => vec![t],
        })
        .collect();
    let (first, rest) = tokens.split_first().ok_or_else(unknown)?;
    if fields::action(first).is_none() {
        return Err(unknown());
    }
    let mut map = Map::new();
    map.insert("action".into(), Value::String((*first).to_owned()));
    let mut after_at = false;
    for token in rest {
        let is_number = token
            .trim_start_matches(['-', '+'])
            .starts_with(|c: char| c.is_ascii_digit());
        let key = match (*token, is_number, after_at) {
            ("@", _, _) => {
                after_at = true;
                continue;
            }
            (_, true, true) => "price",
            (_, true, false) if !map.contains_key("quantity") => "quantity",
            (_, true, false) => "price",
            (_, false, _) if !map.contains_key("symbol") => "symbol",
            _ => return Err(unknown()),
        };
        if map.contains_key(key) {
            return Err(unknown());
        }
        map.insert(key.into(), Value::String((*token).to_owned()));
    }
    Ok(map)
}

/// `… order {action} @ {contracts} filled on {ticker}. New strategy position is {size}`
fn default_strategy_message(text: &str) -> Option<Result<Map<String, Value>, String>> {
    let (head, tail) = text.split_once("order ")?;
    let (action, tail) = tail.split_once(" @ ")?;
    let (contracts, tail) = tail.split_once(" filled on ")?;
    let (ticker, tail) = tail.split_once(". New strategy position is ")?;
    let position = tail.trim().trim_end_matches('.');
    let mut map = Map::new();
    let action = match fields::order_meaning(action.trim(), contracts.trim(), position) {
        Some(Err(reason)) => return Some(Err(reason)),
        Some(Ok(meaning)) => fields::action_name(meaning).to_owned(),
        None => action.trim().to_owned(),
    };
    map.insert("action".into(), Value::String(action));
    map.insert("quantity".into(), Value::String(contracts.trim().into()));
    map.insert("symbol".into(), Value::String(ticker.trim().into()));
    map.insert("position_size".into(), Value::String(position.into()));
    let name = head.trim().trim_end_matches(':').trim();
    if !name.is_empty() {
        map.insert("strategy_name".into(), Value::String(name.into()));
    }
    Some(Ok(map))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_form() {
        let m = parse("action=buy symbol=BTCUSDT, qty=0.5; price=42000\n").unwrap();
        assert_eq!(m["action"], "buy");
        assert_eq!(m["qty"], "0.5");
        assert_eq!(m["price"], "42000");
    }

    #[test]
    fn positional_forms() {
        let m = parse("BUY BINANCE:BTCUSDT 0.5 @ 42000.5").unwrap();
        assert_eq!(m["symbol"], "BINANCE:BTCUSDT");
        assert_eq!(m["quantity"], "0.5");
        assert_eq!(m["price"], "42000.5");
        let m = parse("sell 2 ES1!").unwrap();
        assert_eq!(m["quantity"], "2");
        assert_eq!(m["symbol"], "ES1!");
        let m = parse("close AAPL @42").unwrap();
        assert_eq!(m["price"], "42");
    }

    #[test]
    fn tradingview_default_strategy_message() {
        let m = parse(
            "My Strategy (20, 50): order sell @ 3 filled on NASDAQ:AAPL. New strategy position is -3",
        )
        .unwrap();
        assert_eq!(m["action"], "sell");
        assert_eq!(m["quantity"], "3");
        assert_eq!(m["symbol"], "NASDAQ:AAPL");
        assert_eq!(m["position_size"], "-3");
        assert_eq!(m["strategy_name"], "My Strategy (20, 50)");
    }

    #[test]
    fn prose_is_refused() {
        assert!(parse("Price crossed the moving average").is_err());
        assert!(parse("buy BTCUSDT ETHUSDT").is_err());
        assert!(parse("").is_err());
    }
}
