//! Close codes the server sends, and what each one asks of a client.

/// A WebSocket close code (RFC 6455 §7.4) with its meaning in wstime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// The client hung up on purpose.
    Normal = 1000,
    /// The peer stopped answering (no frame, not even a pong, within the idle timeout).
    GoingAway = 1001,
    /// The client broke the WebSocket protocol (an unmasked or malformed frame).
    ProtocolError = 1002,
    /// The client broke a rule (for example a disallowed origin): retrying will not help.
    PolicyViolation = 1008,
    /// The client sent a frame over the size limit.
    MessageTooBig = 1009,
    /// The instance is draining for a restart: reconnect promptly, elsewhere.
    ServiceRestart = 1012,
    /// The instance is shedding load: come back, but later.
    TryAgainLater = 1013,
}

impl CloseCode {
    /// The code as sent on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }
}
