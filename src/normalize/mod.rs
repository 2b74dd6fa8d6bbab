//! The normalizer stage: turns an authenticated payload into one canonical,
//! versioned [`NormalizedSignal`], or into the list of reasons it cannot.
//!
//! Pure CPU, no I/O. The payload is read by its content, not its
//! Content-Type (TradingView labels JSON with a trailing newline
//! `text/plain`). Fields it does not map are kept under `extra`; a value
//! that still holds an unreplaced `{{placeholder}}` is refused, never zeroed.

pub mod fields;
pub mod plaintext;
pub mod signal;
pub mod template;

use actix::prelude::*;
use bytes::Bytes;
use serde_json::Value;

use crate::config::SourceKind;
use crate::error::GatewayError;
use crate::stage::{guarded, MAILBOX_CAPACITY};
use fields::Sign;
use signal::{Instrument, NormalizedSignal, Strategy, NORMALIZED_SCHEMA};
use template::{Field, Fields};

/// Longest symbol or exchange accepted.
pub const MAX_SYMBOL_LEN: usize = 64;

/// Who and when, stamped on the signal by the gateway.
#[derive(Clone, Debug)]
pub struct Meta {
    pub event_id: String,
    pub corr_id: String,
    pub source: String,
    pub source_kind: SourceKind,
    pub received_at: String,
}

/// Message in: a payload to normalize.
#[derive(Message)]
#[rtype(result = "Result<Result<NormalizedSignal, Vec<String>>, GatewayError>")]
pub struct Normalize {
    pub meta: Meta,
    pub body: Bytes,
    /// The body parsed as JSON, if it is JSON.
    pub json: Option<Value>,
}

/// One normalizer per HTTP worker; it holds no state.
pub struct Normalizer;

impl Actor for Normalizer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Normalizer {}

impl Handler<Normalize> for Normalizer {
    type Result = Result<Result<NormalizedSignal, Vec<String>>, GatewayError>;

    fn handle(&mut self, msg: Normalize, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, "normalizer", move || {
            Ok(normalize(&msg.meta, &msg.body, msg.json))
        })
    }
}

/// Picks the adapter by content and runs it.
pub fn normalize(
    meta: &Meta,
    body: &[u8],
    json: Option<Value>,
) -> Result<NormalizedSignal, Vec<String>> {
    let tv = meta.source_kind == SourceKind::Tradingview;
    match json {
        Some(Value::Object(obj)) if template::is_canonical(&obj) => {
            build(template::read_canonical(obj), meta, "canonical")
        }
        Some(Value::Object(obj)) => {
            let format = if tv {
                "tradingview_json"
            } else {
                "json_template"
            };
            build(template::read_template(obj), meta, format)
        }
        Some(_) => Err(vec!["JSON body must be an object".into()]),
        None => {
            let text = std::str::from_utf8(body)
                .map_err(|_| vec!["body is neither JSON nor UTF-8 text".to_string()])?;
            if fields::has_placeholder(text) {
                return Err(vec![format!(
                    "body holds an unreplaced placeholder: {}",
                    first_placeholder(text)
                )]);
            }
            let format = if tv { "tradingview_text" } else { "text" };
            match plaintext::parse(text) {
                Ok(map) => build(template::read_template(map), meta, format),
                Err(reason) => {
                    let mut reasons = vec![reason];
                    if looks_like_json(text) {
                        if let Err(e) = serde_json::from_str::<Value>(text) {
                            reasons.insert(0, format!("body is not valid JSON: {e}"));
                        }
                    }
                    Err(reasons)
                }
            }
        }
    }
}

fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with(['{', '['])
}

fn first_placeholder(text: &str) -> &str {
    let start = text.find("{{").unwrap_or(0);
    let end = text[start..]
        .find("}}")
        .map(|e| start + e + 2)
        .unwrap_or(text.len());
    &text[start..end]
}

