//! A call's deadline: the caller's `grpc-timeout` when it brings one, capped
//! by the server's `--request-timeout`. The guard answers DEADLINE_EXCEEDED
//! when it passes (tonic's own `Server::timeout` answers CANCELLED, which
//! says the caller gave up and which Envoy turns into 499).

use std::time::Duration;

use http::HeaderMap;

/// The header in which a gRPC client sends its deadline.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// How long the call may run: the shorter of the caller's `grpc-timeout`
/// and `server`. A missing or malformed header leaves `server` (as tonic
/// does).
pub fn call_deadline(headers: &HeaderMap, server: Duration) -> Duration {
    headers
        .get(GRPC_TIMEOUT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map_or(server, |client| client.min(server))
}

/// `grpc-timeout` as the gRPC over HTTP/2 spec writes it: at most 8 ASCII
/// digits and a unit, `H` `M` `S` `m` `u` `n`.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let digits = value.get(..value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match value.as_bytes().last()? {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(GRPC_TIMEOUT, value.parse().unwrap());
        map
    }

    #[test]
    fn grpc_timeout_units_are_read() {
        for (value, expected) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("4S", Duration::from_secs(4)),
            ("500m", Duration::from_millis(500)),
            ("250u", Duration::from_micros(250)),
            ("99999999n", Duration::from_nanos(99_999_999)),
            ("0m", Duration::ZERO),
        ] {
            assert_eq!(parse_grpc_timeout(value), Some(expected), "{value}");
        }
        for bad in [
            "",
            "m",
            "5",
            "5x",
            "-5m",
            "123456789m",
            " 5m",
            "5 m",
            "5mm",
            "é",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_shorter_deadline_wins_and_a_bad_header_is_ignored() {
        let server = Duration::from_secs(5);
        assert_eq!(call_deadline(&HeaderMap::new(), server), server);
        assert_eq!(
            call_deadline(&headers("300m"), server),
            Duration::from_millis(300)
        );
        assert_eq!(call_deadline(&headers("1H"), server), server);
        assert_eq!(call_deadline(&headers("soon"), server), server);
    }
}
