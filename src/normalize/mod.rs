//! The normalizer stage: turns an authenticated payload into one canonical,
//! versioned [`NormalizedSignal`], or into the list of reasons it cannot,
//! and makes the body safe to publish (credentials redacted, see
//! [`credentials`]).
//!
//! Pure CPU, no I/O. The payload is read by its content, not its
//! Content-Type (TradingView labels JSON with a trailing newline
//! `text/plain`): each external format is one adapter file, tried in the
//! order of [`formats::ADAPTERS`], or forced per source with `format = …`,
//! or mapped field by field with `[sources.<name>.mapping]`. Fields it does
//! not map are kept under `extra`; a value that still holds an unreplaced
//! `{{placeholder}}` is refused, never zeroed; a size is never published
//! without its unit; when a message's meaning is unclear it is refused
//! with the reason rather than guessed.

pub mod alertatron;
pub mod autoview;
pub mod credentials;
pub mod exchange_bot;
pub mod fields;
pub mod finandy;
pub mod formats;
pub mod mapping;
pub mod metaapi;
pub mod octobot;
pub mod okx;
pub mod pickmytrade;
pub mod pineconnector;
pub mod plaintext;
pub mod signal;
pub mod template;
pub mod threecommas;
pub mod traderspost;
pub mod tradingconnector;
pub mod wundertrading;

use actix::prelude::*;
use bytes::Bytes;
use serde_json::{Map, Value};
use std::sync::Arc;

use crate::error::GatewayError;
use crate::records::Meta;
use crate::sources::{FormatChoice, MappingSettings, SourceConfig, SourceKind};
use crate::stage::{guarded, Traced};
use fields::Sign;
use formats::Input;
use signal::{
    Instrument, Level, LevelUnit, NormalizedSignal, Size, SizeUnit, Strategy, NORMALIZED_SCHEMA,
};
use template::{Field, Fields};

/// Longest symbol or exchange accepted.
pub const MAX_SYMBOL_LEN: usize = 64;

/// How one source's payloads are read.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    pub kind: SourceKind,
    pub format: FormatChoice,
    pub mapping: Option<&'a MappingSettings>,
    /// The source's own credential field names, squashed.
    pub redact_fields: &'a [String],
}

impl<'a> Options<'a> {
    pub fn of(source: &'a SourceConfig) -> Self {
        Options {
            kind: source.kind,
            format: source.format,
            mapping: source.mapping.as_ref(),
            redact_fields: &source.redact_fields,
        }
    }

    /// A source of `kind` with every setting at its default.
    pub fn defaults(kind: SourceKind) -> Options<'static> {
        Options {
            kind,
            format: FormatChoice::Auto,
            mapping: None,
            redact_fields: &[],
        }
    }

    fn policy(&self) -> credentials::Policy<'a> {
        credentials::Policy {
            extra_names: self.redact_fields,
        }
    }
}

/// Message in: a payload to normalize.
#[derive(Message)]
#[rtype(result = "Result<Normalized, GatewayError>")]
pub struct Normalize {
    pub source: Arc<SourceConfig>,
    pub body: Bytes,
    /// The body parsed as JSON, if it is JSON.
    pub json: Option<Value>,
}

/// What the normalizer made of a payload, before the gateway stamps who
/// and when on it ([`Normalized::stamp`]).
#[derive(Debug)]
pub struct Normalized {
    /// The body as it may be published: credentials redacted.
    pub body: Bytes,
    /// Which adapter read it.
    pub format: &'static str,
    /// The payload's own id, when its format carries one that identifies
    /// one signal (the idempotency key after the header and sender id).
    pub payload_id: Option<String>,
    outcome: Result<Draft, Vec<String>>,
}

/// A signal without the gateway's stamp.
#[derive(Debug)]
struct Draft {
    asserted_at: Option<String>,
    instrument: Instrument,
    action: signal::Action,
    size: Option<Size>,
    price: Option<String>,
    order_type: Option<signal::OrderType>,
    stop_loss: Option<Level>,
    take_profit: Option<Level>,
    leverage: Option<String>,
    strategy: Option<Strategy>,
    interval: Option<String>,
    extra: Map<String, Value>,
}

impl Normalized {
    /// The canonical signal with `meta` stamped on it, or why there is none.
    pub fn stamp(self, meta: &Meta) -> (Bytes, Result<NormalizedSignal, Vec<String>>) {
        let format = self.format;
        let signal = self.outcome.map(|d| NormalizedSignal {
            schema: NORMALIZED_SCHEMA,
            event_id: meta.event_id.clone(),
            corr_id: meta.corr_id.clone(),
            source: meta.source.clone(),
            source_kind: meta.source_kind.as_str(),
            format,
            received_at: meta.received_at.clone(),
            asserted_at: d.asserted_at,
            instrument: d.instrument,
            action: d.action,
            size: d.size,
            price: d.price,
            order_type: d.order_type,
            stop_loss: d.stop_loss,
            take_profit: d.take_profit,
            leverage: d.leverage,
            strategy: d.strategy,
            interval: d.interval,
            extra: d.extra,
            _sealed: signal::Sealed::NEW,
        });
        (self.body, signal)
    }
}