/// Builds the signal from what an adapter read, collecting every problem.
fn build(f: Fields, meta: &Meta, format: &'static str) -> Result<NormalizedSignal, Vec<String>> {
    let mut reasons = Vec::new();
    for picked in f.picked() {
        if let Some(p) = fields::find_placeholder(&picked.value, &picked.key) {
            reasons.push(format!("unreplaced placeholder: {p}"));
        }
    }
    if let Some(p) = fields::find_placeholder(&Value::Object(f.extra.clone()), "") {
        reasons.push(format!("unreplaced placeholder: {p}"));
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }

    let mut text_of = |field: Field, what: &str| -> Option<String> {
        let picked = f.get(field)?;
        match fields::text(&picked.value) {
            Some(s) => Some(s),
            None if picked.value.is_null() => None,
            None if matches!(picked.value, Value::String(_)) => None,
            None => {
                reasons.push(format!("{} must be {what}", picked.key));
                None
            }
        }
    };
    let symbol_text = text_of(Field::Symbol, "a string");
    let exchange_text = text_of(Field::Exchange, "a string");
    let action_text = text_of(Field::Action, "a string");
    let order_type_text = text_of(Field::OrderType, "a string");
    let name = text_of(Field::StrategyName, "a string");
    let order_id = text_of(Field::OrderId, "a string");
    let comment = text_of(Field::Comment, "a string");
    let market_text = text_of(Field::MarketPosition, "a string");
    let prev_market_text = text_of(Field::PrevMarketPosition, "a string");
    let interval = text_of(Field::Interval, "a string or number");

    let instrument = match symbol_text {
        None => {
            reasons.push("a symbol is required (symbol, ticker, instrument or pair)".into());
            None
        }
        Some(sym) => instrument(&sym, exchange_text, &mut reasons),
    };
    let action = match action_text {
        None => {
            reasons.push("an action is required (action, side or strategy.order_action)".into());
            None
        }
        Some(a) => {
            let mapped = fields::action(&a);
            if mapped.is_none() {
                reasons.push(format!(
                    "action {a:?} is not one of buy, sell, close, close_long, close_short, cancel \
                     (or a known synonym such as long, short, exit)"
                ));
            }
            mapped
        }
    };
    let order_type = order_type_text.and_then(|t| {
        let mapped = fields::order_type(&t);
        if mapped.is_none() {
            reasons.push(format!(
                "order_type {t:?} is not one of market, limit, stop, stop_limit"
            ));
        }
        mapped
    });
    let mut position = |field: Field, value: Option<String>| {
        value.and_then(|t| {
            let mapped = fields::market_position(&t);
            if mapped.is_none() {
                let key = f.get(field).map(|p| p.key.as_str()).unwrap_or_default();
                reasons.push(format!("{key} {t:?} is not one of long, short, flat"));
            }
            mapped
        })
    };
    let market_position = position(Field::MarketPosition, market_text);
    let prev_market_position = position(Field::PrevMarketPosition, prev_market_text);

    let mut dec = |field: Field, sign: Sign| -> Option<String> {
        let picked = f.get(field)?;
        fields::decimal(&picked.key, &picked.value, sign)
            .map_err(|e| reasons.push(e))
            .ok()
            .flatten()
    };
    let quantity = dec(Field::Quantity, Sign::NonNegative);
    let price = dec(Field::Price, Sign::NonNegative);
    let stop_loss = dec(Field::StopLoss, Sign::NonNegative);
    let take_profit = dec(Field::TakeProfit, Sign::NonNegative);
    let position_size = dec(Field::PositionSize, Sign::Any);
    let asserted_at = f.get(Field::AssertedAt).and_then(|p| {
        fields::timestamp(&p.key, &p.value)
            .map_err(|e| reasons.push(e))
            .ok()
            .flatten()
    });

    if !reasons.is_empty() {
        return Err(reasons);
    }
    let (Some(instrument), Some(action)) = (instrument, action) else {
        return Err(vec!["symbol and action are required".into()]);
    };
    let strategy = Strategy {
        name,
        order_id,
        comment,
        position_size,
        market_position,
        prev_market_position,
    };
    Ok(NormalizedSignal {
        schema: NORMALIZED_SCHEMA,
        event_id: meta.event_id.clone(),
        corr_id: meta.corr_id.clone(),
        source: meta.source.clone(),
        source_kind: meta.source_kind.as_str(),
        format,
        received_at: meta.received_at.clone(),
        asserted_at,
        instrument,
        action,
        quantity,
        price,
        order_type,
        stop_loss,
        take_profit,
        strategy: (!strategy.is_empty()).then_some(strategy),
        interval,
        extra: f.extra,
    })
}

