//! A client's bytes after the handshake, cut into reads at fuzzed places, through the
//! server's frame decoding (`connection::incoming`): frames or a protocol error, never a
//! panic, and never more kept between reads than the longest frame allowed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wstime_server::connection::{incoming::Incoming, MAX_FRAME_BYTES};

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (bytes, cuts) = input;
    let mut incoming = Incoming::new(BytesMut::new());
    let mut start = 0;
    for step in cuts.iter().map(|&cut| usize::from(cut)).chain([bytes.len()]) {
        let end = (start + step).min(bytes.len());
        let mut buffer = BytesMut::new();
        incoming.resume(&mut buffer);
        buffer.extend_from_slice(&bytes[start..end]);
        start = end;
        if incoming.decode(&mut buffer, |_| true).is_err() {
            return;
        }
        assert!(buffer.len() <= 14 + MAX_FRAME_BYTES, "{} bytes kept", buffer.len());
        incoming.keep(&buffer);
    }
});
