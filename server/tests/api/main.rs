//! Integration tests against the real `wstime-server` binary on free loopback ports.

mod balancer;
mod deploy;
mod discovery;
mod failover;
mod handshake;
mod health;
mod helpers;
mod image;
mod internet;
mod lifecycle;
mod observability;
mod page;
mod redis_ha;
mod redis_security;
mod session_store;
mod websocket;
