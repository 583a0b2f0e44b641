//! TLS 1.3 records after the handshake (RFC 8446 §5.2–5.3): application data and alerts
//! sealed and opened with the traffic keys rustls derived, the way kernel TLS takes them
//! over from a user-space handshake (`rustls::ExtractedSecrets` exists for that).
//!
//! Why not leave the records to rustls: an established rustls connection keeps its state,
//! its key schedule and two expanded AEAD keys, about 3.4 KB of a socket's memory for as
//! long as the socket lives, which on a mostly idle socket is more than everything else it
//! holds. Here a direction keeps its 16- or 32-byte key, its 12-byte IV and its sequence
//! number, and the key is expanded for each record (ring's AES key schedule and GHASH
//! table: a fraction of a microsecond, once a tick). The kernel has no TLS offload here.
//!
//! What this does not do: answer a KeyUpdate (rustls hands over keys, not the traffic
//! secrets a new key is derived from), so a peer that asks for new keys is closed and
//! reconnects with a new handshake; and it stops a direction after [`MAX_RECORDS`] records,
//! far below the AEAD limits (about 194 days of ticks), the same way.

use std::io;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets};

/// A record's header: content type, legacy version, length.
pub const HEADER: usize = 5;

/// The most plaintext in one record (RFC 8446 §5.1).
pub const MAX_PLAINTEXT: usize = 1 << 14;

/// The most a record's ciphertext may be (RFC 8446 §5.2).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;

/// What sealing adds to a record's plaintext: header, inner content type, tag.
pub const OVERHEAD: usize = HEADER + 1 + TAG;

const TAG: usize = 16;

/// Records a direction protects before the connection must be closed; see the module's notes.
pub const MAX_RECORDS: u64 = 1 << 24;

/// Content types (RFC 8446 §5.1).
pub const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;

/// An alert's level, and the descriptions that do not end in an error (RFC 8446 §6.1).
pub const WARNING: u8 = 1;
pub const CLOSE_NOTIFY: u8 = 0;
pub const USER_CANCELED: u8 = 90;

/// One direction's traffic keys, wiped when dropped (as rustls wipes its own).
struct Direction {
    algorithm: &'static aead::Algorithm,
    /// The key, `algorithm.key_len()` bytes of it.
    key: [u8; 32],
    iv: [u8; aead::NONCE_LEN],
    /// The next record's sequence number.
    sequence: u64,
}

impl Direction {
    fn new((sequence, secrets): (u64, ConnectionTrafficSecrets)) -> io::Result<Self> {
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(io::Error::other("a TLS cipher suite wstime does not seal")),
        };
        let mut direction = Self { algorithm, key: [0; 32], iv: [0; aead::NONCE_LEN], sequence };
        direction.key[..key.as_ref().len()].copy_from_slice(key.as_ref());
        direction.iv.copy_from_slice(iv.as_ref());
        Ok(direction)
    }

    /// The expanded key and the nonce of the next record; counts the record.
    fn next(&mut self) -> io::Result<(LessSafeKey, Nonce)> {
        if self.sequence >= MAX_RECORDS {
            let spent = "this TLS connection's keys are spent; reconnect";
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, spent));
        }
        let mut nonce = self.iv;
        for (byte, sequence) in nonce[4..].iter_mut().zip(self.sequence.to_be_bytes()) {
            *byte ^= sequence;
        }
        self.sequence += 1;
        let key = UnboundKey::new(self.algorithm, &self.key[..self.algorithm.key_len()])
            .map_err(|_| io::Error::other("a TLS traffic key of the wrong length"))?;
        Ok((LessSafeKey::new(key), Nonce::assume_unique_for_key(nonce)))
    }
}

impl Drop for Direction {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.key.zeroize();
        self.iv.zeroize();
    }
}

/// Seals the records this end sends.
pub struct Sealer(Direction);

/// Opens the records the peer sends.
pub struct Opener(Direction);

/// A record opened in place.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// Its inner content type.
    pub content_type: u8,
    /// Where its content is, in the buffer it was opened in.
    pub content: std::ops::Range<usize>,
}

/// The traffic keys rustls handed over at the end of a TLS 1.3 handshake.
pub fn keys(secrets: ExtractedSecrets) -> io::Result<(Sealer, Opener)> {
    Ok((Sealer(Direction::new(secrets.tx)?), Opener(Direction::new(secrets.rx)?)))
}

impl Sealer {
    /// Seals `content` (at most [`MAX_PLAINTEXT`]) as one record of `content_type` at the
    /// start of `out`; returns the record's length (`content.len() + OVERHEAD`).
    pub fn seal(&mut self, content_type: u8, content: &[u8], out: &mut [u8]) -> io::Result<usize> {
        debug_assert!(content.len() <= MAX_PLAINTEXT);
        let sealed = content.len() + 1 + TAG;
        let (header, body) = out[..HEADER + sealed].split_at_mut(HEADER);
        header.copy_from_slice(&record_header(sealed));
        body[..content.len()].copy_from_slice(content);
        body[content.len()] = content_type;
        let (key, nonce) = self.0.next()?;
        let (inner, tag) = body.split_at_mut(content.len() + 1);
        let made = key
            .seal_in_place_separate_tag(nonce, Aad::from(&*header), inner)
            .map_err(|_| io::Error::other("a TLS record could not be sealed"))?;
        tag.copy_from_slice(made.as_ref());
        Ok(HEADER + sealed)
    }
}

