//! A close reason, as the page reads it from any server: a retry hint is found or not, and
//! a hint found is never more than a minute; one written by the server reads back.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wstime_protocol::close::{retry_hint, with_retry_hint};

fuzz_target!(|input: (&str, u32)| {
    let (reason, millis) = input;
    if let Some(after) = retry_hint(reason) {
        assert!(after <= Duration::from_secs(60), "{reason:?} gave {after:?}");
    }
    let after = Duration::from_millis(u64::from(millis % 60_001));
    let read = retry_hint(&with_retry_hint(reason, after)).expect("a hint written reads back");
    assert!(read.abs_diff(after) < Duration::from_micros(1), "{read:?} for {after:?}");
});
