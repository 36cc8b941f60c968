//! The bearer-secret parser: every string a caller can put after `Bearer `.
//! Never panics; whatever it accepts starts with the prefix, carries the id
//! it reports, and prints back to exactly the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokend::domain::secret::{TokenPrefix, TokenSecret};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let default = TokenPrefix::parse(tokend::cli::DEFAULT_TOKEN_PREFIX).unwrap();
    check(&default, &text);
    // A prefix from the input too, when it is one the service would accept.
    if let Some((head, rest)) = text.split_once('\n')
        && let Ok(prefix) = TokenPrefix::parse(head)
    {
        check(&prefix, rest);
    }
});

fn check(prefix: &TokenPrefix, text: &str) {
    if let Ok(secret) = TokenSecret::parse(prefix, text) {
        assert!(text.starts_with(prefix.as_str()));
        assert!(text.contains(secret.id().as_str()));
        assert_eq!(
            secret.reveal(prefix).expose(),
            text,
            "parse/reveal round trip"
        );
        let _ = secret.digest();
        let _ = secret.short_token(prefix);
    }
}