/// One normalizer per HTTP worker; it holds no state.
pub struct Normalizer;

crate::stage::stage_actor!(Normalizer);

impl Handler<Traced<Normalize>> for Normalizer {
    type Result = Result<Normalized, GatewayError>;

    fn handle(&mut self, msg: Traced<Normalize>, ctx: &mut Context<Self>) -> Self::Result {
        let Traced(msg, span) = msg;
        let _in = span.entered();
        guarded(ctx, "normalizer", move || {
            Ok(read(Options::of(&msg.source), &msg.body, msg.json))
        })
    }
}

/// Parses `body` as JSON if it is JSON (whitespace around it, and a
/// leading UTF-8 byte-order mark as some Windows tools write, allowed):
/// the one body reader of the live path, `at-gateway dlq` and the fuzzers.
pub fn parse_json(body: &[u8]) -> Option<Value> {
    const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    serde_json::from_slice::<Value>(body).ok()
}

/// Normalizes with a source's default settings and stamps `meta` (the
/// fuzz targets' entry point).
pub fn normalize(
    meta: &Meta,
    body: &[u8],
    json: Option<Value>,
) -> Result<NormalizedSignal, Vec<String>> {
    read(
        Options::defaults(meta.source_kind),
        &Bytes::copy_from_slice(body),
        json,
    )
    .stamp(meta)
    .1
}

/// Reads a payload: picks the adapter, redacts credentials, maps fields.
pub fn read(opts: Options<'_>, body: &Bytes, json: Option<Value>) -> Normalized {
    let input = match json {
        Some(v) => Input::Json(v),
        None => match std::str::from_utf8(body) {
            Ok(t) => Input::Text(t.to_owned()),
            Err(_) => return refused(body.clone(), "text", "body is neither JSON nor UTF-8 text"),
        },
    };
    let adapter = match opts.mapping {
        Some(_) => &formats::MAPPING,
        None => formats::pick(opts.format, &input),
    };
    let name = adapter.name(opts.kind);

    // Credentials go before anything else reads the body.
    let policy = opts.policy();
    let mut parts = (adapter.secrets)(&input);
    parts.retain(|s| !s.is_empty() && s != credentials::REDACTED);
    let (input, body) = match input {
        Input::Json(mut v) => {
            let secrets = credentials::scrub_json(&mut v, policy);
            credentials::scrub_parts(&mut v, &parts);
            let body = credentials::redact_body(body, &secrets, &parts, Some(&v));
            (Input::Json(v), body)
        }
        Input::Text(t) => {
            let mut secrets = credentials::scan_text(&t, policy);
            secrets.retain(|s| s != credentials::REDACTED);
            let body = credentials::redact_body(body, &secrets, &parts, None);
            let text = String::from_utf8_lossy(&body).into_owned();
            (Input::Text(text), body)
        }
    };
    if let Input::Text(t) = &input {
        if fields::has_placeholder(t) {
            let reason = format!(
                "body holds an unreplaced placeholder: {}",
                first_placeholder(t)
            );
            return refused(body, name, &reason);
        }
    }
    let payload_id = match (&input, opts.mapping) {
        (Input::Json(v), Some(m)) => mapping::payload_id(v, m),
        (Input::Json(v), None) => payload_id(v, adapter.id_fields(opts.kind)),
        (Input::Text(_), _) => None,
    };
    let outcome = (adapter.read)(input, opts.mapping).and_then(|mut f| {
        credentials::drop_from(&mut f.extra, policy);
        build(f)
    });
    Normalized {
        body,
        format: name,
        payload_id,
        outcome,
    }
}

fn refused(body: Bytes, format: &'static str, reason: &str) -> Normalized {
    Normalized {
        body,
        format,
        payload_id: None,
        outcome: Err(vec![reason.to_owned()]),
    }
}

