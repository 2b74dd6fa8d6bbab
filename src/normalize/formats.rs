//! Which adapter reads a payload. Each external format is one adapter file
//! (citing the documentation it follows); this table tries them in order,
//! the most specific first: a platform is recognised by fields only it
//! uses, and anything else falls through to the generic JSON template and
//! plain-text readers. A source may force its format (`format = "okx"`),
//! or map a vendor format field by field (`[sources.<name>.mapping]`).

use serde_json::Value;

use super::template::Fields;
use super::{
    alertatron, autoview, exchange_bot, finandy, mapping, metaapi, octobot, okx, pickmytrade,
    pineconnector, plaintext, template, threecommas, traderspost, tradingconnector, wundertrading,
};
use crate::sources::{FormatChoice, MappingSettings, SourceKind};

/// A body as an adapter receives it: parsed JSON, or UTF-8 text.
pub enum Input {
    Json(Value),
    Text(String),
}

impl Input {
    /// The JSON object, if the body is one.
    pub fn object(&self) -> Option<&serde_json::Map<String, Value>> {
        match self {
            Input::Json(Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Input::Text(t) => Some(t),
            Input::Json(_) => None,
        }
    }
}

/// What an adapter made of a body.
pub type Read = Result<Fields, Vec<String>>;

/// One format.
pub struct Adapter {
    /// The `format = …` setting that forces this adapter.
    pub choice: FormatChoice,
    /// `format` in the published signal.
    pub name: &'static str,
    /// Its name for TradingView sources, where that differs.
    pub name_tradingview: Option<&'static str>,
    /// `true` when the body is in this format (fields only it uses).
    pub detect: fn(&Input) -> bool,
    pub read: fn(Input, Option<&MappingSettings>) -> Read,
    /// Secrets the format carries outside `key=value` pairs and JSON
    /// credential fields (PineConnector's licence id, the bot id in a
    /// WunderTrading code), redacted wherever their text occurs.
    pub secrets: fn(&Input) -> Vec<String>,
    /// `true` when a JSON `id` field identifies one signal. OKX's `id`
    /// repeats across fills, a TradingView `id` is usually
    /// `{{strategy.order.id}}` ("Long"): neither is.
    pub trusts_id: bool,
}

/// Payload fields taken as the sender's own id, first present wins.
const ID_FIELDS: &[&str] = &["idempotency_key", "event_id", "id"];
const EXPLICIT_ID_FIELDS: &[&str] = &["idempotency_key", "event_id"];

impl Adapter {
    pub fn name(&self, kind: SourceKind) -> &'static str {
        match (kind, self.name_tradingview) {
            (SourceKind::Tradingview, Some(n)) => n,
            _ => self.name,
        }
    }

    pub fn id_fields(&self, kind: SourceKind) -> &'static [&'static str] {
        if self.trusts_id && kind == SourceKind::Custom {
            ID_FIELDS
        } else {
            EXPLICIT_ID_FIELDS
        }
    }
}

fn no_secrets(_: &Input) -> Vec<String> {
    Vec::new()
}

fn never(_: &Input) -> bool {
    false
}

