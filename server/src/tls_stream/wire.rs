//! The socket under a TLS stream, and the bytes that wait on it: the start of a record that
//! came in part, and records the socket has not taken yet. Each buffer exists only while
//! something waits in it. Records are read into, and made in, one scratch buffer per
//! thread ([`Scratch`]), lent to one stream at a time and never across an `await`.

use std::{
    cell::RefCell,
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use tokio::{
    io::{AsyncRead as _, AsyncWrite as _, ReadBuf},
    net::TcpStream,
};

use super::records::{MAX_PLAINTEXT, OVERHEAD};

/// The largest record on the wire (RFC 8446 §5.2), header included.
const MAX_RECORD: usize = MAX_PLAINTEXT + 256 + 5;

/// The most plaintext one write seals: a larger write is taken in parts.
pub const MAX_WRITE: usize = 4 * MAX_PLAINTEXT;

/// A thread's buffers for records coming in and going out.
pub struct Scratch {
    /// What a stream kept of a record that came in part, then what a read brought.
    incoming: Vec<u8>,
    /// Records made to be sent: a write's, or a handshake flight.
    pub outgoing: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        incoming: vec![0; 2 * MAX_RECORD],
        outgoing: vec![0; MAX_WRITE + (MAX_WRITE / MAX_PLAINTEXT) * OVERHEAD + MAX_RECORD],
    });
}

/// What processing some incoming bytes came to.
pub struct Processed {
    /// Bytes taken from the front (whole records); the rest is kept for the next read.
    pub consumed: usize,
    /// Bytes of records made at the front of [`Scratch::outgoing`], to be sent.
    pub made: usize,
}

/// A socket and the bytes waiting on it.
pub struct Wire {
    tcp: TcpStream,
    /// The start of a record that came in part.
    partial: Vec<u8>,
    /// Records the socket has not taken yet, from `sent` on.
    waiting: Vec<u8>,
    sent: usize,
}

impl Wire {
    pub fn new(tcp: TcpStream) -> Self {
        Self { tcp, partial: Vec::new(), waiting: Vec::new(), sent: 0 }
    }

    /// Reads what the socket has, after the part of a record kept from before, and gives
    /// it all to `process`, which sees the incoming bytes and the outgoing scratch buffer.
    /// `Ready(false)` once the socket has ended between records (`process` is not called
    /// then); an end inside a record is an error: the record was cut.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        process: impl FnOnce(&mut [u8], &mut [u8]) -> io::Result<Processed>,
    ) -> Poll<io::Result<bool>> {
        SCRATCH.with_borrow_mut(|scratch| {
            let kept = self.partial.len();
            if kept >= scratch.incoming.len() {
                let long = "a TLS handshake message longer than the buffer for it";
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, long)));
            }
            scratch.incoming[..kept].copy_from_slice(&self.partial);
            let mut read = ReadBuf::new(&mut scratch.incoming[kept..]);
            ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut read))?;
            let filled = kept + read.filled().len();
            if filled == kept {
                if kept > 0 {
                    let cut = "the connection ended inside a TLS record";
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, cut)));
                }
                return Poll::Ready(Ok(false));
            }
            self.take(&mut scratch.incoming[..filled], &mut scratch.outgoing, cx, process)?;
            Poll::Ready(Ok(true))
        })
    }

    /// Makes records with `make` in the scratch buffer and sends them.
    pub fn write(
        &mut self,
        cx: &mut Context<'_>,
        make: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<()> {
        SCRATCH.with_borrow_mut(|scratch| {
            let made = make(&mut scratch.outgoing)?;
            self.send(&scratch.outgoing[..made], cx)
        })
    }

    /// Runs `process` over `incoming`, keeps what it did not consume, sends what it made.
    fn take(
        &mut self,
        incoming: &mut [u8],
        outgoing: &mut [u8],
        cx: &mut Context<'_>,
        process: impl FnOnce(&mut [u8], &mut [u8]) -> io::Result<Processed>,
    ) -> io::Result<()> {
        let Processed { consumed, made } = process(incoming, outgoing)?;
        // Empty (and unallocated) unless a record came in part.
        self.partial = incoming[consumed..].to_vec();
        self.send(&outgoing[..made], cx)
    }

    /// Writes `records` after any that wait; what the socket does not take waits.
    fn send(&mut self, records: &[u8], cx: &mut Context<'_>) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.is_waiting() {
            self.waiting.extend_from_slice(records);
            return Ok(());
        }
        let written = match Pin::new(&mut self.tcp).poll_write(cx, records) {
            Poll::Ready(written) => written?,
            Poll::Pending => 0,
        };
        if written < records.len() {
            self.waiting = records[written..].to_vec();
            self.sent = 0;
        }
        Ok(())
    }

    /// Whether records wait for the socket.
    pub fn is_waiting(&self) -> bool {
        self.sent < self.waiting.len()
    }

    /// Writes the records that wait; `Ready` once none does (and their buffer is freed).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.is_waiting() {
            let waiting = &self.waiting[self.sent..];
            let written = ready!(Pin::new(&mut self.tcp).poll_write(cx, waiting))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += written;
        }
        if self.waiting.capacity() > 0 {
            self.waiting = Vec::new();
            self.sent = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Ends the sending side of the socket.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    /// Whether any buffer is held (none is while the connection idles).
    #[cfg(test)]
    pub fn holds_a_buffer(&self) -> bool {
        self.partial.capacity() > 0 || self.waiting.capacity() > 0
    }
}
