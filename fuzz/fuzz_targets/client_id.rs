//! `?id=`: any text a client sends is accepted exactly when the id rules allow it, and an
//! accepted id is that text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstime_protocol::{client_id::MAX_LEN, ClientId};

fuzz_target!(|raw: &str| {
    let allowed = (1..=MAX_LEN).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match ClientId::parse(raw) {
        Ok(id) => {
            assert!(allowed, "accepted {raw:?}");
            assert_eq!(id.as_str(), raw);
            assert_eq!(id.to_string(), raw);
        }
        Err(_) => assert!(!allowed, "refused {raw:?}"),
    }
});