/// The adapters tried by content, in order; the last two always match.
pub static ADAPTERS: &[Adapter] = &[
    Adapter {
        choice: FormatChoice::Canonical,
        name: "canonical",
        name_tradingview: None,
        detect: template::is_canonical_input,
        read: template::read_canonical_input,
        secrets: no_secrets,
        trusts_id: true,
    },
    Adapter {
        choice: FormatChoice::ThreeCommas,
        name: "3commas_dca",
        name_tradingview: None,
        detect: threecommas::is_dca,
        read: threecommas::read_dca,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::ThreeCommas,
        name: "3commas_signal_bot",
        name_tradingview: None,
        detect: threecommas::is_signal_bot,
        read: threecommas::read_signal_bot,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::Okx,
        name: "okx_signal_bot",
        name_tradingview: None,
        detect: okx::detect,
        read: okx::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::TradersPost,
        name: "traderspost",
        name_tradingview: None,
        detect: traderspost::detect,
        read: traderspost::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::WunderTrading,
        name: "wundertrading",
        name_tradingview: None,
        detect: wundertrading::detect,
        read: wundertrading::read,
        secrets: wundertrading::bot_id,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::PickMyTrade,
        name: "pickmytrade",
        name_tradingview: None,
        detect: pickmytrade::detect,
        read: pickmytrade::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::MetaApi,
        name: "metaapi",
        name_tradingview: None,
        detect: metaapi::detect,
        read: metaapi::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::Finandy,
        name: "finandy",
        name_tradingview: None,
        detect: finandy::detect,
        read: finandy::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::ExchangeBot,
        name: "exchange_bot",
        name_tradingview: None,
        detect: exchange_bot::detect,
        read: exchange_bot::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::PineConnector,
        name: "pineconnector",
        name_tradingview: None,
        detect: pineconnector::detect,
        read: pineconnector::read,
        secrets: pineconnector::licence_id,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::Alertatron,
        name: "alertatron",
        name_tradingview: None,
        detect: alertatron::detect,
        read: alertatron::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::AutoView,
        name: "autoview",
        name_tradingview: None,
        detect: autoview::detect,
        read: autoview::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::OctoBot,
        name: "octobot",
        name_tradingview: None,
        detect: octobot::detect,
        read: octobot::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::TradingConnector,
        name: "tradingconnector",
        name_tradingview: None,
        detect: tradingconnector::detect,
        read: tradingconnector::read,
        secrets: no_secrets,
        trusts_id: false,
    },
    Adapter {
        choice: FormatChoice::Template,
        name: "json_template",
        name_tradingview: Some("tradingview_json"),
        detect: template::is_json,
        read: template::read_template_input,
        secrets: no_secrets,
        trusts_id: true,
    },
    Adapter {
        choice: FormatChoice::Template,
        name: "text",
        name_tradingview: Some("tradingview_text"),
        detect: |_| true,
        read: plaintext::read,
        secrets: no_secrets,
        trusts_id: false,
    },
];

/// A source's own mapping (`[sources.<name>.mapping]`).
pub static MAPPING: Adapter = Adapter {
    choice: FormatChoice::Auto,
    name: "mapping",
    name_tradingview: None,
    detect: never,
    read: mapping::read,
    secrets: no_secrets,
    trusts_id: false,
};

/// The adapter for `input`: by content, or among those `choice` forces
/// (the first that recognises the body, else the first of them, which
/// then says what it misses).
pub fn pick(choice: FormatChoice, input: &Input) -> &'static Adapter {
    let candidates = ADAPTERS
        .iter()
        .filter(|a| choice == FormatChoice::Auto || a.choice == choice);
    let mut first = None;
    for a in candidates {
        if (a.detect)(input) {
            return a;
        }
        first.get_or_insert(a);
    }
    match first {
        Some(a) if choice != FormatChoice::Auto => a,
        _ => &ADAPTERS[ADAPTERS.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_forced_format_has_an_adapter() {
        for choice in [
            FormatChoice::Canonical,
            FormatChoice::Template,
            FormatChoice::ThreeCommas,
            FormatChoice::TradersPost,
            FormatChoice::PineConnector,
            FormatChoice::Alertatron,
            FormatChoice::WunderTrading,
            FormatChoice::Okx,
            FormatChoice::AutoView,
            FormatChoice::ExchangeBot,
            FormatChoice::PickMyTrade,
            FormatChoice::Finandy,
            FormatChoice::OctoBot,
            FormatChoice::TradingConnector,
            FormatChoice::MetaApi,
        ] {
            assert!(ADAPTERS.iter().any(|a| a.choice == choice), "{choice:?}");
        }
    }
}
