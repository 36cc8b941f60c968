//! `grpc.health.v1.Health`: "" and `tokend.v1.ApiTokenService` report
//! SERVING only while the database answers; `liveness` stays SERVING while
//! the process runs (for liveness probes: a replica whose database is down
//! is not ready, but restarting it would not help).

use std::time::Duration;

use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::store::Store;

/// The gRPC service name health reports on, besides "".
pub const SERVICE_NAME: &str = "tokend.v1.ApiTokenService";

/// The health service name that stays SERVING while the process runs.
pub const LIVENESS_SERVICE: &str = "liveness";

/// A health service reporting SERVING, and its reporter.
pub async fn serving() -> (HealthReporter, HealthServer<HealthService>) {
    let reporter = HealthReporter::new();
    let service = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
    set_status(&reporter, ServingStatus::Serving).await;
    reporter
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    (reporter, service)
}

async fn set_status(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// Pings the database every `interval` (each ping bounded by the interval)
/// and reports SERVING only while it answers. When `stop` changes: NOT_SERVING
/// and every health Watch ended.
pub async fn watch_database(
    store: Store,
    reporter: HealthReporter,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => break,
        }
        let answer =
            tokio::time::timeout(interval.max(Duration::from_millis(500)), store.ping()).await;
        let up = matches!(answer, Ok(Ok(())));
        if up != serving {
            match &answer {
                Ok(Err(err)) => tracing::warn!(error = %err, "database check failed: NOT_SERVING"),
                Err(_) => tracing::warn!("database check timed out: NOT_SERVING"),
                Ok(Ok(())) => tracing::info!("database answers again: SERVING"),
            }
            let status = if up {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_status(&reporter, status).await;
            serving = up;
        }
    }
    end_watches(reporter).await;
}

/// NOT_SERVING for the server, then every health Watch stream ends (after
/// delivering it): a client-side health watch is a call that never finishes
/// by itself and would hold the drain for the whole grace period. Check
/// keeps answering, NOT_SERVING, while the drain lasts.
async fn end_watches(mut reporter: HealthReporter) {
    set_status(&reporter, ServingStatus::NotServing).await;
    for (service, status) in [
        ("", ServingStatus::NotServing),
        (SERVICE_NAME, ServingStatus::NotServing),
        (LIVENESS_SERVICE, ServingStatus::Serving),
    ] {
        // Dropping a status drops its sender, which ends its watchers;
        // setting it again makes a fresh one for Check.
        reporter.clear_service_status(service).await;
        reporter.set_service_status(service, status).await;
    }
}
