//! A vendor format that is not built in, mapped in configuration without
//! code (`[sources.<name>.mapping]`): each canonical field is a JSON
//! pointer (RFC 6901) into the body, the vendor's action values map to
//! canonical actions, and the size names its unit, fixed or read from a
//! field with a value map. Whatever the mapping does not name stays in
//! `extra`. A value the mapping cannot place (an action or unit not in
//! its maps) is 422, never a guess.

use serde_json::Value;

use super::fields::{self, text};
use super::formats::{Input, Read};
use super::template::{Field, Fields};
use crate::sources::MappingSettings;

/// Removes and returns the value at `pointer`.
fn take(doc: &mut Value, pointer: &str) -> Option<Value> {
    let (parent, last) = pointer.rsplit_once('/')?;
    let last = last.replace("~1", "/").replace("~0", "~");
    let parent = if parent.is_empty() {
        Some(doc)
    } else {
        doc.pointer_mut(parent)
    }?;
    match parent {
        Value::Object(map) => map.shift_remove(&last),
        Value::Array(items) => {
            let i: usize = last.parse().ok()?;
            (i < items.len()).then(|| items.remove(i))
        }
        _ => None,
    }
    .filter(|v| !v.is_null())
}

/// The value at a mapping's `id` pointer, the payload's own id.
pub fn payload_id(doc: &Value, m: &MappingSettings) -> Option<String> {
    m.id.as_deref().and_then(|p| doc.pointer(p)).and_then(text)
}

pub fn read(input: Input, mapping: Option<&MappingSettings>) -> Read {
    let Some(m) = mapping else {
        return Err(vec!["no mapping is configured for this source".into()]);
    };
    let Input::Json(mut doc @ Value::Object(_)) = input else {
        return Err(vec![
            "this source's mapping reads JSON objects; the body is not one".into(),
        ]);
    };
    let mut f = Fields::default();
    let mut reasons = Vec::new();

    match take(&mut doc, &m.action).as_ref().and_then(text) {
        None => reasons.push(format!("no action at {}", m.action)),
        Some(vendor) => {
            let mapped = if m.action_values.is_empty() {
                fields::action(&vendor).map(|a| serde_json::to_value(a).unwrap_or_default())
            } else {
                m.action_values
                    .get(&vendor)
                    .or_else(|| {
                        m.action_values
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(&vendor))
                            .map(|(_, v)| v)
                    })
                    .map(|a| Value::String(a.clone()))
            };
            match mapped {
                Some(a) => f.set(Field::Action, m.action.clone(), a),
                None => reasons.push(format!(
                    "action {vendor:?} at {} is not in this source's action_values",
                    m.action
                )),
            }
        }
    }
    if let Some(size) = &m.size {
        if let Some(value) = take(&mut doc, size) {
            let unit = match (&m.size_unit, &m.size_unit_from) {
                (Some(u), _) => Some(u.clone()),
                (None, Some(from)) => {
                    let vendor = take(&mut doc, from).as_ref().and_then(text);
                    match vendor.as_ref().and_then(|v| m.size_unit_values.get(v)) {
                        Some(u) => Some(u.clone()),
                        None => {
                            reasons.push(format!(
                                "size unit {:?} at {from} is not in this source's \
                                 size_unit_values",
                                vendor.unwrap_or_default()
                            ));
                            None
                        }
                    }
                }
                (None, None) => None,
            };
            if let Some(u) = unit {
                f.set(Field::Quantity, size.clone(), value);
                f.set_str(Field::SizeUnit, size.clone(), &u);
            }
        }
    }
    for (field, pointer) in [
        (Field::Symbol, Some(&m.symbol)),
        (Field::Exchange, m.exchange.as_ref()),
        (Field::Currency, m.currency.as_ref()),
        (Field::Price, m.price.as_ref()),
        (Field::OrderType, m.order_type.as_ref()),
        (Field::StopLoss, m.stop_loss.as_ref()),
        (Field::TakeProfit, m.take_profit.as_ref()),
        (Field::Leverage, m.leverage.as_ref()),
        (Field::AssertedAt, m.time.as_ref()),
    ] {
        if let Some(p) = pointer {
            if let Some(v) = take(&mut doc, p) {
                f.set(field, p.clone(), v);
            }
        }
    }
    for (field, unit) in [
        (Field::StopLossUnit, &m.stop_loss_unit),
        (Field::TakeProfitUnit, &m.take_profit_unit),
    ] {
        if let Some(u) = unit {
            f.set_str(field, "mapping", u);
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    if let Value::Object(rest) = doc {
        f.extra = rest;
    }
    Ok(f)
}
