//! A TLS stream that holds no buffer while its connection is idle, and little else.
//!
//! With tokio-rustls, a TLS socket cost 9.5 KB against 1.3 KB plain (docs/bench/report.md,
//! round two): rustls's buffered connection keeps a 4 KiB buffer for incoming records from
//! the first read to the last, and its established state (key schedule, two expanded AEAD
//! keys, about 3.4 KB) for the socket's life. Here rustls does the handshake
//! ([`handshake`], with its unbuffered connection: no buffer of its own) and hands over the
//! traffic keys, and [`records`] seals and opens the TLS 1.3 records from then on, keeping
//! a key, an IV and a sequence number each way. [`wire`] reads records into, and makes them
//! in, one scratch buffer per thread; a connection keeps bytes of its own only while they
//! wait (a record that came in part, plaintext not read yet, records the socket has not
//! taken), and frees each buffer when it empties.
//!
//! TLS 1.3 only (every browser since 2018; Mozilla's "modern" profile): its records are the
//! ones [`records`] makes, and the config must let rustls hand the keys over
//! (`enable_secret_extraction`, see [`crate::transport::tls_config`]). A write is sealed at
//! once and written as far as the socket takes it; the rest waits and
//! [`AsyncWrite::poll_flush`] finishes it. A write while records still wait is refused
//! (`Pending`), so what waits stays bounded by one write's records.

mod handshake;
mod records;
mod wire;

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use self::{
    records::{
        Opener, Sealer, ALERT, APPLICATION_DATA, CLOSE_NOTIFY, MAX_PLAINTEXT, USER_CANCELED,
        WARNING,
    },
    wire::{Processed, Wire, MAX_WRITE},
};

/// A server-side TLS 1.3 stream over TCP; see the module's notes.
pub struct TlsStream {
    wire: Wire,
    sealer: Sealer,
    inbound: Inbound,
    /// close_notify has been sent.
    closed: bool,
}

/// What the peer sends, opened.
struct Inbound {
    opener: Opener,
    /// Plaintext not read yet, from `read` on.
    plaintext: Vec<u8>,
    read: usize,
    /// The peer sent close_notify, or the socket ended: reads return end of stream.
    ended: bool,
    /// What went wrong after the records before it were opened: returned once their
    /// plaintext is read, and the stream ends after it.
    failed: Option<io::Error>,
}

impl TlsStream {
    /// Accepts a TLS 1.3 connection on `tcp` with `config`.
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<Self> {
        let established = handshake::run(tcp, config).await?;
        let (sealer, opener) = records::keys(established.secrets)?;
        let inbound = Inbound {
            opener,
            plaintext: established.plaintext,
            read: 0,
            ended: established.peer_closed,
            failed: None,
        };
        Ok(Self { wire: established.wire, sealer, inbound, closed: false })
    }

    /// Seals `data` (at most [`MAX_WRITE`] of it), a record per [`MAX_PLAINTEXT`], and
    /// writes the records; returns how much of `data` was taken.
    fn seal(&mut self, content_type: u8, data: &[u8], cx: &mut Context<'_>) -> io::Result<usize> {
        let data = &data[..data.len().min(MAX_WRITE)];
        let sealer = &mut self.sealer;
        self.wire.write(cx, |out| {
            let mut made = 0;
            for content in data.chunks(MAX_PLAINTEXT) {
                made += sealer.seal(content_type, content, &mut out[made..])?;
            }
            Ok(made)
        })?;
        Ok(data.len())
    }

    /// Whether any buffer is held (none is while the connection idles).
    #[cfg(test)]
    fn holds_a_buffer(&self) -> bool {
        self.wire.holds_a_buffer() || self.inbound.plaintext.capacity() > 0
    }
}

