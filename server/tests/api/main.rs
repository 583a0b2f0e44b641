//! Integration tests against the real `wstime-server` binary on free loopback ports.

mod helpers;
mod lifecycle;
mod page;
mod websocket;
