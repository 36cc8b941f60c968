//! Start-up and shutdown. [`Application::build`] connects, migrates, binds
//! the listeners and wires every part (the use cases, their recorders, the
//! gRPC services, the guard, metrics); [`Application::run_until_stopped`]
//! serves until the shutdown future completes, then drains. Tests call both
//! with port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::config::{Settings, TlsFiles};
use crate::grpc::ext_authz::ExtAuthzService;
use crate::grpc::guard::GuardLayer;
use crate::grpc::{TokenService, health};
use crate::pb::api_token_service_server::ApiTokenServiceServer;
use crate::service::Tokend;
use crate::service::authenticate::Authenticator;
use crate::service::cache::CredentialCache;
use crate::service::throttle::AuthThrottle;
use crate::service::usage::Recorders;
use crate::service::{feed, retention};
use crate::store::{Store, StoreError};
use crate::telemetry::metrics::{self, Metrics, Sources};

/// The encoded FileDescriptorSet of `proto/tokend/v1` and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tokend_descriptor");

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database connection or migration failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Binding the listener failed.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC transport failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not read the descriptor set (a build defect).
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A TLS file could not be read.
    #[error("TLS: cannot read {path}: {source}")]
    TlsFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Every part of a server, wired and ready: a migrated database, bound
/// listeners, the use cases and the services over them.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    store: Store,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    tls: Option<ServerTlsConfig>,
    recorders: Recorders,
    cache: CredentialCache,
    metrics: Metrics,
    api: TokenService,
    ext_authz: ExtAuthzService,
    health: (HealthReporter, HealthServer<HealthService>),
}

