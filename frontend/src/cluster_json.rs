//! Reading the `/cluster` answer with the browser's own JSON parser.
//!
//! The page reads one small JSON document. Reading it with serde_json linked a JSON parser,
//! its error messages and float parsing into the wasm; `JSON.parse` is already in every
//! browser, and walking its result with `Reflect` costs a few hundred bytes (the cut is
//! measured in docs/architecture.md). The server and the cluster tool keep serde: this
//! reader must accept what [`ClusterView::parse`] accepts, which the browser tests check
//! on the contract's example.

use js_sys::{Array, Reflect, JSON};
use wasm_bindgen::JsValue;
use wstime_protocol::{ClusterView, Health, InstanceEntry};

/// Reads an answer; the error says which field was missing or of the wrong kind.
pub fn parse(json: &str) -> Result<ClusterView, String> {
    let root = JSON::parse(json).map_err(|_| "not JSON".to_owned())?;
    let list = field(&root, "instances")?;
    if !Array::is_array(&list) {
        return Err(wrong("instances", "a list"));
    }
    let instances: Result<Vec<_>, _> =
        Array::from(&list).iter().map(|entry| instance(&entry)).collect();
    Ok(ClusterView {
        answered_by: text(&root, "answered_by")?,
        shared: flag(&root, "shared")?,
        instances: instances?,
    })
}

/// One instance of the list.
fn instance(entry: &JsValue) -> Result<InstanceEntry, String> {
    let health = text(entry, "health")?;
    Ok(InstanceEntry {
        name: text(entry, "name")?,
        address: text(entry, "address")?,
        connections: count(entry, "connections")?,
        max_connections: count(entry, "max_connections")?,
        load: field(entry, "load")?.as_f64().ok_or_else(|| wrong("load", "a number"))?,
        health: Health::from_name(&health),
        draining: flag(entry, "draining")?,
        version: text(entry, "version")?,
        started_unix_ms: count(entry, "started_unix_ms")?,
        // Optional, as `#[serde(default)]` makes it for the server's readers.
        refreshed_ms_ago: match Reflect::get(entry, &"refreshed_ms_ago".into()) {
            Ok(value) if !value.is_undefined() => whole(&value, "refreshed_ms_ago")?,
            _ => 0,
        },
        // Rebalancing reads it; the panel does not.
        checked_ms_ago: None,
    })
}

/// The field `name` of `object`, which must be a JSON object that has it.
fn field(object: &JsValue, name: &str) -> Result<JsValue, String> {
    if !object.is_object() {
        return Err(wrong(name, "inside an object"));
    }
    Reflect::get(object, &name.into())
        .ok()
        .filter(|value| !value.is_undefined())
        .ok_or_else(|| format!("no {name} field"))
}

fn text(object: &JsValue, name: &str) -> Result<String, String> {
    field(object, name)?.as_string().ok_or_else(|| wrong(name, "text"))
}

fn flag(object: &JsValue, name: &str) -> Result<bool, String> {
    field(object, name)?.as_bool().ok_or_else(|| wrong(name, "true or false"))
}

fn count(object: &JsValue, name: &str) -> Result<u64, String> {
    whole(&field(object, name)?, name)
}

/// A whole number from 0 up, as serde reads a `u64`.
fn whole(value: &JsValue, name: &str) -> Result<u64, String> {
    match value.as_f64() {
        Some(number) if number >= 0.0 && number.fract() == 0.0 && number < u64::MAX as f64 => {
            Ok(number as u64)
        }
        _ => Err(wrong(name, "a whole number")),
    }
}

fn wrong(name: &str, expected: &str) -> String {
    format!("{name} should be {expected}")
}