/// The payload's own id: a string or integer in one of `fields`.
fn payload_id(v: &Value, fields: &[&str]) -> Option<String> {
    let obj = v.as_object()?;
    fields.iter().find_map(|f| match obj.get(*f)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn first_placeholder(text: &str) -> &str {
    let start = text.find("{{").unwrap_or(0);
    let end = text[start..]
        .find("}}")
        .map(|e| start + e + 2)
        .unwrap_or(text.len());
    &text[start..end]
}

/// Builds the draft signal from what an adapter read, collecting every
/// problem.
fn build(f: Fields) -> Result<Draft, Vec<String>> {
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
    let unit_text = text_of(Field::SizeUnit, "a string");
    let currency = text_of(Field::Currency, "a string");
    let sl_unit_text = text_of(Field::StopLossUnit, "a string");
    let tp_unit_text = text_of(Field::TakeProfitUnit, "a string");
    let base = text_of(Field::Base, "a string");
    let quote = text_of(Field::Quote, "a string");

    let instrument = match symbol_text {
        None => {
            reasons.push("a symbol is required (symbol, ticker, instrument or pair)".into());
            None
        }
        Some(sym) => instrument(&sym, exchange_text, &mut reasons).map(|mut i| {
            i.base = base;
            i.quote = quote;
            i
        }),
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
    let leverage = dec(Field::Leverage, Sign::NonNegative);
    let position_size = dec(Field::PositionSize, Sign::Any);
    let asserted_at = f.get(Field::AssertedAt).and_then(|p| {
        fields::timestamp(&p.key, &p.value)
            .map_err(|e| reasons.push(e))
            .ok()
            .flatten()
    });

    // A size always carries its unit. Adapters name it; a generic template's
    // size counts contracts when its key says so (TradingView's
    // `{{strategy.order.contracts}}`), else units of the instrument.
    let size = quantity.and_then(|value| {
        let unit = match &unit_text {
            Some(u) => SizeUnit::parse(u).or_else(|| {
                reasons.push(format!(
                    "size unit {u:?} is not one of {}",
                    SizeUnit::ALL.map(SizeUnit::as_str).join(", ")
                ));
                None
            })?,
            None => {
                let key = f.get(Field::Quantity).map(|p| p.key.to_ascii_lowercase());
                if key.is_some_and(|k| k.ends_with("contracts")) {
                    SizeUnit::Contracts
                } else {
                    SizeUnit::Units
                }
            }
        };
        Some(Size {
            value,
            unit,
            currency: currency.clone(),
        })
    });
    let mut level = |value: Option<String>, unit: &Option<String>, what: &str| {
        let value = value?;
        let unit = match unit {
            None => LevelUnit::Price,
            Some(u) => LevelUnit::parse(u).or_else(|| {
                reasons.push(format!(
                    "{what} unit {u:?} is not one of {}",
                    LevelUnit::ALL.map(LevelUnit::as_str).join(", ")
                ));
                None
            })?,
        };
        Some(Level { value, unit })
    };
    let stop_loss = level(stop_loss, &sl_unit_text, "stop_loss");
    let take_profit = level(take_profit, &tp_unit_text, "take_profit");

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
    Ok(Draft {
        asserted_at,
        instrument,
        action,
        size,
        price,
        order_type,
        stop_loss,
        take_profit,
        leverage,
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
    Some(Instrument {
        symbol,
        exchange,
        base: None,
        quote: None,
    })
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
        let size = s.size.as_ref().unwrap();
        assert_eq!(size.value, "0.1");
        assert_eq!(size.unit, SizeUnit::Contracts);
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

    /// The README's table of platform messages ("For traders"), each as
    /// published there.
    #[test]
    fn a_strategy_order_is_read_with_the_position_after_it() {
        let read_action = |body: &str| {
            let n = read(
                Options::defaults(SourceKind::Tradingview),
                &Bytes::from(body.to_owned()),
                parse_json(body.as_bytes()),
            );
            n.stamp(&meta(SourceKind::Tradingview))
                .1
                .map(|s| fields::action_name(s.action))
        };
        let body = |action: &str, contracts: &str, after: &str| {
            format!(
                r#"{{"ticker":"BTCUSDT","action":"{action}","contracts":"{contracts}","position_size":"{after}"}}"#
            )
        };
        // A sell that takes a long to flat (or smaller) closes it.
        assert_eq!(read_action(&body("sell", "1", "0")), Ok("close_long"));
        assert_eq!(read_action(&body("sell", "1", "2")), Ok("close_long"));
        assert_eq!(read_action(&body("buy", "1", "0")), Ok("close_short"));
        // From flat, or adding, it opens.
        assert_eq!(read_action(&body("sell", "1", "-1")), Ok("sell"));
        assert_eq!(read_action(&body("buy", "2", "3")), Ok("buy"));
        // Long 1 to short 1 with one sell of 2: two trades, refused.
        let err = read_action(&body("sell", "2", "-1")).unwrap_err();
        assert!(err[0].contains("reverses"), "{err:?}");
    }

    #[test]
    fn autoview_commands_with_parameters_not_read_here_are_still_autoview() {
        let n = read(
            Options::defaults(SourceKind::Tradingview),
            &Bytes::from_static(b"e=bybit s=BTCUSDT b=long q=0.01 t=market l=5 cmo=oldest"),
            None,
        );
        assert_eq!(n.format, "autoview");
        let s = n.stamp(&meta(SourceKind::Tradingview)).1.unwrap();
        assert_eq!(s.leverage.as_deref(), Some("5"));
        assert_eq!(s.extra["cmo"], "oldest");
    }

    /// Body, format, action, size (value and unit).
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Option<(&'static str, &'static str)>,
    );

    #[test]
    fn readme_platform_examples() {
        let cases: &[Case] = &[
            (
                r#"{"secret":"s-123456","bot_uuid":"u","action":"exit_short","tv_exchange":"BYBIT","tv_instrument":"ETHUSDT.P","order":{"amount":100,"currency_type":"position_percent"}}"#,
                "3commas_signal_bot",
                "close_short",
                Some(("100", "percent_of_position")),
            ),
            (
                r#"{"message_type":"bot","bot_id":123,"email_token":"e-123456","pair":"USDT_ETH","action":"close_at_market_price"}"#,
                "3commas_dca",
                "close",
                None,
            ),
            (
                r#"{"ticker":"SPY","action":"buy","quantityType":"dollar_amount","quantity":1000}"#,
                "traderspost",
                "buy",
                Some(("1000", "quote")),
            ),
            (
                r#"{"action":"EXIT_LONG","instrument":"BTC-USDT-SWAP","signalToken":"t-123456","investmentType":"percentage_position","amount":"100"}"#,
                "okx_signal_bot",
                "close_long",
                Some(("100", "percent_of_position")),
            ),
            (
                "ENTER-LONG_BINANCE-FUTURES_BTCBUSD_MyBot_1M_5a1f03c9e7b2d486",
                "wundertrading",
                "buy",
                None,
            ),
            (
                "60123456789,buy,AUDUSD,risk=0.1",
                "pineconnector",
                "buy",
                Some(("0.1", "risk")),
            ),
            (
                "MyKeys(XBTUSD) { market(side=buy, amount=50%); }",
                "alertatron",
                "buy",
                Some(("50", "percent_of_balance")),
            ),
            (
                "e=binance s=BTCUSDT c=position b=long",
                "autoview",
                "close_long",
                None,
            ),
            (
                "EXCHANGE=binance\nSYMBOL=SOLUSDT\nVOLUME=100a%\nSIGNAL=BUY",
                "octobot",
                "buy",
                Some(("100", "percent_of_balance")),
            ),
            (
                r#"{"symbol":"NQ1!","data":"buy","quantity":"1","risk_percentage":"0","token":"k-123456"}"#,
                "pickmytrade",
                "buy",
                Some(("1", "contracts")),
            ),
            (
                r#"{"symbol":"EURUSD","type":"POSITION_TYPE_BUY","volume":0.01,"stopLoss":1.08}"#,
                "metaapi",
                "buy",
                Some(("0.01", "lots")),
            ),
            (
                r#"{"name":"n","secret":"s-123456","side":"sell","symbol":"BTCUSDT"}"#,
                "finandy",
                "sell",
                None,
            ),
            (
                "EURUSD long lotsize=0.15",
                "tradingconnector",
                "buy",
                Some(("0.15", "lots")),
            ),
            (
                r#"{"symbol":"BTCUSDT","side":"OpenLong","qty":"@0.006","leverage":"10"}"#,
                "exchange_bot",
                "buy",
                Some(("0.006", "units")),
            ),
        ];
        for (body, format, action, size) in cases {
            let body = body.to_string();
            let n = read(
                Options::defaults(SourceKind::Tradingview),
                &Bytes::from(body.clone()),
                parse_json(body.as_bytes()),
            );
            assert_eq!(n.format, *format, "{body}");
            let published = String::from_utf8_lossy(&n.body).into_owned();
            for secret in [
                "s-123456",
                "e-123456",
                "t-123456",
                "k-123456",
                "60123456789",
                "5a1f03c9e7b2d486",
            ] {
                assert!(!published.contains(secret), "{body}: {published}");
            }
            let s = n
                .stamp(&meta(SourceKind::Tradingview))
                .1
                .unwrap_or_else(|r| panic!("{body}: {r:?}"));
            assert_eq!(serde_json::to_value(s.action).unwrap(), *action, "{body}");
            let got = s.size.as_ref().map(|z| (z.value.as_str(), z.unit.as_str()));
            assert_eq!(got, *size, "{body}");
        }
    }
}
