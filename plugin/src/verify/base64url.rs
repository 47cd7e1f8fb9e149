//! Strict unpadded base64url (RFC 7515 section 2, RFC 4648 section 5).
//!
//! A token segment has exactly one spelling: no padding, no whitespace, no
//! characters outside the URL-safe alphabet, and the unused low bits of the
//! last character zero. Anything else is refused, so two different strings
//! never decode to the same bytes.

use std::fmt;

/// Why a string is not strict unpadded base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Error {
    /// A character outside `A-Z a-z 0-9 - _`, padding and whitespace included.
    Alphabet,
    /// A length that no byte string encodes to (one character past a group).
    Length,
    /// The last character carries bits that no byte string sets.
    UnusedBits,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Alphabet => "character outside the base64url alphabet",
            Self::Length => "impossible base64url length",
            Self::UnusedBits => "non-zero unused bits in the last base64url character",
        })
    }
}

impl std::error::Error for Base64Error {}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Decodes strict unpadded base64url.
///
/// # Errors
///
/// Returns the first way the input departs from the canonical encoding.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, Base64Error> {
    if input.len() % 4 == 1 {
        return Err(Base64Error::Length);
    }

    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut chunks = input.chunks_exact(4);
    for chunk in &mut chunks {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | u32::from(sextet(c)?);
        }
        out.extend(acc.to_be_bytes().iter().skip(1));
    }

    decode_tail(chunks.remainder(), &mut out)?;
    Ok(out)
}

/// Decodes the final group of two or three characters.
fn decode_tail(tail: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
    let mut acc = 0u32;
    for &c in tail {
        acc = (acc << 6) | u32::from(sextet(c)?);
    }

    let (bytes, unused_bits) = match tail.len() {
        0 => return Ok(()),
        2 => (1, 4),
        3 => (2, 2),
        _ => return Err(Base64Error::Length),
    };
    if acc & ((1 << unused_bits) - 1) != 0 {
        return Err(Base64Error::UnusedBits);
    }

    let value = acc >> unused_bits;
    let be = value.to_be_bytes();
    out.extend(be.iter().skip(4 - bytes));
    Ok(())
}

/// Maps one alphabet character to its six bits.
fn sextet(c: u8) -> Result<u8, Base64Error> {
    match c {
        b'A'..=b'Z' => Ok(c - b'A'),
        b'a'..=b'z' => Ok(c - b'a' + 26),
        b'0'..=b'9' => Ok(c - b'0' + 52),
        b'-' => Ok(62),
        b'_' => Ok(63),
        _ => Err(Base64Error::Alphabet),
    }
}

/// Encodes bytes as unpadded base64url.
pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let mut group = [0u8; 3];
        for (slot, byte) in group.iter_mut().zip(chunk) {
            *slot = *byte;
        }
        let acc = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = ((acc >> (18 - 6 * i)) & 0x3f) as usize;
            if let Some(&c) = ALPHABET.get(index) {
                out.push(char::from(c));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_tail_length() {
        for len in 0..10 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
            assert_eq!(decode(encode(&bytes).as_bytes()), Ok(bytes));
        }
    }

    #[test]
    fn refuses_padding_whitespace_and_stray_characters() {
        assert_eq!(decode(b"Zm9v=="), Err(Base64Error::Alphabet));
        assert_eq!(decode(b"Zm9v Zm8"), Err(Base64Error::Alphabet));
        assert_eq!(decode(b"Zm+v"), Err(Base64Error::Alphabet));
        assert_eq!(decode(b"Zm9v\nZ8"), Err(Base64Error::Alphabet));
    }

    /// Every string of up to three characters over the alphabet and `=`:
    /// whatever decodes has exactly one spelling, the one `encode` gives.
    #[test]
    fn every_accepted_string_is_the_canonical_spelling() {
        let symbols: Vec<u8> = ALPHABET.iter().copied().chain([b'=']).collect();
        let mut accepted = 0;
        for len in 0..=3 {
            let mut indices = vec![0usize; len];
            loop {
                let text: Vec<u8> = indices.iter().map(|&i| symbols[i]).collect();
                if let Ok(bytes) = decode(&text) {
                    assert_eq!(encode(&bytes).as_bytes(), text.as_slice());
                    accepted += 1;
                }
                let Some(position) = indices.iter().rposition(|&i| i + 1 < symbols.len()) else {
                    break;
                };
                indices[position] += 1;
                for later in &mut indices[position + 1..] {
                    *later = 0;
                }
            }
        }
        // "", then 2^8 one-byte and 2^16 two-byte strings.
        assert_eq!(accepted, 1 + 256 + 65536);
    }

    #[test]
    fn refuses_impossible_lengths_and_unused_bits() {
        assert_eq!(decode(b"Zm9vY"), Err(Base64Error::Length));
        assert_eq!(decode(b"Zh"), Err(Base64Error::UnusedBits));
        assert_eq!(decode(b"Zm8"), Ok(b"fo".to_vec()));
        assert_eq!(decode(b"Zm9"), Err(Base64Error::UnusedBits));
        assert_eq!(decode(b"Zm-"), Err(Base64Error::UnusedBits));
    }
}