impl Inbound {
    /// Gives the reader what plaintext waits; `true` if there was some.
    fn take(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let waiting = &self.plaintext[self.read..];
        if waiting.is_empty() {
            return false;
        }
        let taken = waiting.len().min(buf.remaining());
        buf.put_slice(&waiting[..taken]);
        self.read += taken;
        if self.read == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.read = 0;
        }
        true
    }

    /// Opens every whole record at the front of `incoming`. A record that fails ends the
    /// stream, after the plaintext of those before it.
    fn open(&mut self, incoming: &mut [u8]) -> io::Result<Processed> {
        let mut consumed = 0;
        while !self.ended {
            let (length, opened) = match self.opener.open(&mut incoming[consumed..]) {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(error) => {
                    (self.failed, self.ended) = (Some(error), true);
                    break;
                }
            };
            let content = &incoming[consumed..][opened.content];
            match opened.content_type {
                APPLICATION_DATA => self.plaintext.extend_from_slice(content),
                // The description decides; the level may be ignored (RFC 8446 §6).
                ALERT if content.get(1) == Some(&CLOSE_NOTIFY) => self.ended = true,
                ALERT if content.get(1) == Some(&USER_CANCELED) => {}
                _ => {
                    let alert = "the TLS peer sent an alert or a record type it may not";
                    let error = io::Error::new(io::ErrorKind::ConnectionAborted, alert);
                    (self.failed, self.ended) = (Some(error), true);
                }
            }
            consumed += length;
        }
        Ok(Processed { consumed, made: 0 })
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.inbound.take(buf) {
                return Poll::Ready(Ok(()));
            }
            if this.inbound.ended {
                return Poll::Ready(this.inbound.failed.take().map_or(Ok(()), Err));
            }
            let inbound = &mut this.inbound;
            if !ready!(this.wire.poll_read(cx, |incoming, _| inbound.open(incoming)))? {
                inbound.ended = true;
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.wire.poll_flush(cx))?;
        Poll::Ready(this.seal(APPLICATION_DATA, data, cx))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().wire.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.wire.poll_flush(cx))?;
        if !this.closed {
            this.closed = true;
            this.seal(ALERT, &[WARNING, CLOSE_NOTIFY], cx)?;
            ready!(this.wire.poll_flush(cx))?;
        }
        this.wire.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    //! The stream against rustls's own client on a loopback socket (the integration tests
    //! add OpenSSL's, through curl, and tokio-tungstenite's).

    use std::{
        io::{Read as _, Write as _},
        net::TcpStream as StdTcpStream,
        thread::JoinHandle,
    };

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use wstime_cluster::tls::Certificates;

    use super::*;

    type Client = rustls::StreamOwned<rustls::ClientConnection, StdTcpStream>;

    /// A TLS client on a thread of its own, connected to a stream this end accepted.
    async fn connect(client: impl FnOnce(Client) + Send + 'static) -> (TlsStream, JoinHandle<()>) {
        let certificates = Certificates::loopback().unwrap();
        let config = crate::transport::tls_config(&certificates.cert, &certificates.key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(&certificates.ca).unwrap();
        use rustls_pki_types::pem::PemObject as _;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let tls = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
            client(rustls::StreamOwned::new(tls, StdTcpStream::connect(address).unwrap()));
        });
        let (tcp, _) = listener.accept().await.unwrap();
        (TlsStream::accept(tcp, config).await.unwrap(), thread)
    }

    /// Reads exactly `length` bytes from the stream.
    async fn read_exactly(stream: &mut TlsStream, length: usize) -> Vec<u8> {
        let mut read = vec![0; length];
        stream.read_exact(&mut read).await.unwrap();
        read
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_buffer_between_messages() {
        let (mut stream, client) = connect(|mut client| {
            client.write_all(b"pong").unwrap();
            let mut tick = [0; 4];
            client.read_exact(&mut tick).unwrap();
            assert_eq!(&tick, b"tick");
            client.write_all(b"bye!").unwrap();
        })
        .await;
        assert_eq!(read_exactly(&mut stream, 4).await, b"pong");
        assert!(!stream.holds_a_buffer(), "after a read");
        stream.write_all(b"tick").await.unwrap();
        assert!(!stream.holds_a_buffer(), "after a write the socket took");
        assert_eq!(read_exactly(&mut stream, 4).await, b"bye!");
        client.join().unwrap();
    }

    #[tokio::test]
    async fn large_messages_cross_in_many_records_and_reads() {
        // More than one record (16 KiB) and one write (64 KiB) each way; the client reads
        // only after it has written, so the server's records wait for the socket.
        let big = |seed: u8| (0..300_000u32).map(|i| (i as u8) ^ seed).collect::<Vec<u8>>();
        let (to_server, to_client) = (big(1), big(2));
        let expected = to_client.clone();
        let (mut stream, client) = connect(move |mut client| {
            client.write_all(&to_server).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            let mut read = vec![0; expected.len()];
            client.read_exact(&mut read).unwrap();
            assert!(read == expected, "the client read what the server wrote");
        })
        .await;
        assert!(read_exactly(&mut stream, 300_000).await == big(1), "the server read it all");
        stream.write_all(&to_client).await.unwrap();
        stream.flush().await.unwrap();
        client.join().unwrap();
        assert!(!stream.holds_a_buffer());
    }

    #[tokio::test]
    async fn records_that_come_with_the_clients_finished_are_read_in_order() {
        // The client's Finished, a record of data and half of the next in one TCP write,
        // the other half later: rustls reads the first two, this stream the rest.
        let (mut stream, client) = connect(|client| {
            let (mut tls, mut sock) = (client.conn, client.sock);
            while tls.is_handshaking() {
                while tls.wants_write() {
                    tls.write_tls(&mut sock).unwrap();
                }
                if tls.is_handshaking() {
                    tls.read_tls(&mut sock).unwrap();
                    tls.process_new_packets().unwrap();
                }
            }
            let records = |tls: &mut rustls::ClientConnection, data: &[u8]| {
                tls.writer().write_all(data).unwrap();
                let mut records = Vec::new();
                while tls.wants_write() {
                    tls.write_tls(&mut records).unwrap();
                }
                records
            };
            let mut first = records(&mut tls, b"first ");
            let second = records(&mut tls, b"second");
            let half = second.len() / 2;
            first.extend_from_slice(&second[..half]);
            sock.write_all(&first).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            sock.write_all(&second[half..]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
        })
        .await;
        assert_eq!(read_exactly(&mut stream, 12).await, b"first second");
        client.join().unwrap();
    }

    #[tokio::test]
    async fn a_clients_key_update_closes_the_connection() {
        let (mut stream, client) = connect(|mut client| {
            client.write_all(b"pong").unwrap();
            client.conn.refresh_traffic_keys().unwrap();
            client.write_all(b"pong").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
        })
        .await;
        assert_eq!(read_exactly(&mut stream, 4).await, b"pong");
        let error = stream.read(&mut [0; 4]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted, "{error}");
        client.join().unwrap();
    }

    #[tokio::test]
    async fn a_connection_cut_inside_a_record_is_an_error_not_an_end() {
        let (mut stream, client) = connect(|client| {
            let (mut tls, mut sock) = (client.conn, client.sock);
            tls.complete_io(&mut sock).unwrap();
            tls.writer().write_all(b"cut short").unwrap();
            let mut record = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut record).unwrap();
            }
            sock.write_all(&record[..record.len() - 3]).unwrap();
            // A FIN, not a reset: the socket is not closed with the tickets unread.
            sock.shutdown(std::net::Shutdown::Write).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        })
        .await;
        let error = stream.read(&mut [0; 16]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
        client.join().unwrap();
    }

    #[tokio::test]
    async fn close_notify_ends_the_stream_both_ways() {
        let (mut stream, client) = connect(|mut client| {
            client.write_all(b"pong").unwrap();
            client.conn.send_close_notify();
            client.conn.complete_io(&mut client.sock).unwrap();
            let mut rest = Vec::new();
            // A clean end: the server's close_notify, not a cut socket.
            assert_eq!(client.read_to_end(&mut rest).unwrap(), 0);
        })
        .await;
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"pong", "what came before the peer's close_notify, then the end");
        stream.shutdown().await.unwrap();
        client.join().unwrap();
    }
}
