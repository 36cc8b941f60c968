//! Token secrets: `<prefix>.<id>.<secret>`, in the manner of Dynatrace's
//! `dt0c01.ST2EY72KQINMH574WMNVI7YN.G3DF...`.
//!
//! The secret part is RFC 4648 base32 (upper case, no padding) of 32 random
//! bytes from the OS followed by a CRC-32 of the id and those bytes, so a
//! mistyped or truncated string is refused without any database read. Only
//! the SHA-256 digest of the 32 random bytes is ever stored.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::ids::{TOKEN_ID_LEN, TokenId};

/// Random bytes in a secret: 256 bits.
const KEY_LEN: usize = 32;
/// Bytes of checksum after the key.
const CHECKSUM_LEN: usize = 4;
/// Characters of the encoded secret part (36 bytes in base32).
const SECRET_PART_LEN: usize = 58;
/// Longest prefix a deployment may configure.
pub const MAX_PREFIX_LEN: usize = 16;
/// Longest string that can be a secret; anything longer is refused unread.
pub const MAX_SECRET_LEN: usize = MAX_PREFIX_LEN + 1 + TOKEN_ID_LEN + 1 + SECRET_PART_LEN;
/// Characters of the secret part shown in `shortToken` (40 of 288 bits).
const SHORT_TOKEN_CHARS: usize = 8;

/// The fixed first part of every secret of a deployment: 1 to 16 lowercase
/// ASCII letters, digits or `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrefix(String);

impl TokenPrefix {
    /// Parses a configured prefix.
    pub fn parse(value: &str) -> Result<Self, String> {
        let starts_with_letter = value.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        let charset_ok = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !starts_with_letter || !charset_ok || value.len() > MAX_PREFIX_LEN {
            return Err(format!(
                "token prefix must be 1 to {MAX_PREFIX_LEN} lowercase letters, digits or '_', \
                 starting with a letter"
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string that is not a secret of this deployment. Deliberately carries no
/// detail: callers must not learn which part was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed API token")]
pub struct MalformedSecret;

/// The SHA-256 digest of a secret's random bytes: what the store keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a digest read back from the store.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not the secret, but there is no reason to print it.
        f.write_str("SecretDigest(..)")
    }
}

/// A parsed or newly generated token secret. Its `Debug` never prints the
/// key, and the key is wiped from memory when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret {
    id: TokenId,
    key: [u8; KEY_LEN],
}

impl Drop for TokenSecret {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSecret")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl TokenSecret {
    /// A new secret for token `id`, with 256 bits from the OS CSPRNG.
    pub fn generate(id: TokenId) -> Result<Self, getrandom::Error> {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key)?;
        Ok(Self { id, key })
    }

    /// A secret from known parts; for tests and benchmarks.
    pub fn from_parts(id: TokenId, key: [u8; KEY_LEN]) -> Self {
        Self { id, key }
    }

    /// Parses `<prefix>.<id>.<secret>`, checking the prefix, the id's shape,
    /// the encoding and the checksum. Costs no I/O.
    pub fn parse(prefix: &TokenPrefix, text: &str) -> Result<Self, MalformedSecret> {
        if text.len() > MAX_SECRET_LEN {
            return Err(MalformedSecret);
        }
        let mut parts = text.split('.');
        let (Some(p), Some(id), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedSecret);
        };
        if p != prefix.as_str() || secret.len() != SECRET_PART_LEN {
            return Err(MalformedSecret);
        }
        let id = TokenId::parse_generated(id).ok_or(MalformedSecret)?;
        let decoded = Zeroizing::new(
            BASE32_NOPAD
                .decode(secret.as_bytes())
                .map_err(|_| MalformedSecret)?,
        );
        let (key, sum) = decoded.split_at(KEY_LEN);
        let key: [u8; KEY_LEN] = key.try_into().map_err(|_| MalformedSecret)?;
        if sum != checksum(&id, &key) {
            return Err(MalformedSecret);
        }
        Ok(Self { id, key })
    }

    /// The id of the token this secret belongs to.
    pub fn id(&self) -> &TokenId {
        &self.id
    }

    /// The digest the store keeps for this secret.
    pub fn digest(&self) -> SecretDigest {
        SecretDigest(Sha256::digest(self.key).into())
    }

    /// The full secret string, to hand to the client once.
    pub fn reveal(&self, prefix: &TokenPrefix) -> RevealedSecret {
        RevealedSecret(format!(
            "{}.{}.{}",
            prefix.as_str(),
            self.id,
            self.encoded_secret_part().as_str()
        ))
    }

