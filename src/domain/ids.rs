//! Identifiers: of organizations, of tokens, and of the entities roles apply to.

use std::fmt;

use super::error::{FieldViolation, check_text};

/// Lowercase Crockford base32: no i, l, o, u, so ids read back unambiguously.
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Each byte's value as a [`CROCKFORD`] digit, or `NOT_A_DIGIT`: one lookup
/// per character on the authentication path instead of a search.
const DIGIT_VALUE: [u8; 256] = {
    let mut table = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < CROCKFORD.len() {
        table[CROCKFORD[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const NOT_A_DIGIT: u8 = 0xFF;
/// Length of a generated token id: 128 bits in base32.
pub const TOKEN_ID_LEN: usize = 26;
/// Longest id a request may carry; longer ones are refused before any lookup.
pub const MAX_ID_LEN: usize = 64;

/// The ID of an organization: 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrganizationId(String);

impl OrganizationId {
    /// Parses an organization id given in `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        if value.len() > MAX_ID_LEN {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {MAX_ID_LEN} characters"),
            ));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(FieldViolation::new(
                field,
                "may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// Rebuilds an id read back from where it was stored after parsing.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrganizationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ID of an API token. Generated ids are 26 characters of lowercase
/// Crockford base32 whose first 10 encode the creation time in milliseconds,
/// so ordering by id is ordering by creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(String);

impl TokenId {
    /// A new id for a token created at `unix_millis`, with 80 random bits.
    pub fn generate(unix_millis: u64, random: [u8; 10]) -> Self {
        let mut value: u128 = u128::from(unix_millis & 0xFFFF_FFFF_FFFF) << 80;
        for (i, byte) in random.iter().enumerate() {
            value |= u128::from(*byte) << (72 - 8 * i);
        }
        let mut out = String::with_capacity(TOKEN_ID_LEN);
        for i in (0..TOKEN_ID_LEN).rev() {
            // 26 digits of 5 bits cover 130 bits; the top digit holds 3.
            let digit = ((value >> (5 * i)) & 0x1F) as usize;
            out.push(char::from(CROCKFORD[digit]));
        }
        Self(out)
    }

    /// Parses the id part of a token secret: exactly the generated shape.
    pub fn parse_generated(value: &str) -> Option<Self> {
        let well_formed = value.len() == TOKEN_ID_LEN
            && value
                .bytes()
                .all(|b| DIGIT_VALUE[usize::from(b)] != NOT_A_DIGIT)
            && value.as_bytes()[0] <= b'7';
        well_formed.then(|| Self(value.to_owned()))
    }

    /// Parses a token id named in a request (`tokenId`): any non-empty string
    /// up to 64 characters without control characters, since an id that was
    /// never generated is simply not found. (A NUL byte would otherwise
    /// reach PostgreSQL, which refuses it in text: INTERNAL, not an answer.)
    pub fn parse_requested(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        if value.len() > MAX_ID_LEN {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {MAX_ID_LEN} characters"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(FieldViolation::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The 128 bits a generated id encodes (creation time in the top 48,
    /// then 80 random ones); `None` for anything not of the generated shape
    /// (an id named in a request that was never generated).
    pub fn bits(&self) -> Option<u128> {
        let bytes = self.0.as_bytes();
        if bytes.len() != TOKEN_ID_LEN || bytes[0] > b'7' {
            return None;
        }
        bytes.iter().try_fold(0u128, |value, &byte| {
            let digit = DIGIT_VALUE[usize::from(byte)];
            (digit != NOT_A_DIGIT).then(|| (value << 5) | u128::from(digit))
        })
    }

    /// When a generated id says its token was created, Unix milliseconds.
    pub fn created_at_millis(&self) -> Option<u64> {
        self.bits().map(Self::created_at_millis_of)
    }

    /// The creation time held in [`Self::bits`], Unix milliseconds.
    pub fn created_at_millis_of(bits: u128) -> u64 {
        (bits >> 80) as u64
    }

    /// Rebuilds an id read back from the store, which only holds generated ids.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ID of a workspace, deployment or DAG, or a DAG tag: 1 to 255 of
/// RFC 3986's unreserved characters (ASCII letters, digits, `-`, `.`, `_`,
/// `~`). tokend does not own these entities; it only records which tokens
/// hold roles on them. Ids are organization-scoped: `ws-1` of one
/// organization is not `ws-1` of another, which is why Lookup names the
/// organization. The character set keeps ids free of the separators of
/// Lookup's scopes (`:`, `/`), of whitespace, control and invisible
/// characters, and valid as URL path segments without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId(String);

/// Longest entity id or DAG tag accepted.
pub const MAX_ENTITY_ID_LEN: usize = 255;

/// What an entity id may contain.
fn entity_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

impl EntityId {
    /// Parses an entity id given in `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        if value.len() > MAX_ENTITY_ID_LEN {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {MAX_ENTITY_ID_LEN} characters"),
            ));
        }
        if !value.bytes().all(entity_id_char) {
            return Err(FieldViolation::new(
                field,
                "may contain only ASCII letters, digits, '-', '.', '_' and '~'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// Parses an optional entity id: the empty string means absent.
    pub fn parse_optional(field: &str, value: &str) -> Result<Option<Self>, FieldViolation> {
        if value.is_empty() {
            Ok(None)
        } else {
            Self::parse(field, value).map(Some)
        }
    }

    /// Parses a List filter naming an entity. Looser than [`EntityId::parse`]
    /// on purpose: any text up to 255 characters without control characters
    /// is a valid question, and one no id can match simply matches nothing
    /// (tokens stored before ids were restricted stay findable).
    pub fn parse_filter(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.trim() != value {
            return Err(FieldViolation::new(
                field,
                "must not start or end with whitespace",
            ));
        }
        check_text(field, value, 1, MAX_ENTITY_ID_LEN)?;
        if value.contains(['\n', '\t']) {
            return Err(FieldViolation::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// Rebuilds an id read back from the store.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&OrganizationId> for EntityId {
    fn from(org: &OrganizationId) -> Self {
        Self(org.0.clone())
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_id_gives_back_its_bits_and_creation_time() {
        let random = [0xa5, 1, 2, 3, 4, 5, 6, 7, 8, 0xff];
        let id = TokenId::generate(1_764_000_000_123, random);
        let bits = id.bits().unwrap();
        assert_eq!(id.created_at_millis(), Some(1_764_000_000_123));
        assert_eq!(
            bits & ((1u128 << 80) - 1),
            u128::from_be_bytes({
                let mut b = [0u8; 16];
                b[6..].copy_from_slice(&random);
                b
            })
        );
        // Two ids differing in one random bit have different bits.
        let other = TokenId::generate(1_764_000_000_123, [0xa5, 1, 2, 3, 4, 5, 6, 7, 8, 0xfe]);
        assert_ne!(other.bits(), Some(bits));
    }

    #[test]
    fn an_id_not_of_the_generated_shape_has_no_bits() {
        for text in [
            "",
            "abc",
            "8zzzzzzzzzzzzzzzzzzzzzzzzz",
            "0123456789abcdefghjkmnpqri",
            "0123456789abcdefghjkmnpqrst",
        ] {
            let id = TokenId::from_stored(text.to_owned());
            assert_eq!(id.bits(), None, "{text:?}");
            assert_eq!(id.created_at_millis(), None, "{text:?}");
        }
        let top = TokenId::from_stored("7zzzzzzzzzzzzzzzzzzzzzzzzz".to_owned());
        assert_eq!(top.bits(), Some(u128::MAX));
    }

    #[test]
    fn a_requested_token_id_has_no_control_characters() {
        assert!(TokenId::parse_requested("tokenId", "01m\0").is_err());
        assert!(TokenId::parse_requested("tokenId", "a\u{7f}").is_err());
        assert!(TokenId::parse_requested("tokenId", "' OR 1=1 --").is_ok());
    }

    #[test]
    fn generated_ids_are_time_ordered_and_parse_back() {
        let a = TokenId::generate(1_700_000_000_000, [0xFF; 10]);
        let b = TokenId::generate(1_700_000_000_001, [0x00; 10]);
        assert!(a < b, "{a} < {b}");
        assert_eq!(a.as_str().len(), TOKEN_ID_LEN);
        assert_eq!(TokenId::parse_generated(a.as_str()), Some(a.clone()));
        assert_eq!(TokenId::parse_generated(b.as_str()), Some(b));
    }

    #[test]
    fn parse_generated_refuses_other_shapes() {
        let good = TokenId::generate(1, [7; 10]);
        let s = good.as_str();
        assert!(TokenId::parse_generated(&s[1..]).is_none());
        assert!(TokenId::parse_generated(&format!("{s}0")).is_none());
        assert!(TokenId::parse_generated(&s.to_uppercase()).is_none());
        assert!(TokenId::parse_generated(&format!("i{}", &s[1..])).is_none());
        assert!(TokenId::parse_generated(&format!("8{}", &s[1..])).is_none());
    }

    #[test]
    fn organization_ids() {
        assert!(OrganizationId::parse("organizationId", "clm8q7f6q000008lcgyougpsk").is_ok());
        assert!(OrganizationId::parse("organizationId", "").is_err());
        assert!(OrganizationId::parse("organizationId", "a b").is_err());
        assert!(OrganizationId::parse("organizationId", "a'; DROP").is_err());
        assert!(OrganizationId::parse("organizationId", &"a".repeat(65)).is_err());
    }

    #[test]
    fn entity_ids() {
        for good in [
            "ws-1",
            "clm8q7f6q000008lcgyougpsk",
            "a.b_c~d",
            &"x".repeat(255),
        ] {
            assert!(EntityId::parse("entityId", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            " padded",
            "nul\0",
            "new\nline",
            "dep:1",
            "a/b",
            "two words",
            "tab\tbed",
            "zero\u{200b}width",
            "bidi\u{202e}",
            "caf\u{e9}",
            "%2F",
            &"x".repeat(256),
        ] {
            assert!(EntityId::parse("entityId", bad).is_err(), "{bad:?}");
        }
        assert_eq!(EntityId::parse_optional("entityId", ""), Ok(None));
    }

    #[test]
    fn filters_are_looser_than_ids() {
        assert!(EntityId::parse_filter("dagTags[0]", "my tag ✓").is_ok());
        assert!(EntityId::parse_filter("dagTags[0]", "' OR 1=1 --").is_ok());
        assert!(EntityId::parse_filter("dagTags[0]", " padded").is_err());
        assert!(EntityId::parse_filter("dagTags[0]", "nul\0").is_err());
    }
}
