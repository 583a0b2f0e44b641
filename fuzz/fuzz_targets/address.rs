//! The page's address box: whatever a person types, normalising does not panic, gives a
//! `ws://` or `wss://` URL, and changes nothing when done again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstime_frontend::address::{normalise, with_client_id};

fuzz_target!(|typed: &str| {
    if let Ok(url) = normalise(typed) {
        assert!(url.starts_with("ws://") || url.starts_with("wss://"), "{url:?}");
        assert_eq!(normalise(&url).as_deref(), Ok(url.as_str()), "from {typed:?}");
        let with_id = with_client_id(&url, "fuzz");
        assert_eq!(with_client_id(&with_id, "again"), with_id);
    }
});
