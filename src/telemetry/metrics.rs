//! Prometheus metrics, served as text on `--metrics-listen` at `/metrics`
//! (the listener is in [`listener`]).
//!
//! Labels are drawn from closed sets (known method names, gRPC code names,
//! fixed failure reasons, budget names), never from request content, so a
//! client can neither grow the series count nor get a secret into a label.

mod listener;

pub use listener::{MAX_CONNECTIONS, bind, serve};

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::time::now_seconds;
use crate::service::Tokend;
use crate::service::usage::UsageRecorder;

/// The labels of a finished call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `Service/Method` for known methods, `other` for anything else.
    pub method: &'static str,
    /// The gRPC status code name (`OK`, `NOT_FOUND`, ...).
    pub code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    budget: &'static str,
}

/// `budget` label: the main in-flight budget (`--max-in-flight`) was full.
pub const SHED_IN_FLIGHT: &str = "in_flight";
/// `budget` label: the budget for calls without a well-formed credential
/// (`--max-unauthenticated-in-flight`) was full.
pub const SHED_UNAUTHENTICATED: &str = "unauthenticated";
/// `budget` label: the client address held its share
/// (`--max-in-flight-per-client`).
pub const SHED_PER_CLIENT: &str = "per_client";
const SHED_BUDGETS: [&str; 3] = [SHED_IN_FLIGHT, SHED_UNAUTHENTICATED, SHED_PER_CLIENT];

/// Every metric the request path updates. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    calls: Family<CallLabels, Counter>,
    latency: Family<CallLabels, Histogram>,
    shed: Counter,
    shed_by_budget: Family<BudgetLabels, Counter>,
    body_timeouts: Counter,
}

/// Where the scrape-time values come from: the use cases (authentication
/// failures, the credential cache, the database pools) and the usage buffer.
#[derive(Debug)]
pub struct Sources {
    /// The use cases.
    pub tokend: Arc<Tokend>,
    /// The usage buffer (pending tokens, flushes).
    pub usage: Arc<UsageRecorder>,
}

impl Metrics {
    /// Registers every metric; `sources` are read at each scrape.
    pub fn new(sources: Sources) -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let latency = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~3.3 s
            Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
        });
        let shed = Counter::default();
        let shed_by_budget = Family::<BudgetLabels, Counter>::default();
        for budget in SHED_BUDGETS {
            // Every series exists from the start, at 0.
            let _ = shed_by_budget.get_or_create(&BudgetLabels { budget });
        }
        let body_timeouts = Counter::default();
        registry.register(
            "tokend_grpc_requests",
            "Finished gRPC calls by method and status code",
            calls.clone(),
        );
        registry.register(
            "tokend_grpc_request_duration_seconds",
            "gRPC call latency by method and status code",
            latency.clone(),
        );
        registry.register(
            "tokend_shed_requests",
            "Calls refused at once because an in-flight budget was full (UNAVAILABLE; RESOURCE_EXHAUSTED for a client over its share)",
            shed.clone(),
        );
        registry.register(
            "tokend_shed_requests_by_budget",
            "tokend_shed_requests by the budget that was full: in_flight, unauthenticated (calls without a well-formed credential), per_client",
            shed_by_budget.clone(),
        );
        registry.register(
            "tokend_request_body_timeouts",
            "Calls answered DEADLINE_EXCEEDED because their request body had not arrived in full within --request-body-timeout",
            body_timeouts.clone(),
        );
        registry.register_collector(Box::new(Live { sources }));
        Self {
            registry: Arc::new(registry),
            calls,
            latency,
            shed,
            shed_by_budget,
            body_timeouts,
        }
    }

    /// Counts a finished call and its latency.
    pub fn observe_call(&self, labels: CallLabels, elapsed: Duration) {
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.calls.get_or_create(&labels).inc();
    }

    /// Counts a call refused because `budget` (one of the `SHED_*` labels)
    /// was full.
    pub fn observe_shed(&self, budget: &'static str) {
        self.shed.inc();
        self.shed_by_budget
            .get_or_create(&BudgetLabels { budget })
            .inc();
    }

    /// Counts a call whose request body missed its deadline.
    pub fn observe_body_timeout(&self) {
        self.body_timeouts.inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String cannot fail; keep a trace if it ever does.
            let _ = writeln!(out, "# encoding error: {err}");
        }
        out
    }
}

