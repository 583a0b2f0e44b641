//! The TLS handshake, by rustls's unbuffered connection over a [`Wire`]: records in and out
//! until the connection is established and its last flight (the session tickets included)
//! is written, then the traffic keys are taken from rustls and rustls is dropped.

use std::{
    future::poll_fn,
    io,
    sync::Arc,
    task::{ready, Context, Poll},
};

use rustls::{
    server::UnbufferedServerConnection,
    unbuffered::{ConnectionState, EncodeError},
    ExtractedSecrets, ServerConfig,
};
use tokio::net::TcpStream;

use super::wire::{Processed, Wire};

/// A connection whose handshake is done.
pub struct Established {
    pub wire: Wire,
    pub secrets: ExtractedSecrets,
    /// Application data that came with the handshake's last records.
    pub plaintext: Vec<u8>,
    /// The peer's close_notify came with them too: it will send nothing more.
    pub peer_closed: bool,
}

/// Where a handshake is.
struct Handshake {
    tls: UnbufferedServerConnection,
    plaintext: Vec<u8>,
    established: bool,
    peer_closed: bool,
}

/// Runs the handshake on `tcp` with `config`, which must allow secret extraction.
pub async fn run(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<Established> {
    let tls = UnbufferedServerConnection::new(config).map_err(invalid)?;
    let mut handshake =
        Handshake { tls, plaintext: Vec::new(), established: false, peer_closed: false };
    let mut wire = Wire::new(tcp);
    // rustls waits for the ClientHello: nothing to send before the first read.
    poll_fn(|cx| handshake.poll(&mut wire, cx)).await?;
    // The kernel connection would answer key updates, but it keeps the key schedule (about
    // a kilobyte and a half) for the socket's life: it is dropped, see `records`.
    let (secrets, _) = handshake.tls.dangerous_into_kernel_connection().map_err(invalid)?;
    // A KeyUpdate sent with the client's Finished (no client we know does) would be
    // answered by rustls with a message dropped here: the client could not open what the
    // new keys seal, and the connection breaks, as a later KeyUpdate closes it.
    Ok(Established {
        wire,
        secrets,
        plaintext: handshake.plaintext,
        peer_closed: handshake.peer_closed,
    })
}

impl Handshake {
    /// Reads and answers records until established with nothing left to write.
    fn poll(&mut self, wire: &mut Wire, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(wire.poll_flush(cx))?;
            if self.established {
                return Poll::Ready(Ok(()));
            }
            if self.peer_closed {
                let closed = "the peer closed the connection during the TLS handshake";
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, closed)));
            }
            if !ready!(wire.poll_read(cx, |incoming, outgoing| self.process(incoming, outgoing)))? {
                self.peer_closed = true;
            }
        }
    }

    /// Runs rustls over `incoming` until it needs more records or is established; the
    /// records it makes go into `outgoing`.
    fn process(&mut self, incoming: &mut [u8], outgoing: &mut [u8]) -> io::Result<Processed> {
        let (mut consumed, mut made) = (0, 0);
        loop {
            let status = self.tls.process_tls_records(&mut incoming[consumed..]);
            let discard = status.discard;
            let done = match status.state.map_err(invalid)? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    let mut taken = 0;
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(invalid)?;
                        taken += record.discard;
                        self.plaintext.extend_from_slice(record.payload);
                    }
                    consumed += taken;
                    false
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    made += data.encode(&mut outgoing[made..]).map_err(|error| match error {
                        EncodeError::InsufficientSize(_) => {
                            io::Error::other("a TLS handshake flight larger than the buffer")
                        }
                        other => invalid(other),
                    })?;
                    false
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    // The wire sends what was made when this round ends, before anything
                    // made later: the order rustls asks for.
                    transmit.done();
                    false
                }
                ConnectionState::WriteTraffic(_) => {
                    self.established = true;
                    true
                }
                ConnectionState::BlockedHandshake => true,
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    // A close_notify that came with the client's Finished ends a connection
                    // that was established: what came before it is still read.
                    self.established = !self.tls.is_handshaking();
                    self.peer_closed = true;
                    true
                }
                // Early data is not accepted (`max_early_data_size` is 0).
                other => return Err(invalid(format!("unexpected TLS state {other:?}"))),
            };
            consumed += discard;
            if done {
                return Ok(Processed { consumed, made });
            }
        }
    }
}

/// A TLS error as an I/O error: the peer sent something rustls refuses.
fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}
