//! A client's bytes on their way to frames: actix-http's frame codec over whatever each
//! read brought, keeping only the start of a frame whose end has not arrived.

use actix_http::ws::{Codec, Frame, ProtocolError};
use bytes::BytesMut;
use tokio_util::codec::Decoder as _;

use super::MAX_FRAME_BYTES;

/// The longest frame a client may send: the largest header (2 bytes, a 64-bit length, a
/// 4-byte mask) and the largest payload.
const LONGEST_FRAME: usize = 14 + MAX_FRAME_BYTES;

/// One connection's decoding state.
pub struct Incoming {
    codec: Codec,
    /// The start of a frame whose end has not arrived yet (usually empty, with no buffer).
    partial: BytesMut,
}

impl Incoming {
    /// Decoding that starts with `early`, what the client sent right behind its handshake.
    pub fn new(early: BytesMut) -> Self {
        Self { codec: Codec::new().max_size(MAX_FRAME_BYTES), partial: early }
    }

    /// Puts the start of a frame kept from an earlier read at the front of `buffer`
    /// (a buffer shared by every connection of a worker, empty when lent).
    pub fn resume(&mut self, buffer: &mut BytesMut) {
        buffer.extend_from_slice(&std::mem::take(&mut self.partial));
    }

    /// Hands every whole frame in `buffer` to `on_frame`, in order, until it says to stop
    /// (`false`) or only part of a frame is left. After a protocol error nothing that
    /// follows can be trusted: the rest of `buffer` is dropped and the error returned.
    pub fn decode(
        &mut self,
        buffer: &mut BytesMut,
        mut on_frame: impl FnMut(Frame) -> bool,
    ) -> Result<(), ProtocolError> {
        loop {
            match self.codec.decode(buffer) {
                Ok(Some(frame)) => {
                    if !on_frame(frame) {
                        return Ok(());
                    }
                }
                // actix-http's codec waits for a whole frame before it judges its size: a
                // frame bigger than any the limit allows is refused once that much of it is
                // here, rather than buffered for however long it claims to be.
                Ok(None) if buffer.len() > LONGEST_FRAME => {
                    buffer.clear();
                    return Err(ProtocolError::Overflow);
                }
                Ok(None) => return Ok(()),
                Err(error) => {
                    buffer.clear();
                    return Err(error);
                }
            }
        }
    }

    /// Keeps what is left in `buffer` (the start of a frame) for the next read.
    pub fn keep(&mut self, buffer: &[u8]) {
        if !buffer.is_empty() {
            self.partial = BytesMut::from(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_http::ws::Message;
    use bytes::Bytes;
    use proptest::prelude::*;
    use tokio_util::codec::Encoder as _;

    use super::*;

    /// A frame a client may send, with a payload within the limit.
    fn client_message() -> impl Strategy<Value = Message> {
        let payload = || proptest::collection::vec(any::<u8>(), 0..125).prop_map(Bytes::from);
        prop_oneof![
            payload().prop_map(Message::Ping),
            payload().prop_map(Message::Pong),
            payload().prop_map(Message::Binary),
            "[a-z ]{0,300}".prop_map(|text| Message::Text(text.into())),
        ]
    }

    /// Feeds `chunks` one read at a time, as a connection does; returns the frames.
    fn frames_read_in(chunks: &[&[u8]]) -> Result<Vec<Frame>, ProtocolError> {
        let mut incoming = Incoming::new(BytesMut::new());
        let mut frames = Vec::new();
        for chunk in chunks {
            let mut buffer = BytesMut::new();
            incoming.resume(&mut buffer);
            buffer.extend_from_slice(chunk);
            incoming.decode(&mut buffer, |frame| {
                frames.push(frame);
                true
            })?;
            incoming.keep(&buffer);
        }
        Ok(frames)
    }

    proptest! {
        #[test]
        fn frames_come_out_the_same_however_the_reads_split_them(
            messages in proptest::collection::vec(client_message(), 1..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut encoder = Codec::new().client_mode();
            let mut bytes = BytesMut::new();
            for message in messages {
                encoder.encode(message, &mut bytes).unwrap();
            }
            let whole = frames_read_in(&[&bytes]).unwrap();
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                chunks.push(&bytes[start..cut]);
                start = cut;
            }
            prop_assert_eq!(frames_read_in(&chunks).unwrap(), whole);
        }

        #[test]
        fn any_bytes_give_frames_or_an_error_never_a_panic(
            reads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        ) {
            let reads: Vec<&[u8]> = reads.iter().map(Vec::as_slice).collect();
            let _ = frames_read_in(&reads);
        }
    }

    #[test]
    fn a_frame_claiming_more_than_the_limit_is_refused_before_it_is_all_buffered() {
        // A header claiming 2^40 bytes, then the first 5 KiB of them.
        let mut bytes = BytesMut::from(&[0x82u8, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4][..]);
        bytes.extend_from_slice(&[0u8; 5 * 1024]);
        let mut incoming = Incoming::new(BytesMut::new());
        let refused = incoming.decode(&mut bytes, |_| true);
        assert!(matches!(refused, Err(ProtocolError::Overflow)), "{refused:?}");
        assert!(bytes.is_empty(), "nothing of it is kept");
    }
}
