//! Tolerant field access on a JSON object that keeps each value's exact text, so that
//! money can be read without going through `f64`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::amount::{amount_from_json, Amount};

/// A JSON object whose values are kept as their raw text.
pub(crate) struct RawObject(BTreeMap<String, Box<RawValue>>);

impl RawObject {
    /// Parses `text` as a JSON object; `None` when it is anything else.
    pub(crate) fn parse(text: &str) -> Option<RawObject> {
        serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(text)
            .ok()
            .map(RawObject)
    }

    pub(crate) fn raw(&self, name: &str) -> Option<&RawValue> {
        self.0.get(name).map(|v| &**v)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The nested object at `name`, if it is one.
    pub(crate) fn object(&self, name: &str) -> Option<RawObject> {
        self.raw(name).and_then(|raw| RawObject::parse(raw.get()))
    }

    /// The value at `name` as a [`Value`] (`None` when absent or unparsable).
    pub(crate) fn value(&self, name: &str) -> Option<Value> {
        self.raw(name)
            .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
    }

    /// A string field; a number is accepted as its text (ids such as `bank_id`); `null`,
    /// absent and other types are `None`.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        match self.value(name)? {
            Value::String(s) => Some(s),
            Value::Number(_) => self.raw(name).map(|raw| raw.get().trim().to_string()),
            _ => None,
        }
    }

    /// A string field that must not be blank, trimmed.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.string(name)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// A money field read from its exact text: `Ok(None)` when absent or `null`, an
    /// error naming the field when it is present but not an exact amount.
    pub(crate) fn amount(&self, name: &str) -> Result<Option<Amount>, String> {
        match self.raw(name) {
            None => Ok(None),
            Some(raw) => amount_from_json(raw.get())
                .map_err(|e| format!("`{name}` is not an exact amount ({e})")),
        }
    }

    /// A timestamp such as `2023-02-02T07:05:23.000000Z`; `None` when absent or
    /// unreadable (timestamps never decide anything).
    pub(crate) fn timestamp(&self, name: &str) -> Option<DateTime<Utc>> {
        self.string(name)
            .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
            .map(|t| t.with_timezone(&Utc))
    }
}
