//! Start-up and shutdown: pool, migrations, services, health, reflection.
//!
//! [`Application::build`] connects and migrates; [`Application::run_until_stopped`]
//! serves until the shutdown future completes. Tests call both with port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::{AppState, TokenService};
use crate::auth::Authenticator;
use crate::cache::CredentialCache;
use crate::config::Settings;
use crate::pb::api_token_service_server::ApiTokenServiceServer;
use crate::store::{Store, StoreError};
use crate::usage::{FailureRecorder, UsageRecorder};

/// The encoded FileDescriptorSet of `proto/tokend/v1` and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tokend_descriptor");

/// The gRPC service name health reports on, besides "".
pub const SERVICE_NAME: &str = "tokend.v1.ApiTokenService";

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
}

/// A migrated database and a bound listener, ready to serve.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    store: Store,
    listener: TcpListener,
}

impl Application {
    /// Connects to the database, migrates it and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let store = Store::connect(settings.database_url.expose(), &settings.store).await?;
        store.migrate().await?;
        let listener = TcpListener::bind(settings.listen).await?;
        Ok(Self {
            settings,
            store,
            listener,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
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
        } = self;
        let local = listener.local_addr()?;
        let usage = Arc::new(UsageRecorder::default());
        let failures = Arc::new(FailureRecorder::default());
        let auth = Authenticator::new(
            store.clone(),
            settings.token_prefix.clone(),
            CredentialCache::new(settings.auth_cache),
            usage.clone(),
            failures.clone(),
        );
        let service = TokenService::new(Arc::new(AppState {
            store: store.clone(),
            auth,
        }));

        let (reporter, health_service) = tonic_health::server::health_reporter();
        set_status(&reporter, ServingStatus::Serving).await;
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let (stop_tx, stop_rx) = watch::channel(false);
        let health_task = tokio::spawn(watch_database(
            store.clone(),
            reporter,
            settings.health_check_interval,
            stop_rx.clone(),
        ));
        let recorders = Recorders {
            usage: usage.clone(),
            failures: failures.clone(),
        };
        let flush_task = tokio::spawn(flush_periodically(
            store.clone(),
            recorders.clone(),
            settings.usage_flush_interval,
            stop_rx,
        ));

        tracing::info!(
            listen = %local,
            database = settings.database_url.kind().as_str(),
            "tokend serving"
        );
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
            let _ = stop_tx.send(true);
            // The health task sets NOT_SERVING as its last act.
            let _ = health_task.await;
        };
        let served = Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(ApiTokenServiceServer::new(service))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                signal,
            )
            .await;
        let _ = flush_task.await;
        recorders.flush(&store).await;
        store.close().await;
        tracing::info!("tokend stopped");
        Ok(served?)
    }
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

async fn set_status(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// Pings the database every `interval` (each ping bounded by the interval)
/// and reports SERVING only while it answers. Sets NOT_SERVING when stopped.
async fn watch_database(
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
    set_status(&reporter, ServingStatus::NotServing).await;
}

/// The write-behind buffers flushed together.
#[derive(Debug, Clone)]
struct Recorders {
    usage: Arc<UsageRecorder>,
    failures: Arc<FailureRecorder>,
}

impl Recorders {
    async fn flush(&self, store: &Store) {
        if let Err(err) = self.usage.flush(store).await {
            tracing::warn!(error = %err, pending = self.usage.pending(), "usage flush failed; will retry");
        }
        if let Err(err) = self.failures.flush(store).await {
            tracing::warn!(error = %err, "failed-authentication flush failed; will retry");
        }
    }
}

/// Writes buffered usage and failures every `interval` until stopped.
async fn flush_periodically(
    store: Store,
    recorders: Recorders,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => break,
        }
        recorders.flush(&store).await;
    }
}
