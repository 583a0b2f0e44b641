//! The frames a connection sends, built straight into a buffer: ticks by hand (they are
//! the hot path), control frames through actix-http's codec.

use actix_http::ws::{CloseReason, Codec, Message, OpCode};
use bytes::{BufMut as _, Bytes, BytesMut};
use tokio_util::codec::Encoder as _;
use wstime_protocol::{tick, CloseCode};

/// Appends the tick for `seconds` (the pre-built `prefix` plus the count) to `out`, with no
/// formatting machinery: a tick is the one frame sent thousands of times a second.
pub fn tick(out: &mut BytesMut, prefix: &str, seconds: u64) {
    let count = tick::Count::new(seconds);
    let len = prefix.len() + count.as_bytes().len();
    // The longest header a server writes: two bytes and a 64-bit length.
    out.reserve(10 + len);
    // RFC 6455 section 5.2: FIN and the text opcode, then the length in 7, 16 or 64 bits
    // (a server's frames are not masked).
    out.put_u8(0x80 | u8::from(OpCode::Text));
    match u16::try_from(len) {
        Ok(short) if short < 126 => out.put_u8(short as u8),
        Ok(medium) => {
            out.put_u8(126);
            out.put_u16(medium);
        }
        Err(_) => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
    out.put_slice(prefix.as_bytes());
    out.put_slice(count.as_bytes());
}

/// Appends an empty ping.
pub fn ping(out: &mut BytesMut) {
    control(out, Message::Ping(Bytes::new()));
}

/// Appends the answer to a ping carrying `payload`.
pub fn pong(out: &mut BytesMut, payload: Bytes) {
    control(out, Message::Pong(payload));
}

/// Appends a close frame with `code` and a short `reason` (`None`: an empty close, the
/// answer to the peer's).
pub fn close(out: &mut BytesMut, code: Option<(CloseCode, &str)>) {
    let reason = code.map(|(code, reason)| CloseReason {
        code: code.code().into(),
        description: Some(reason.to_owned()),
    });
    control(out, Message::Close(reason));
}

fn control(out: &mut BytesMut, message: Message) {
    // A server codec encodes control frames unmasked and cannot fail on them (payloads are
    // at most 125 bytes: pings echo a client's, which the decoder bounded).
    let _ = Codec::new().encode(message, out);
}

#[cfg(test)]
mod tests {
    use actix_http::ws::Frame;
    use tokio_util::codec::Decoder as _;

    use super::*;

    /// The frames a client reads from `bytes`, decoding as a client does.
    fn client_reads(mut bytes: BytesMut) -> Vec<Frame> {
        let mut codec = Codec::new().client_mode().max_size(1 << 20);
        std::iter::from_fn(|| codec.decode(&mut bytes).unwrap()).collect()
    }

    #[test]
    fn ticks_are_whole_text_frames_for_any_name_length() {
        // The usual name needs the 7-bit length form, 200 bytes the 16-bit one and 70,000
        // bytes the 64-bit one.
        for name in ["slimy-cardinal".to_owned(), "n".repeat(200), "n".repeat(70_000)] {
            let prefix = tick::prefix(&name);
            let mut out = BytesMut::new();
            tick(&mut out, &prefix, 9);
            tick(&mut out, &prefix, 10);
            let texts: Vec<String> = client_reads(out)
                .into_iter()
                .map(|frame| match frame {
                    Frame::Text(text) => String::from_utf8(text.to_vec()).unwrap(),
                    other => panic!("expected a text frame, got {other:?}"),
                })
                .collect();
            assert_eq!(texts.len(), 2);
            for (text, seconds) in texts.iter().zip([9, 10]) {
                let parsed = tick::Tick::parse(text).expect("a tick's text");
                assert_eq!((parsed.server, parsed.seconds), (name.as_str(), seconds));
            }
        }
    }

    #[test]
    fn control_frames_follow_a_tick_in_one_buffer() {
        let mut out = BytesMut::new();
        tick(&mut out, "n: you have been connected for ", 1);
        ping(&mut out);
        close(&mut out, Some((CloseCode::ServiceRestart, "server restarting")));
        let frames = client_reads(out);
        assert!(matches!(frames[0], Frame::Text(_)));
        assert_eq!(frames[1], Frame::Ping(Bytes::new()));
        let Frame::Close(Some(reason)) = &frames[2] else { panic!("{frames:?}") };
        assert_eq!(u16::from(reason.code), 1012);
    }
}
