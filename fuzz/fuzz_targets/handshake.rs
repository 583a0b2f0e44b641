//! The WebSocket handshake: any bytes a client sends are parsed by actix-http's HTTP/1
//! decoder (as the server does), and every request it yields is checked by
//! `upgrade::handshake::check` without a panic; an accepted one gets a whole `101`.
#![no_main]

use actix_codec::Decoder as _;
use actix_http::{
    h1::{Codec, Message},
    ServiceConfig,
};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio::task::LocalSet;
use wstime_server::upgrade::handshake::check;

thread_local! {
    /// The codec's configuration, made once: it spawns a task that keeps the `Date`
    /// header fresh, which needs a `LocalSet` to be spawned on (and is never run here).
    static CONFIG: (LocalSet, ServiceConfig) = {
        let local = LocalSet::new();
        let config = {
            let _inside = local.enter();
            ServiceConfig::default()
        };
        (local, config)
    };
}

fuzz_target!(|request: &[u8]| {
    let mut codec = CONFIG.with(|(_, config)| Codec::new(config.clone()));
    let mut buffer = BytesMut::from(request);
    // Several requests may follow each other on one connection: check each.
    while let Ok(Some(message)) = codec.decode(&mut buffer) {
        let Message::Item(request) = message else { continue };
        if let Ok(accepted) = check(request.head()) {
            let mut response = BytesMut::new();
            accepted.response(&mut response);
            assert!(response.starts_with(b"HTTP/1.1 101 "));
            assert!(response.ends_with(b"\r\n\r\n"));
        }
    }
});
