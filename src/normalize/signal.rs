//! The message formats the gateway publishes, mirrored by the JSON Schemas
//! in `schemas/` (tests validate every published message against them).
//! Prices and sizes are decimal strings, never floats, and a size always
//! carries its unit: "5 % of equity" is `{"value": "5", "unit":
//! "percent_of_equity"}`, never a bare quantity of 5.

use serde::{Deserialize, Serialize};

use crate::config::NormalizedSchema;
use serde_json::{Map, Value};

/// `schema` value of a normalized signal, version 2 (sizes with units).
pub const NORMALIZED_SCHEMA: &str = "signal.normalized.v2";
/// `schema` value of the version-1 rendering, kept for agents not yet on v2.
pub const NORMALIZED_SCHEMA_V1: &str = "signal.normalized.v1";

/// What the signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Buy,
    Sell,
    /// Close the whole position, whichever side.
    Close,
    CloseLong,
    CloseShort,
    /// Cancel open orders.
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    Market,
    Limit,
    Stop,
    StopLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketPosition {
    Long,
    Short,
    Flat,
}

/// What a size counts. Only [`SizeUnit::Units`] and [`SizeUnit::Contracts`]
/// are quantities of the instrument; everything else needs the receiving
/// agent's account state (equity, balance, position, price) to become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeUnit {
    /// Base units: coins, shares.
    Units,
    Contracts,
    /// Forex/CFD lots.
    Lots,
    /// An amount of the quote currency (the order's notional).
    Quote,
    /// An amount of the margin currency, before leverage.
    Margin,
    PercentOfEquity,
    PercentOfBalance,
    PercentOfPosition,
    /// Percent of the investment configured in the receiving bot.
    PercentOfAllocation,
    /// Percent of equity put at risk (distance to the stop decides the size).
    RiskPercent,
    /// A currency amount put at risk.
    RiskQuote,
    /// A risk figure whose meaning the receiving platform's own settings
    /// decide (PineConnector's `risk=`).
    Risk,
}

impl SizeUnit {
    pub const ALL: [SizeUnit; 12] = [
        SizeUnit::Units,
        SizeUnit::Contracts,
        SizeUnit::Lots,
        SizeUnit::Quote,
        SizeUnit::Margin,
        SizeUnit::PercentOfEquity,
        SizeUnit::PercentOfBalance,
        SizeUnit::PercentOfPosition,
        SizeUnit::PercentOfAllocation,
        SizeUnit::RiskPercent,
        SizeUnit::RiskQuote,
        SizeUnit::Risk,
    ];

    /// The name used in the schema and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SizeUnit::Units => "units",
            SizeUnit::Contracts => "contracts",
            SizeUnit::Lots => "lots",
            SizeUnit::Quote => "quote",
            SizeUnit::Margin => "margin",
            SizeUnit::PercentOfEquity => "percent_of_equity",
            SizeUnit::PercentOfBalance => "percent_of_balance",
            SizeUnit::PercentOfPosition => "percent_of_position",
            SizeUnit::PercentOfAllocation => "percent_of_allocation",
            SizeUnit::RiskPercent => "risk_percent",
            SizeUnit::RiskQuote => "risk_quote",
            SizeUnit::Risk => "risk",
        }
    }

    pub fn parse(s: &str) -> Option<SizeUnit> {
        SizeUnit::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// `true` when the value is a count of the instrument itself, the only
    /// kind the v1 `quantity` field may carry.
    pub fn is_instrument_quantity(self) -> bool {
        matches!(self, SizeUnit::Units | SizeUnit::Contracts)
    }
}

/// How large the order is, and in what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Size {
    /// A non-negative decimal.
    pub value: String,
    pub unit: SizeUnit,
    /// The currency of a quote, margin or risk amount, when the message says.
    pub currency: Option<String>,
}

/// What a stop-loss or take-profit figure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelUnit {
    /// An absolute price.
    Price,
    /// A distance from the entry, in percent.
    Percent,
    Pips,
    Points,
    /// A distance expressed as a currency amount of profit or loss.
    Quote,
}

impl LevelUnit {
    pub const ALL: [LevelUnit; 5] = [
        LevelUnit::Price,
        LevelUnit::Percent,
        LevelUnit::Pips,
        LevelUnit::Points,
        LevelUnit::Quote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LevelUnit::Price => "price",
            LevelUnit::Percent => "percent",
            LevelUnit::Pips => "pips",
            LevelUnit::Points => "points",
            LevelUnit::Quote => "quote",
        }
    }

    pub fn parse(s: &str) -> Option<LevelUnit> {
        LevelUnit::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

/// A stop-loss or take-profit: a price, or a distance in some unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Level {
    pub value: String,
    pub unit: LevelUnit,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Instrument {
    pub symbol: String,
    pub exchange: Option<String>,
    /// Base and quote asset, when the format states them (3Commas `USDT_ETH`,
    /// OKX `BTC-USDT-SWAP`).
    pub base: Option<String>,
    pub quote: Option<String>,
}

/// TradingView strategy context, when the alert came from a strategy.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Strategy {
    pub name: Option<String>,
    pub order_id: Option<String>,
    pub comment: Option<String>,
    pub position_size: Option<String>,
    pub market_position: Option<MarketPosition>,
    pub prev_market_position: Option<MarketPosition>,
}