/// Values read at scrape time rather than counted on the request path.
#[derive(Debug)]
struct Live {
    sources: Sources,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let auth = self.sources.tokend.auth();
        let cache = auth.cache();
        let stats = cache.stats();
        let counter = |encoder: &mut DescriptorEncoder, name, help, value: u64| {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)
        };
        counter(
            &mut encoder,
            "tokend_auth_cache_hits",
            "Credential lookups answered by the in-memory cache",
            stats.hits.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "tokend_auth_cache_misses",
            "Credential lookups that went to the database",
            stats.misses.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "tokend_auth_dead_ids",
            "Secrets refused from memory because their id is not a live token's (no cache entry, no query)",
            stats.dead_ids.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "tokend_db_statements",
            "SQL statements this replica ran through its pools (not the change feed's listening connection)",
            self.sources.tokend.store().statements(),
        )?;
        let gauge = |encoder: &mut DescriptorEncoder, name, help, value: i64| {
            ConstGauge::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)
        };
        gauge(
            &mut encoder,
            "tokend_auth_cache_entries",
            "Entries in the credential cache",
            cache.entry_count() as i64,
        )?;
        gauge(
            &mut encoder,
            "tokend_change_feed_synced",
            "1 while the change feed is current and the credential cache is in use; 0 while it is bypassed",
            i64::from(cache.is_synced()),
        )?;
        gauge(
            &mut encoder,
            "tokend_live_token_ids",
            "Token ids in the in-memory live-id set (-1 while it is not trusted)",
            if cache.live().is_trusted() {
                cache.live().len() as i64
            } else {
                -1
            },
        )?;
        let mut family = encoder.encode_descriptor(
            "tokend_auth_failures",
            "Failed bearer authentications by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in auth.stats().failures() {
            ConstCounter::new(count).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tokend_ext_authz_checks",
            "Envoy ext_authz Check verdicts by class (allowed; forbidden: the route's requirement is not met; route_misconfigured; unauthenticated; throttled; error: the database or a bug)",
            None,
            MetricType::Counter,
        )?;
        for (verdict, count) in self.sources.tokend.check_stats().counts() {
            ConstCounter::new(count).encode(family.encode_family(&[("verdict", verdict)])?)?;
        }
        counter(
            &mut encoder,
            "tokend_auth_throttled",
            "Failed authentications answered RESOURCE_EXHAUSTED because their client address passed the failure threshold",
            auth.stats().throttled(),
        )?;
        let flushes = self.sources.usage.stats();
        counter(
            &mut encoder,
            "tokend_usage_writes",
            "Usage flushes that wrote anything (one batched UPDATE per 500 tokens, at most one flush per interval)",
            flushes.writes.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "tokend_usage_rows",
            "Token rows those statements updated",
            flushes.rows.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "tokend_usage_coalesced",
            "Uses not written because one from the same address was recorded less than --usage-precision earlier",
            flushes.coalesced.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut encoder,
            "tokend_usage_pending_tokens",
            "Tokens with uses not yet written to the database",
            self.sources.usage.pending() as i64,
        )?;
        let lag = if self.sources.usage.pending() == 0 {
            0
        } else {
            (now_seconds() - flushes.last_success.load(Ordering::Relaxed)).max(0)
        };
        gauge(
            &mut encoder,
            "tokend_usage_flush_lag_seconds",
            "Seconds since the last successful usage flush while uses are pending (0 when none are)",
            lag,
        )?;
        let pools = self.sources.tokend.store().pool_stats();
        let mut family = encoder.encode_descriptor(
            "tokend_db_pool_connections",
            "Database pool connections by pool and state",
            None,
            MetricType::Gauge,
        )?;
        for pool in &pools {
            for (state, value) in [("idle", pool.idle), ("in_use", pool.size - pool.idle)] {
                let labels = [("pool", pool.name), ("state", state)];
                ConstGauge::new(value as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "tokend_db_pool_max_connections",
            "Largest size of each database pool",
            None,
            MetricType::Gauge,
        )?;
        for pool in &pools {
            let labels = [("pool", pool.name)];
            ConstGauge::new(i64::from(pool.max)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The gRPC code name of a `grpc-status` value.
pub fn code_name(code: &[u8]) -> &'static str {
    match code {
        b"0" => "OK",
        b"1" => "CANCELLED",
        b"2" => "UNKNOWN",
        b"3" => "INVALID_ARGUMENT",
        b"4" => "DEADLINE_EXCEEDED",
        b"5" => "NOT_FOUND",
        b"6" => "ALREADY_EXISTS",
        b"7" => "PERMISSION_DENIED",
        b"8" => "RESOURCE_EXHAUSTED",
        b"9" => "FAILED_PRECONDITION",
        b"10" => "ABORTED",
        b"11" => "OUT_OF_RANGE",
        b"12" => "UNIMPLEMENTED",
        b"13" => "INTERNAL",
        b"14" => "UNAVAILABLE",
        b"15" => "DATA_LOSS",
        b"16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// The method label of a request path: one of a closed set.
pub fn method_label(path: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "tokend.v1.ApiTokenService/GetApiToken",
        "tokend.v1.ApiTokenService/ListApiTokens",
        "tokend.v1.ApiTokenService/LookupApiToken",
        "tokend.v1.ApiTokenService/CreateApiToken",
        "tokend.v1.ApiTokenService/UpdateApiToken",
        "tokend.v1.ApiTokenService/UpdateApiTokenRoles",
        "tokend.v1.ApiTokenService/RotateApiToken",
        "tokend.v1.ApiTokenService/DeleteApiToken",
        "tokend.v1.ApiTokenService/ListAuditEvents",
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
        "envoy.service.auth.v3.Authorization/Check",
    ];
    let path = path.strip_prefix('/').unwrap_or(path);
    if let Some(known) = KNOWN.iter().find(|k| **k == path) {
        return known;
    }
    if path.starts_with("grpc.reflection.") {
        return "reflection";
    }
    "other"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_a_closed_set() {
        assert_eq!(
            method_label("/tokend.v1.ApiTokenService/GetApiToken"),
            "tokend.v1.ApiTokenService/GetApiToken"
        );
        assert_eq!(
            method_label("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            "reflection"
        );
        assert_eq!(method_label("/tokend.v1.ApiTokenService/Nope"), "other");
        assert_eq!(method_label("/secret.tokend.abc"), "other");
    }

    #[test]
    fn code_names() {
        assert_eq!(code_name(b"0"), "OK");
        assert_eq!(code_name(b"16"), "UNAUTHENTICATED");
        assert_eq!(code_name(b"99"), "UNKNOWN");
    }
}
