//! PostgreSQL faults under load, injected by a TCP proxy between tokend and
//! the database: connections cut and refused (the database stopped), and
//! packets swallowed (the database unreachable: a partition). Calls must
//! fail fast with UNAVAILABLE, health must turn NOT_SERVING within 5 s, and
//! service must come back within 5 s of the database, with no restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokend::pb;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::*;

const UP: u8 = 0;
const DOWN: u8 = 1;
const BLACKHOLE: u8 = 2;

/// A TCP proxy to PostgreSQL whose behaviour the test switches.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    /// Bumped on every mode change; connections watch it.
    changed: watch::Sender<u8>,
}

impl Proxy {
    async fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let mode = Arc::new(AtomicU8::new(UP));
        let (changed, _) = watch::channel(UP);
        let accept_mode = mode.clone();
        let accept_changes = changed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = accept_mode.clone();
                let mut changes = accept_changes.subscribe();
                tokio::spawn(async move {
                    match mode.load(Ordering::SeqCst) {
                        DOWN => drop(client),
                        BLACKHOLE => {
                            // Hold the socket, answer nothing, until the
                            // mode changes; then drop it.
                            let _ = changes.changed().await;
                            drop(client);
                        }
                        _ => {
                            let Ok(server) = TcpStream::connect(upstream).await else {
                                return;
                            };
                            relay(client, server, mode, changes).await;
                        }
                    }
                });
            }
        });
        Self {
            port,
            mode,
            changed,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.changed.send_replace(mode);
    }
}

/// Copies both ways until the proxy goes DOWN (sockets dropped: the
/// database "stopped") or BLACKHOLE (copying stops, sockets stay open).
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    mode: Arc<AtomicU8>,
    mut changes: watch::Receiver<u8>,
) {
    loop {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                match mode.load(Ordering::SeqCst) {
                    DOWN => return,
                    BLACKHOLE => {
                        // Swallow: keep both sockets, move no bytes, until
                        // the next change, then cut (as a partition that
                        // heals leaves dead TCP sessions behind).
                        let _ = changes.changed().await;
                        return;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// One call's outcome under load.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    at: Instant,
    code: Code,
    took: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_or_unreachable_under_load() {
    let (db, token_id, secret) = database_with_owner(Db::Postgres, "bootstrap").await;
    let direct = db.url();
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let name = direct.rsplit('/').next().expect("db name").to_owned();
    let via_proxy = with_database(
        &format!("postgres://postgres@127.0.0.1:{}", proxy.port),
        &name,
    );
    let budget = Duration::from_secs(2);
    let replica = Replica::start(&via_proxy, |s| {
        s.store.acquire_timeout = budget;
        s.health_check_interval = Duration::from_millis(500);
    })
    .await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", replica.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let health = HealthClient::new(channel);
    let status = || {
        let mut health = health.clone();
        async move {
            health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .ok()
                .and_then(|r| ServingStatus::try_from(r.into_inner().status).ok())
        }
    };

    // Load: four callers looping authenticated Gets (each touches the
    // database) and Creates.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let mut load = Vec::new();
    for worker in 0..4 {
        let mut client = replica.client.clone();
        let (stop, outcomes, secret, token_id) = (
            stop.clone(),
            outcomes.clone(),
            secret.clone(),
            token_id.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                let code = if worker == 0 && n.is_multiple_of(4) {
                    let request =
                        with_bearer(&secret, organization_token(&format!("load {worker}-{n}")));
                    client.create_api_token(request).await.map(|_| ())
                } else {
                    let request = with_bearer(
                        &secret,
                        pb::GetApiTokenRequest {
                            organization_id: ORG.into(),
                            token_id: token_id.clone(),
                        },
                    );
                    client.get_api_token(request).await.map(|_| ())
                }
                .map_or_else(|s| s.code(), |()| Code::Ok);
                outcomes.lock().await.push(Outcome {
                    at: started,
                    code,
                    took: started.elapsed(),
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    for (fault, mode) in [("stopped", DOWN), ("unreachable", BLACKHOLE)] {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let healthy_before = outcomes
            .lock()
            .await
            .iter()
            .filter(|o| o.code == Code::Ok)
            .count();
        assert!(healthy_before > 0, "load runs before the {fault} fault");

        let broken_at = Instant::now();
        proxy.set(mode);
        let mut not_serving_after = None;
        while broken_at.elapsed() < Duration::from_secs(8) {
            if status().await == Some(ServingStatus::NotServing) {
                not_serving_after = Some(broken_at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let not_serving_after =
            not_serving_after.unwrap_or_else(|| panic!("health never NOT_SERVING ({fault})"));
        assert!(
            not_serving_after <= Duration::from_secs(5),
            "NOT_SERVING {not_serving_after:?} after the database {fault}"
        );
        // Let the outage run a while under load.
        tokio::time::sleep(Duration::from_secs(3)).await;

        let repaired_at = Instant::now();
        proxy.set(UP);
        let mut serving_after = None;
        while repaired_at.elapsed() < Duration::from_secs(8) {
            if status().await == Some(ServingStatus::Serving) {
                serving_after = Some(repaired_at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let serving_after =
            serving_after.unwrap_or_else(|| panic!("health never SERVING again ({fault})"));
        assert!(
            serving_after <= Duration::from_secs(5),
            "SERVING {serving_after:?} after the database came back ({fault})"
        );
        // Calls succeed again within 5 s of the repair.
        let recovered = loop {
            let ok = outcomes
                .lock()
                .await
                .iter()
                .any(|o| o.at > repaired_at && o.code == Code::Ok);
            if ok || repaired_at.elapsed() > Duration::from_secs(8) {
                break ok.then(|| repaired_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let recovered = recovered.unwrap_or_else(|| panic!("calls never recovered ({fault})"));
        assert!(
            recovered <= Duration::from_secs(5),
            "calls back after {recovered:?} ({fault})"
        );

        // During the outage: every failure was UNAVAILABLE, and no call
        // outlived the database budget by more than a margin.
        let during: Vec<Outcome> = outcomes
            .lock()
            .await
            .iter()
            .filter(|o| o.at >= broken_at && o.at < repaired_at)
            .copied()
            .collect();
        let failed: Vec<&Outcome> = during.iter().filter(|o| o.code != Code::Ok).collect();
        assert!(!failed.is_empty(), "the {fault} database failed some calls");
        for o in &failed {
            assert_eq!(o.code, Code::Unavailable, "{fault}: {o:?}");
        }
        let slowest = during.iter().map(|o| o.took).max().unwrap_or_default();
        assert!(
            slowest <= budget + Duration::from_millis(1500),
            "{fault}: a call took {slowest:?} (budget {budget:?})"
        );
        eprintln!(
            "{fault}: NOT_SERVING after {not_serving_after:?}, SERVING {serving_after:?} after repair, \
             calls back after {recovered:?}; {} calls during the outage, {} UNAVAILABLE, slowest {slowest:?}",
            during.len(),
            failed.len()
        );
    }

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load task");
    }
    replica.stop().await;
}
