//! `REDIS_URL`, in any of its forms: parsed or refused without a panic, and described
//! (for logs and errors) without a panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstime_server::redis::target::RedisTarget;

fuzz_target!(|raw: &str| {
    match RedisTarget::parse(raw) {
        Ok(target) => {
            let _ = (target.to_string(), format!("{target:?}"), target.kind(), target.uses_tls());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