impl Application {
    /// Connects to the database, migrates it, binds the listeners and
    /// builds every part.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let store = Store::connect(settings.database_url.expose(), &settings.store).await?;
        store.migrate().await?;
        let tls = settings.tls.as_ref().map(tls_config).transpose()?;
        let listener = TcpListener::bind(settings.listen).await?;
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(metrics::bind(addr).await?),
            None => None,
        };
        let recorders = Recorders::new(settings.usage_precision);
        let cache = CredentialCache::behind_feed(settings.auth_cache);
        let auth = Authenticator::new(
            store.clone(),
            cache.clone(),
            recorders.usage.clone(),
            recorders.failures.clone(),
            AuthThrottle::new(settings.throttle),
        );
        let tokend = Arc::new(Tokend::new(
            store.clone(),
            auth,
            settings.token_prefix.clone(),
            settings.store.acquire_timeout,
        ));
        let metrics = Metrics::new(Sources {
            tokend: tokend.clone(),
            usage: recorders.usage.clone(),
        });
        let ext_authz = ExtAuthzService::new(tokend.clone(), &settings);
        let api = TokenService::new(tokend, settings.trusted_proxies.clone());
        let health = health::serving().await;
        Ok(Self {
            settings,
            store,
            listener,
            metrics_listener,
            tls,
            recorders,
            cache,
            metrics,
            api,
            ext_authz,
            health,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The metrics address actually bound, if metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then: health NOT_SERVING, no new
    /// calls, in-flight calls finish, buffered usage flushed, pool closed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let Self {
            settings,
            store,
            listener,
            metrics_listener,
            tls,
            recorders,
            cache,
            metrics,
            api,
            ext_authz,
            health: (reporter, health_service),
        } = self;
        let local = listener.local_addr()?;
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let (stop_tx, stop_rx) = watch::channel(false);
        let health_task = tokio::spawn(health::watch_database(
            store.clone(),
            reporter,
            settings.health_check_interval,
            stop_rx.clone(),
        ));
        let metrics_task = metrics_listener.map(|listener| {
            tokio::spawn(metrics::serve(listener, metrics.clone(), stop_rx.clone()))
        });
        let prune_task = settings.audit_retention.map(|keep| {
            tokio::spawn(retention::prune_periodically(
                store.clone(),
                keep,
                stop_rx.clone(),
            ))
        });
        let feed_task = tokio::spawn(feed::run(
            store.clone(),
            cache,
            settings.change_feed,
            stop_rx.clone(),
        ));
        let flush_task = tokio::spawn(recorders.clone().flush_periodically(
            store.clone(),
            settings.usage_flush_interval,
            stop_rx,
        ));

        tracing::info!(
            listen = %local,
            tls = tls.is_some(),
            database = settings.database_url.kind().as_str(),
            "tokend serving"
        );
        // Notified the moment shutdown is asked for: the grace period counts
        // from then.
        let stopping = Arc::new(Notify::new());
        let signal = {
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                stopping.notify_one();
                tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
                let _ = stop_tx.send(true);
                // The health task sets NOT_SERVING and ends the health
                // watches as its last act; then the listener closes.
                let _ = health_task.await;
            }
        };
        let limits = settings.limits;
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        let api =
            ApiTokenServiceServer::new(api).max_decoding_message_size(limits.max_message_size);
        // Check's request carries the client's whole header block: the
        // same message cap as every RPC.
        let ext_authz =
            AuthorizationServer::new(ext_authz).max_decoding_message_size(limits.max_message_size);
        // No `.timeout()`: the guard holds every call to its deadline and
        // answers DEADLINE_EXCEEDED, where tonic's would answer CANCELLED.
        let serve = builder
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_max_header_list_size(limits.max_header_list_size)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .layer(GuardLayer::new(&settings, metrics.clone()))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(api)
            .add_service(ext_authz)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                signal,
            );
        let grace = settings.shutdown_grace_period;
        let (drain, wind_down) = shutdown_budget(grace);
        let mut stop_started = None;
        let served = tokio::select! {
            served = serve => served,
            () = async {
                stopping.notified().await;
                stop_started = Some(Instant::now());
                tokio::time::sleep(drain).await;
            } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over: abandoning calls still in flight");
                Ok(())
            }
        };
        // Whatever the database does, the process is gone by the end of the
        // grace period: the last flush and the pool's close get what is left.
        let left = stop_started.map_or(wind_down, |started| {
            grace.saturating_sub(started.elapsed()).max(wind_down)
        });
        let finished = tokio::time::timeout(left, async {
            let _ = flush_task.await;
            let _ = feed_task.await;
            if let Some(task) = prune_task {
                let _ = task.await;
            }
            if let Some(task) = metrics_task {
                let _ = task.await;
            }
            recorders.flush(&store).await;
            store.close().await;
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                unflushed_usage = recorders.usage.pending(),
                "grace period over: the database did not take the last usage flush in time"
            );
        }
        tracing::info!("tokend stopped");
        Ok(served?)
    }
}

/// How the shutdown grace period is spent: in-flight calls get most of it
/// (`drain`), the final usage flush and pool close the rest (`wind_down`:
/// a quarter, at most two seconds), so a database that stops answering
/// cannot keep the process past the grace period.
fn shutdown_budget(grace: Duration) -> (Duration, Duration) {
    let wind_down = (grace / 4).min(Duration::from_secs(2));
    (grace - wind_down, wind_down)
}

fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, StartupError> {
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).map_err(|source| StartupError::TlsFile {
            path: path.display().to_string(),
            source,
        })
    };
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?));
    if let Some(ca) = &files.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shutdown_budget_adds_up_to_the_grace_period() {
        for (grace_ms, wind_down_ms) in [(0, 0), (400, 100), (4_000, 1_000), (20_000, 2_000)] {
            let grace = Duration::from_millis(grace_ms);
            let (drain, wind_down) = shutdown_budget(grace);
            assert_eq!(wind_down, Duration::from_millis(wind_down_ms), "{grace:?}");
            assert_eq!(drain + wind_down, grace, "{grace:?}");
        }
    }
}