/// `BINANCE:BTCUSDT` carries its exchange unless one is given separately.
fn instrument(
    sym: &str,
    exchange: Option<String>,
    reasons: &mut Vec<String>,
) -> Option<Instrument> {
    let (prefix, symbol) = match sym.split_once(':') {
        Some((ex, s)) if !ex.is_empty() && !s.is_empty() => (Some(ex.to_owned()), s.to_owned()),
        _ => (None, sym.to_owned()),
    };
    let exchange = exchange.or(prefix);
    let sane = |s: &str| {
        !s.is_empty() && s.len() <= MAX_SYMBOL_LEN && s.chars().all(|c| c.is_ascii_graphic())
    };
    if !sane(&symbol) {
        reasons.push(format!(
            "symbol {symbol:?} must be 1-{MAX_SYMBOL_LEN} visible ASCII characters"
        ));
        return None;
    }
    if let Some(ex) = &exchange {
        if !sane(ex) {
            reasons.push(format!(
                "exchange {ex:?} must be 1-{MAX_SYMBOL_LEN} visible ASCII characters"
            ));
            return None;
        }
    }
    Some(Instrument { symbol, exchange })
}

#[cfg(test)]
mod tests {
    use super::signal::Action;
    use super::*;

    fn meta(kind: SourceKind) -> Meta {
        Meta {
            event_id: "e".into(),
            corr_id: "c".into(),
            source: "s".into(),
            source_kind: kind,
            received_at: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn json(text: &str) -> Option<Value> {
        serde_json::from_str(text).ok()
    }

    #[test]
    fn tradingview_strategy_template() {
        let body = r#"{"time":"{{timenow}}","ticker":"BTCUSDT"}"#;
        let err =
            normalize(&meta(SourceKind::Tradingview), body.as_bytes(), json(body)).unwrap_err();
        assert!(err[0].contains("{{timenow}}"), "{err:?}");

        let body = r#"{"time":"2024-05-01T10:00:00Z","exchange":"BINANCE","ticker":"BTCUSDT",
            "bar":{"open":1.5,"close":2.25},
            "strategy":{"position_size":0.30000000000000004,"order_action":"buy","order_contracts":0.1,
            "order_price":64000.10,"order_id":"Long","market_position":"long","prev_market_position":"flat"}}"#;
        let s = normalize(&meta(SourceKind::Tradingview), body.as_bytes(), json(body)).unwrap();
        assert_eq!(s.action, Action::Buy);
        assert_eq!(s.quantity.as_deref(), Some("0.1"));
        assert_eq!(s.price.as_deref(), Some("64000.10"));
        let strategy = s.strategy.unwrap();
        assert_eq!(
            strategy.position_size.as_deref(),
            Some("0.30000000000000004")
        );
        assert_eq!(strategy.order_id.as_deref(), Some("Long"));
        assert_eq!(s.instrument.exchange.as_deref(), Some("BINANCE"));
        assert_eq!(s.extra["bar"]["close"].to_string(), "2.25");
        assert_eq!(s.format, "tradingview_json");
    }

    #[test]
    fn unquoted_placeholder_makes_invalid_json_and_is_refused() {
        let body = r#"{"ticker":"BTCUSDT","action":"buy","qty":{{strategy.order.contracts}}}"#;
        let err =
            normalize(&meta(SourceKind::Tradingview), body.as_bytes(), json(body)).unwrap_err();
        assert!(err[0].contains("{{strategy.order.contracts}}"), "{err:?}");
    }

    #[test]
    fn every_problem_is_reported() {
        let body = r#"{"ticker":"","action":"hodl","qty":"-1","order_type":"iceberg"}"#;
        let err = normalize(&meta(SourceKind::Custom), body.as_bytes(), json(body)).unwrap_err();
        assert_eq!(err.len(), 4, "{err:?}");
    }

    #[test]
    fn canonical_pass_through() {
        let body = r#"{"instrument":{"symbol":"ETH-USD","exchange":"COINBASE"},"action":"close_short",
            "quantity":"1.25","order_type":"limit","price":"3000","extra":{"note":"x"},"desk":"A"}"#;
        let s = normalize(&meta(SourceKind::Custom), body.as_bytes(), json(body)).unwrap();
        assert_eq!(s.format, "canonical");
        assert_eq!(s.action, Action::CloseShort);
        assert_eq!(s.extra["note"], "x");
        assert_eq!(s.extra["desk"], "A");
    }

    #[test]
    fn plain_text_with_exchange_prefix() {
        let body = b"sell NYSE:BRK.B 10";
        let s = normalize(&meta(SourceKind::Tradingview), body, None).unwrap();
        assert_eq!(s.instrument.symbol, "BRK.B");
        assert_eq!(s.instrument.exchange.as_deref(), Some("NYSE"));
        assert_eq!(s.format, "tradingview_text");
    }
}