    /// A non-secret display form: the prefix and the first 8 characters of
    /// the secret part (40 of its 288 bits), enough to tell rotations apart.
    pub fn short_token(&self, prefix: &TokenPrefix) -> String {
        let part = self.encoded_secret_part();
        format!("{}.{}", prefix.as_str(), &part[..SHORT_TOKEN_CHARS])
    }

    fn encoded_secret_part(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN + CHECKSUM_LEN]);
        bytes[..KEY_LEN].copy_from_slice(&self.key);
        bytes[KEY_LEN..].copy_from_slice(&checksum(&self.id, &self.key));
        Zeroizing::new(BASE32_NOPAD.encode(&bytes[..]))
    }
}

/// CRC-32 of the id and the key: catches typos, not forgeries (a forged
/// well-formed secret simply matches no digest).
fn checksum(id: &TokenId, key: &[u8; KEY_LEN]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(id.as_str().as_bytes());
    hasher.update(key);
    hasher.finalize().to_be_bytes()
}

/// The full secret string. `Debug` prints `[redacted]`; the text is reachable
/// only through [`RevealedSecret::expose`], at the one place that returns it,
/// and is wiped from memory when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct RevealedSecret(String);

impl RevealedSecret {
    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret text, by value (the caller now owns the only copy: the
    /// response message that carries it to the client).
    pub fn into_exposed(mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

impl Drop for RevealedSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for RevealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> TokenPrefix {
        TokenPrefix::parse("tokend").unwrap()
    }

    fn sample() -> TokenSecret {
        TokenSecret::from_parts(TokenId::generate(1_700_000_000_000, [9; 10]), [42; KEY_LEN])
    }

    #[test]
    fn round_trip() {
        let secret = TokenSecret::generate(TokenId::generate(1, [1; 10])).unwrap();
        let text = secret.reveal(&prefix());
        let parsed = TokenSecret::parse(&prefix(), text.expose()).unwrap();
        assert_eq!(parsed, secret);
        assert_eq!(parsed.digest(), secret.digest());
    }

    #[test]
    fn shape_is_prefix_id_secret() {
        let text = sample().reveal(&prefix()).into_exposed();
        let parts: Vec<&str> = text.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "tokend");
        assert_eq!(parts[1], sample().id().as_str());
        assert_eq!(parts[2].len(), SECRET_PART_LEN);
        assert!(
            parts[2]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert!(text.len() <= MAX_SECRET_LEN);
    }

    #[test]
    fn generated_keys_differ() {
        let id = TokenId::generate(1, [1; 10]);
        let a = TokenSecret::generate(id.clone()).unwrap();
        let b = TokenSecret::generate(id).unwrap();
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let text = sample().reveal(&prefix()).into_exposed();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcdefghjkmnpqrstvwxyz0189.";
        for i in 0..text.len() {
            for c in alphabet.chars() {
                let mut changed = text.clone();
                changed.replace_range(i..=i, &c.to_string());
                if changed == text {
                    continue;
                }
                assert_eq!(
                    TokenSecret::parse(&prefix(), &changed),
                    Err(MalformedSecret),
                    "position {i} changed to {c}"
                );
            }
        }
    }

    #[test]
    fn malformed_shapes() {
        let text = sample().reveal(&prefix()).into_exposed();
        let (head, secret_part) = text.rsplit_once('.').unwrap();
        let id = sample().id().as_str().to_owned();
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "tokend".into(),
            format!("tokend.{id}"),
            format!("tokend.{id}."),
            format!("{text}."),
            format!("{text}.extra"),
            format!(".{text}"),
            format!("other.{id}.{secret_part}"),
            format!("TOKEND.{id}.{secret_part}"),
            format!("tokend..{secret_part}"),
            format!("tokend.{}.{secret_part}", id.to_uppercase()),
            format!("{head}.{}", &secret_part[1..]),
            format!("{head}.{secret_part}A"),
            format!("{head}.{}", secret_part.to_lowercase()),
            format!("{head}.{}=", &secret_part[..57]),
            format!(" {text}"),
            format!("{text} "),
            format!("{text}\0"),
            "x".repeat(10_000),
            "é".repeat(40),
        ];
        for case in cases {
            assert_eq!(
                TokenSecret::parse(&prefix(), &case),
                Err(MalformedSecret),
                "{case:?}"
            );
        }
    }

    #[test]
    fn secret_for_another_id_is_refused() {
        let text = sample().reveal(&prefix()).into_exposed();
        let other = TokenId::generate(1_700_000_000_000, [8; 10]);
        let swapped = text.replace(sample().id().as_str(), other.as_str());
        assert_eq!(
            TokenSecret::parse(&prefix(), &swapped),
            Err(MalformedSecret)
        );
    }

    #[test]
    fn prefix_must_match_configuration() {
        let custom = TokenPrefix::parse("dt0c01").unwrap();
        let text = sample().reveal(&custom).into_exposed();
        assert!(text.starts_with("dt0c01."));
        assert!(TokenSecret::parse(&custom, &text).is_ok());
        assert_eq!(TokenSecret::parse(&prefix(), &text), Err(MalformedSecret));
    }

    #[test]
    fn prefixes() {
        assert!(TokenPrefix::parse("tokend").is_ok());
        assert!(TokenPrefix::parse("dt0c01").is_ok());
        for bad in ["", "0abc", "Tok", "a.b", "a-b", "abcdefghijklmnopq"] {
            assert!(TokenPrefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let secret = sample();
        let revealed = secret.reveal(&prefix());
        let key_part = revealed.expose().rsplit_once('.').unwrap().1.to_owned();
        assert!(!format!("{secret:?}").contains(&key_part));
        assert_eq!(format!("{revealed:?}"), "[redacted]");
    }

    #[test]
    fn the_longest_prefix_fits_the_longest_secret() {
        let longest = "p".repeat(MAX_PREFIX_LEN);
        let custom = TokenPrefix::parse(&longest).unwrap();
        assert!(TokenPrefix::parse(&format!("{longest}p")).is_err());
        assert!(TokenPrefix::parse("a").is_ok());
        assert!(TokenPrefix::parse("my_prefix_9").is_ok());
        let text = sample().reveal(&custom).into_exposed();
        // MAX_SECRET_LEN is the length of a secret under the longest prefix:
        // a shorter bound would refuse that deployment's every secret.
        assert_eq!(text.len(), MAX_SECRET_LEN);
        assert_eq!(TokenSecret::parse(&custom, &text), Ok(sample()));
    }

    #[test]
    fn digest_is_the_sha256_of_the_key_only() {
        let digest = sample().digest();
        let hex: String = digest
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // sha256(32 bytes of 0x2a), computed independently (Python's hashlib).
        assert_eq!(
            hex,
            "544e62cee8033709e389e5b2755343d0d0fa8c4850215cfb6331717e80d1aea3"
        );
        let other_id = TokenSecret::from_parts(TokenId::generate(2, [3; 10]), [42; KEY_LEN]);
        assert_eq!(other_id.digest(), digest);
        assert_eq!(SecretDigest::from_slice(digest.as_bytes()), Some(digest));
        assert_eq!(SecretDigest::from_slice(&[0; 31]), None);
        assert_eq!(SecretDigest::from_slice(&[0; 33]), None);
    }

    #[test]
    fn debug_forms_are_exactly_the_redacted_ones() {
        let secret = sample();
        assert_eq!(
            format!("{secret:?}"),
            format!(
                "TokenSecret {{ id: {:?}, key: \"[redacted]\" }}",
                secret.id()
            )
        );
        assert_eq!(format!("{:?}", secret.digest()), "SecretDigest(..)");
    }

    #[test]
    fn dropping_a_secret_wipes_its_key() {
        let mut slot = std::mem::ManuallyDrop::new(sample());
        assert_eq!(slot.key, [42; KEY_LEN]);
        // SAFETY: `slot` is dropped exactly once and never used as a
        // `TokenSecret` again. ManuallyDrop keeps its storage on this stack
        // frame, so the inline `[u8; 32]` key (no drop glue, every bit
        // pattern valid) can still be read; the id's heap buffer, which the
        // drop freed, is not touched.
        let key = unsafe {
            std::mem::ManuallyDrop::drop(&mut slot);
            std::ptr::addr_of!(slot.key).read_volatile()
        };
        assert_eq!(key, [0; KEY_LEN]);
    }

    #[test]
    fn short_token_is_a_prefix_of_the_secret_part_only() {
        let secret = sample();
        let short = secret.short_token(&prefix());
        let full = secret.reveal(&prefix()).into_exposed();
        let part = full.rsplit_once('.').unwrap().1;
        assert_eq!(short, format!("tokend.{}", &part[..8]));
    }
}
