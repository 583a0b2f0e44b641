//! The parsers of setting values: each turns one value into its type or a one-line reason,
//! which clap prints naming the setting.

use std::time::Duration;

use clap::{builder::TypedValueParser, error::ErrorKind};

use crate::{
    client_limits::ConnectRate,
    redis::{target::RedisTarget, tls::RedisCa},
};

/// A number of seconds above zero; fractions such as `0.5` are accepted (tests use them).
pub(super) fn parse_seconds(raw: &str) -> Result<Duration, String> {
    let seconds: f64 =
        raw.trim().parse().map_err(|_| format!("{raw:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0 * 365.0) {
        return Err(format!("{raw:?} must be more than 0 seconds and at most a year"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Like [`parse_seconds`], but zero is allowed (no grace, no spreading).
pub(super) fn parse_seconds_or_zero(raw: &str) -> Result<Duration, String> {
    if raw.trim().parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_seconds(raw)
}

/// A load fraction in (0, 1].
pub(super) fn parse_fraction(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(value) if value > 0.0 && value <= 1.0 => Ok(value),
        _ => Err(format!("{raw:?} must be a fraction above 0 and at most 1, such as 0.6")),
    }
}

/// A Redis URL is checked at start-up, so a typo is an error now rather than a silent
/// fallback to per-instance sessions. A parser of its own because clap's errors quote the
/// value, and a Redis URL may hold a password.
#[derive(Debug, Clone, Copy)]
pub(super) struct RedisUrlParser;

impl TypedValueParser for RedisUrlParser {
    type Value = RedisTarget;

    fn parse_ref(
        &self,
        _: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<RedisTarget, clap::Error> {
        let unusable = |reason: &dyn std::fmt::Display| unusable("REDIS_URL", reason);
        let raw = value.to_str().ok_or_else(|| unusable(&"it is not UTF-8"))?;
        RedisTarget::parse(raw).map_err(|error| unusable(&error))
    }
}

/// `on` or `off` (also `true`/`false`, `1`/`0`).
pub(super) fn parse_switch(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("{raw:?} is neither on nor off")),
    }
}

/// A per-client connect rate, or none (`0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSetting(pub Option<ConnectRate>);

pub(super) fn parse_rate(raw: &str) -> Result<RateSetting, String> {
    match raw.trim() {
        "0" => Ok(RateSetting(None)),
        rate => rate.parse().map(|rate| RateSetting(Some(rate))),
    }
}

/// `REDIS_CA_CERT` is read and checked at start-up, so a wrong path or a file that holds
/// no certificate is a one-line error now, not a TLS failure later.
pub(super) fn read_redis_ca(raw: &str) -> Result<RedisCa, String> {
    RedisCa::read(std::path::Path::new(raw)).map_err(|error| error.to_string())
}

/// The one-line error for `setting` (an environment variable; its flag is derived from it),
/// saying why it is not usable.
pub(super) fn unusable(setting: &str, reason: &dyn std::fmt::Display) -> clap::Error {
    let flag = setting.to_ascii_lowercase().replace('_', "-");
    clap::Error::raw(
        ErrorKind::ValueValidation,
        format!("{setting} (--{flag}) is not usable: {reason}\n"),
    )
}

/// A server name is shown to users and written in logs: it must be visible and one line.
pub(super) fn parse_server_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("the server name must not be empty (unset SERVER_NAME for a random one)".into());
    }
    if name.chars().any(char::is_control) || name.len() > 64 {
        return Err("the server name must be one line of at most 64 bytes".into());
    }
    Ok(name.to_owned())
}