impl Strategy {
    pub fn is_empty(&self) -> bool {
        *self == Strategy::default()
    }
}

/// The canonical signal published on `signals.normalized` (schema v2).
/// Only `normalize/` makes one (`Normalized::stamp`): the `sealed` field
/// cannot be named outside it.
#[derive(Debug, Clone, Serialize)]
pub struct NormalizedSignal {
    pub schema: &'static str,
    pub event_id: String,
    pub corr_id: String,
    pub source: String,
    pub source_kind: &'static str,
    /// Which adapter read the payload.
    pub format: &'static str,
    pub received_at: String,
    /// When the sender says the signal happened (its `time` field).
    pub asserted_at: Option<String>,
    pub instrument: Instrument,
    pub action: Action,
    pub size: Option<Size>,
    pub price: Option<String>,
    pub order_type: Option<OrderType>,
    pub stop_loss: Option<Level>,
    pub take_profit: Option<Level>,
    pub leverage: Option<String>,
    pub strategy: Option<Strategy>,
    pub interval: Option<String>,
    /// Every input field the normalizer did not map, kept as sent
    /// (credentials removed).
    pub extra: Map<String, Value>,
    #[serde(skip)]
    pub(in crate::normalize) _sealed: Sealed,
}

/// Made only inside `normalize/`, so only it can make a [`NormalizedSignal`].
#[derive(Debug, Clone, Copy)]
pub struct Sealed(());

impl Sealed {
    pub(in crate::normalize) const NEW: Sealed = Sealed(());
}

/// The same signal in schema v1, for agents not yet reading v2
/// (`nats.normalized_schema = "v1"`). v1 has no units, so it never puts a
/// size that is not a count of the instrument in `quantity`, nor a
/// distance in `stop_loss`/`take_profit`: those are null there, and the
/// v2 values are kept under `extra` (`extra.size`, `extra.stop_loss`, …).
#[derive(Debug, Clone, Serialize)]
pub struct NormalizedSignalV1 {
    pub schema: &'static str,
    pub event_id: String,
    pub corr_id: String,
    pub source: String,
    pub source_kind: &'static str,
    pub format: &'static str,
    pub received_at: String,
    pub asserted_at: Option<String>,
    pub instrument: InstrumentV1,
    pub action: Action,
    pub quantity: Option<String>,
    pub price: Option<String>,
    pub order_type: Option<OrderType>,
    pub stop_loss: Option<String>,
    pub take_profit: Option<String>,
    pub strategy: Option<Strategy>,
    pub interval: Option<String>,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InstrumentV1 {
    pub symbol: String,
    pub exchange: Option<String>,
}

impl NormalizedSignal {
    /// The signal as `signals.normalized` carries it, in `version`: its
    /// schema name and its JSON.
    pub fn document(
        &self,
        version: NormalizedSchema,
    ) -> serde_json::Result<(&'static str, Vec<u8>)> {
        match version {
            NormalizedSchema::V2 => serde_json::to_vec(self).map(|d| (self.schema, d)),
            NormalizedSchema::V1 => {
                let v1 = self.to_v1();
                serde_json::to_vec(&v1).map(|d| (v1.schema, d))
            }
        }
    }

    /// The v1 rendering (see [`NormalizedSignalV1`]).
    pub fn to_v1(&self) -> NormalizedSignalV1 {
        let mut extra = self.extra.clone();
        let mut keep = |key: &str, value: Value| {
            extra.insert(key.to_owned(), value);
        };
        let quantity = match &self.size {
            Some(size) if size.unit.is_instrument_quantity() => Some(size.value.clone()),
            Some(size) => {
                keep("size", serde_json::to_value(size).unwrap_or_default());
                None
            }
            None => None,
        };
        let mut level = |key: &str, level: &Option<Level>| match level {
            Some(l) if l.unit == LevelUnit::Price => Some(l.value.clone()),
            Some(l) => {
                keep(key, serde_json::to_value(l).unwrap_or_default());
                None
            }
            None => None,
        };
        let stop_loss = level("stop_loss", &self.stop_loss);
        let take_profit = level("take_profit", &self.take_profit);
        if let Some(lev) = &self.leverage {
            extra.insert("leverage".into(), Value::String(lev.clone()));
        }
        NormalizedSignalV1 {
            schema: NORMALIZED_SCHEMA_V1,
            event_id: self.event_id.clone(),
            corr_id: self.corr_id.clone(),
            source: self.source.clone(),
            source_kind: self.source_kind,
            format: self.format,
            received_at: self.received_at.clone(),
            asserted_at: self.asserted_at.clone(),
            instrument: InstrumentV1 {
                symbol: self.instrument.symbol.clone(),
                exchange: self.instrument.exchange.clone(),
            },
            action: self.action,
            quantity,
            price: self.price.clone(),
            order_type: self.order_type,
            stop_loss,
            take_profit,
            strategy: self.strategy.clone(),
            interval: self.interval.clone(),
            extra,
        }
    }
}