impl Opener {
    /// Opens the record at the start of `buffer` in place, if the whole of it is there:
    /// `Ok(None)` when more bytes are needed, otherwise the record's length and what it held.
    pub fn open(&mut self, buffer: &mut [u8]) -> io::Result<Option<(usize, Opened)>> {
        let Some(header) = buffer.get(..HEADER) else { return Ok(None) };
        let outer_type = header[0];
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if outer_type != APPLICATION_DATA || !(1 + TAG..=MAX_CIPHERTEXT).contains(&length) {
            return Err(refused("a TLS record that is not protected application data"));
        }
        let Some(record) = buffer.get_mut(..HEADER + length) else { return Ok(None) };
        let (header, body) = record.split_at_mut(HEADER);
        let (key, nonce) = self.0.next()?;
        let inner = key
            .open_in_place(nonce, Aad::from(&*header), body)
            .map_err(|_| refused("a TLS record that does not open with the connection's key"))?;
        // The inner content type is the last byte that is not padding.
        let Some(end) = inner.iter().rposition(|&byte| byte != 0) else {
            return Err(refused("a TLS record with no content type"));
        };
        if inner.len() > MAX_PLAINTEXT + 1 {
            return Err(refused("a TLS record longer than the protocol allows"));
        }
        let content_type = inner[end];
        if content_type == HANDSHAKE {
            let closed = "the TLS peer asked for new keys (KeyUpdate), which wstime does not \
                          answer: the connection is closed and the client reconnects";
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, closed));
        }
        Ok(Some((HEADER + length, Opened { content_type, content: HEADER..HEADER + end })))
    }
}

/// The header of a protected record of `length` bytes after the header.
fn record_header(length: usize) -> [u8; HEADER] {
    let [high, low] = (length as u16).to_be_bytes();
    [APPLICATION_DATA, 3, 3, high, low]
}

/// What the peer sent that TLS does not allow.
fn refused(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use rustls::crypto::cipher::{AeadKey, Iv};

    use super::*;

    /// One end's sealer and the other end's opener.
    fn pair(sequence: u64) -> (Sealer, Opener) {
        let secrets = |seed: u8| ConnectionTrafficSecrets::Aes128Gcm {
            key: AeadKey::from([seed; 32]),
            iv: Iv::from([seed; 12]),
        };
        let a = ExtractedSecrets { tx: (sequence, secrets(1)), rx: (sequence, secrets(2)) };
        let b = ExtractedSecrets { tx: (sequence, secrets(2)), rx: (sequence, secrets(1)) };
        (keys(a).unwrap().0, keys(b).unwrap().1)
    }

    #[test]
    fn a_sealed_record_opens_once_whole_and_in_order() {
        let (mut a, mut b) = pair(0);
        let mut wire = vec![0; 2 * (5 + OVERHEAD)];
        let first = a.seal(APPLICATION_DATA, b"tick!", &mut wire).unwrap();
        let second = a.seal(ALERT, &[WARNING, CLOSE_NOTIFY], &mut wire[first..]).unwrap();
        assert_eq!(b.open(&mut wire[..first - 1]).unwrap(), None, "a record that came in part");
        let (length, opened) = b.open(&mut wire).unwrap().unwrap();
        assert_eq!((length, &wire[opened.content.clone()]), (first, &b"tick!"[..]));
        let (_, opened) = b.open(&mut wire[first..first + second]).unwrap().unwrap();
        assert_eq!(opened.content_type, ALERT);
    }

    #[test]
    fn a_changed_replayed_or_reordered_record_is_refused() {
        let (mut a, mut b) = pair(7);
        let mut wire = vec![0; 64];
        let length = a.seal(APPLICATION_DATA, b"tick", &mut wire).unwrap();
        let mut changed = wire.clone();
        changed[HEADER] ^= 1;
        assert!(b.open(&mut changed[..length]).is_err(), "a changed byte");
        let (mut a, mut b) = pair(7);
        let mut first = vec![0; 64];
        a.seal(APPLICATION_DATA, b"one", &mut first).unwrap();
        let mut second = vec![0; 64];
        let length = a.seal(APPLICATION_DATA, b"two", &mut second).unwrap();
        assert!(b.open(&mut second[..length]).is_err(), "the second record first");
    }

    #[test]
    fn a_spent_direction_stops() {
        let (mut a, _) = pair(MAX_RECORDS);
        let error = a.seal(APPLICATION_DATA, b"tick", &mut [0; 64]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    }
}
