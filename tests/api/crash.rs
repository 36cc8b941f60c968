//! Crash safety: `kill -9` of a real `tokend serve` in the middle of a burst
//! of creates, role updates, rotates and deletes, several times over on one
//! database, then a restart and a check of every acknowledged operation and
//! of the tables' invariants. An operation that was in flight when the
//! process died may or may not have happened, but never half.

use crate::helpers::Secret as _;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use tokend::pb;
use tokend::pb::api_token_service_client::ApiTokenServiceClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::{
    Db, ORG, TestDb, database_with_owner, eventually_within, with_bearer, workspace_token,
};
use crate::process::{Server, free_port};

crate::both_databases!(kill_9_mid_burst_loses_nothing_acknowledged);

const ROUNDS: usize = 5;
const WORKERS: usize = 6;
/// Longest a round may take to reach its kill depth on a busy machine.
const ROUND_LIMIT: Duration = Duration::from_secs(60);

type Roles = BTreeSet<(i32, String, String, Option<String>)>;

/// UpdateApiTokenRoles' SubjectRoles answer as the bindings it stands for.
fn flatten(roles: pb::SubjectRoles) -> Vec<pb::ApiTokenRole> {
    crate::helpers::bindings_of(roles)
}

fn roles_of(roles: &[pb::ApiTokenRole]) -> Roles {
    roles
        .iter()
        .map(|r| {
            (
                r.entity_type,
                r.entity_id.clone(),
                r.role.clone(),
                r.deployment_id.clone(),
            )
        })
        .collect()
}

/// What the server acknowledged about one token, and the one operation on
/// it that may have been cut off.
#[derive(Debug, Clone)]
struct Expected {
    id: String,
    roles: Roles,
    secret: String,
    /// Secrets replaced by acknowledged rotates (grace 0 or 1 s): dead by
    /// the time of the check.
    old_secrets: Vec<String>,
    deleted: bool,
    in_flight: Option<Op>,
}

#[derive(Debug, Clone)]
enum Op {
    Rotate,
    Roles(Roles),
    Delete,
}

#[derive(Default)]
struct Ledger {
    tokens: HashMap<String, Expected>,
    /// Creates sent but never answered: their token may exist.
    creates_in_flight: usize,
    acknowledged: usize,
}

struct Burst {
    client: ApiTokenServiceClient<Channel>,
    secret: String,
    ledger: Arc<Mutex<Ledger>>,
    acks: Arc<AtomicUsize>,
    killed: Arc<AtomicBool>,
    /// Operations sent before the kill and never answered: the kill cut
    /// them off.
    cut_off: Arc<AtomicUsize>,
}

impl Burst {
    /// An error is only acceptable once the server is being killed; the
    /// operation then stays in flight. `sent_before_kill` says whether it
    /// was sent while the server still ran.
    fn failed(&self, what: &str, status: tonic::Status, sent_before_kill: bool) {
        assert!(
            self.killed.load(Ordering::SeqCst),
            "{what} failed before the kill: {status:?}"
        );
        if sent_before_kill {
            self.cut_off.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether the kill has not been decided yet (read just before a send).
    fn alive(&self) -> bool {
        !self.killed.load(Ordering::SeqCst)
    }

    fn acknowledge(&self, update: impl FnOnce(&mut Ledger)) {
        let mut ledger = self.ledger.lock().unwrap();
        update(&mut ledger);
        ledger.acknowledged += 1;
        self.acks.fetch_add(1, Ordering::SeqCst);
    }

    /// One worker: its own tokens only, one operation at a time, until the
    /// server dies under it.
    async fn run(mut self, worker: usize, round: usize) {
        let workspace = format!("ws-crash-{worker}");
        let mut mine: Vec<String> = Vec::new();
        for step in 0.. {
            let pick = (step * 7 + worker) % mine.len().max(1);
            let op = if mine.is_empty() { 0 } else { step % 5 };
            match op {
                0 | 1 => {
                    let name = format!("crash-{round}-{worker}-{step}");
                    let mut request = workspace_token(&name, &workspace);
                    request.role = "WORKSPACE_OPERATOR".into();
                    let sent_before_kill = self.alive();
                    match self
                        .client
                        .create_api_token(with_bearer(&self.secret, request))
                        .await
                    {
                        Ok(created) => {
                            let created = created.into_inner();
                            mine.push(created.id.clone());
                            self.acknowledge(|l| {
                                l.tokens.insert(
                                    created.id.clone(),
                                    Expected {
                                        id: created.id.clone(),
                                        roles: roles_of(&created.roles),
                                        secret: created.secret(),
                                        old_secrets: Vec::new(),
                                        deleted: false,
                                        in_flight: None,
                                    },
                                );
                            });
                        }
                        Err(status) => {
                            self.failed("create", status, sent_before_kill);
                            self.ledger.lock().unwrap().creates_in_flight += 1;
                            return;
                        }
                    }
                }
                2 => {
                    let id = mine[pick].clone();
                    self.mark(&id, Op::Rotate);
                    let grace = if step % 2 == 0 { 0 } else { 1 };
                    let request = pb::RotateApiTokenRequest {
                        organization_id: ORG.into(),
                        token_id: id.clone(),
                        grace_period_seconds: grace,
                    };
                    let sent_before_kill = self.alive();
                    match self
                        .client
                        .rotate_api_token(with_bearer(&self.secret, request))
                        .await
                    {
                        Ok(rotated) => {
                            let rotated = rotated.into_inner();
                            self.acknowledge(|l| {
                                let t = l.tokens.get_mut(&id).unwrap();
                                let old = std::mem::replace(&mut t.secret, rotated.secret());
                                t.old_secrets.push(old);
                                t.in_flight = None;
                            });
                        }
                        Err(status) => return self.failed("rotate", status, sent_before_kill),
                    }
                }
                3 => {
                    let id = mine[pick].clone();
                    let roles = vec![
                        pb::ApiTokenRole {
                            entity_id: workspace.clone(),
                            entity_type: pb::api_token_role::EntityType::Workspace as i32,
                            role: if step % 2 == 0 {
                                "WORKSPACE_AUTHOR"
                            } else {
                                "WORKSPACE_MEMBER"
                            }
                            .into(),
                            deployment_id: None,
                        },
                        pb::ApiTokenRole {
                            entity_id: format!("dag-{step}"),
                            entity_type: pb::api_token_role::EntityType::Dag as i32,
                            role: "DAG_VIEWER".into(),
                            deployment_id: Some("dep-crash".into()),
                        },
                    ];
                    self.mark(&id, Op::Roles(roles_of(&roles)));
                    let request = pb::UpdateApiTokenRolesRequest {
                        organization_id: ORG.into(),
                        token_id: id.clone(),
                        roles,
                    };
                    let sent_before_kill = self.alive();
                    match self
                        .client
                        .update_api_token_roles(with_bearer(&self.secret, request))
                        .await
                    {
                        Ok(updated) => {
                            let updated = roles_of(&flatten(updated.into_inner()));
                            self.acknowledge(|l| {
                                let t = l.tokens.get_mut(&id).unwrap();
                                t.roles = updated;
                                t.in_flight = None;
                            });
                        }
                        Err(status) => {
                            return self.failed("update roles", status, sent_before_kill);
                        }
                    }
                }
                _ => {
                    let id = mine.swap_remove(pick);
                    self.mark(&id, Op::Delete);
                    let request = pb::DeleteApiTokenRequest {
                        organization_id: ORG.into(),
                        token_id: id.clone(),
                    };
                    let sent_before_kill = self.alive();
                    match self
                        .client
                        .delete_api_token(with_bearer(&self.secret, request))
                        .await
                    {
                        Ok(_) => self.acknowledge(|l| {
                            let t = l.tokens.get_mut(&id).unwrap();
                            t.deleted = true;
                            t.in_flight = None;
                        }),
                        Err(status) => return self.failed("delete", status, sent_before_kill),
                    }
                }
            }
        }
    }

    fn mark(&self, id: &str, op: Op) {
        self.ledger
            .lock()
            .unwrap()
            .tokens
            .get_mut(id)
            .unwrap()
            .in_flight = Some(op);
    }
}

async fn count(test_db: &TestDb, sql: &str) -> i64 {
    let conn = test_db.connect().await;
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row");
    let n: i64 = row.try_get_by_index(0).expect("count");
    let _ = conn.close().await;
    n
}

async fn kill_9_mid_burst_loses_nothing_acknowledged(db: Db) {
    let (test_db, owner_id, secret) = database_with_owner(db, "owner").await;
    let url = test_db.url();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // Operations sent before a kill and never answered, over all rounds.
    let mut total_cut_off = 0;

    for round in 0..ROUNDS {
        let listen = format!("127.0.0.1:{}", free_port());
        let server = Server::start(&url, &listen);
        server.wait_serving().await;
        let acks = Arc::new(AtomicUsize::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let cut_off = Arc::new(AtomicUsize::new(0));
        let client = ApiTokenServiceClient::new(server.channel());
        let mut workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let burst = Burst {
                    client: client.clone(),
                    secret: secret.clone(),
                    ledger: ledger.clone(),
                    acks: acks.clone(),
                    killed: killed.clone(),
                    cut_off: cut_off.clone(),
                };
                tokio::spawn(burst.run(worker, round))
            })
            .collect();
        // Kill at a different depth each round. A worker only ends on an
        // error, which before the kill is a failure: stop waiting then and
        // let the join below report it.
        let target = 20 + 13 * round;
        let reached = eventually_within(
            &format!("round {round} to reach {target} acknowledgements"),
            ROUND_LIMIT,
            || {
                let (acks, stopped) = (
                    acks.load(Ordering::SeqCst),
                    workers.iter().any(|w| w.is_finished()),
                );
                async move { (acks >= target || stopped).then_some(acks >= target) }
            },
        )
        .await;
        if !reached {
            killed.store(true, Ordering::SeqCst);
            for worker in workers.drain(..) {
                if worker.is_finished() {
                    worker.await.expect("worker panicked");
                }
            }
            panic!("a worker stopped before the kill");
        }
        killed.store(true, Ordering::SeqCst);
        let log = server.kill9();
        for worker in workers {
            tokio::time::timeout(ROUND_LIMIT, worker)
                .await
                .expect("a worker still runs after the kill")
                .expect("worker panicked");
        }
        assert!(!log.contains("panicked"), "{log}");
        let cut_off = cut_off.load(Ordering::SeqCst);
        total_cut_off += cut_off;
        let l = ledger.lock().unwrap();
        eprintln!(
            "{db:?} round {round}: killed after {} acknowledgements this round ({} in all, {} tokens known, {} in flight, {cut_off} sent before the kill and cut off)",
            acks.load(Ordering::SeqCst),
            l.acknowledged,
            l.tokens.len(),
            l.tokens.values().filter(|t| t.in_flight.is_some()).count() + l.creates_in_flight
        );
        drop(l);
    }

    // The kills interrupted calls: some were sent while the server ran and
    // never answered. (One round may cut off none: on a busy machine the
    // server may have answered every call already, the answers still unread
    // by a client that has not been scheduled; five in a row do not.)
    assert!(total_cut_off > 0, "no kill cut off an operation");

    // Restart and check every acknowledged operation.
    let listen = format!("127.0.0.1:{}", free_port());
    let server = Server::start(&url, &listen);
    server.wait_serving().await;
    let mut client = ApiTokenServiceClient::new(server.channel());
    let ledger = Arc::try_unwrap(ledger)
        .ok()
        .expect("workers done")
        .into_inner()
        .unwrap();
    let (mut live, mut checked_secrets) = (0, 0);
    for t in ledger.tokens.values() {
        let get = client
            .get_api_token(with_bearer(
                &secret,
                pb::GetApiTokenRequest {
                    organization_id: ORG.into(),
                    token_id: t.id.clone(),
                },
            ))
            .await;
        let lookup = |s: &str| {
            let mut client = client.clone();
            let request = with_bearer(&secret, pb::ApiTokenSecret { token: s.into() });
            async move { client.lookup_api_token(request).await.map(|_| ()) }
        };
        let exists = match (&get, &t.in_flight) {
            (Err(status), _) if status.code() == Code::NotFound => {
                assert!(
                    t.deleted || matches!(t.in_flight, Some(Op::Delete)),
                    "acknowledged token {} is gone: {t:?}",
                    t.id
                );
                false
            }
            (Ok(found), in_flight) => {
                assert!(!t.deleted, "acknowledged delete of {} undone", t.id);
                let roles = roles_of(&found.get_ref().roles);
                match in_flight {
                    Some(Op::Roles(new)) => assert!(
                        roles == t.roles || roles == *new,
                        "{}: roles {roles:?} are neither the old nor the new set",
                        t.id
                    ),
                    _ => assert_eq!(roles, t.roles, "{}: acknowledged roles", t.id),
                }
                true
            }
            (Err(status), _) => panic!("Get {}: {status:?}", t.id),
        };
        if exists {
            live += 1;
            let current = lookup(&t.secret).await;
            match t.in_flight {
                // A rotate that may have happened: the old secret may be dead.
                Some(Op::Rotate) => {}
                _ => assert!(current.is_ok(), "{}: acknowledged secret refused", t.id),
            }
        } else {
            let refused = lookup(&t.secret).await.expect_err("deleted token's secret");
            assert_eq!(refused.code(), Code::NotFound);
        }
        // The audit trail is written in the write's own transaction: one
        // event per acknowledged operation, give or take the one cut off.
        let events = |action: &str| {
            let sql = format!(
                "SELECT COUNT(*) FROM audit_events WHERE token_id = '{}' AND action = '{action}'",
                t.id
            );
            let test_db = &test_db;
            async move { count(test_db, &sql).await }
        };
        assert_eq!(events("CREATE").await, 1, "{}: CREATE events", t.id);
        let rotated = t.old_secrets.len() as i64;
        let rotates = events("ROTATE").await;
        let may_have_rotated = i64::from(matches!(t.in_flight, Some(Op::Rotate)));
        assert!(
            (rotated..=rotated + may_have_rotated).contains(&rotates),
            "{}: {rotates} ROTATE events for {rotated} acknowledged rotates",
            t.id
        );
        let deletes = events("DELETE").await;
        assert_eq!(deletes, i64::from(!exists), "{}: DELETE events", t.id);
        // Rotates used grace periods of at most 1 s: each replaced secret
        // stops working within the eventually's deadline.
        for old in &t.old_secrets {
            let refused = eventually_within(
                "a replaced secret to be refused",
                Duration::from_secs(10),
                || {
                    let lookup = lookup(old);
                    async move { lookup.await.err() }
                },
            )
            .await;
            assert_eq!(refused.code(), Code::NotFound, "{}", t.id);
            checked_secrets += 1;
        }
    }

    // Table invariants: nothing half-written.
    let unknown = count(
        &test_db,
        &format!("SELECT COUNT(*) FROM api_tokens WHERE id <> '{owner_id}'"),
    )
    .await
        - live;
    assert!(
        (0..=ledger.creates_in_flight as i64).contains(&unknown),
        "{unknown} tokens nobody acknowledged, but only {} creates were cut off",
        ledger.creates_in_flight
    );
    let checks = [
        (
            "tokens without roles",
            "SELECT COUNT(*) FROM api_tokens t WHERE NOT EXISTS (SELECT 1 FROM api_token_roles r WHERE r.token_id = t.id)",
        ),
        (
            "tokens without a secret",
            "SELECT COUNT(*) FROM api_tokens t WHERE NOT EXISTS (SELECT 1 FROM api_token_secrets s WHERE s.token_id = t.id AND s.expires_at_ms IS NULL)",
        ),
        (
            "tokens with two secrets that never expire",
            "SELECT COUNT(*) FROM (SELECT token_id FROM api_token_secrets WHERE expires_at_ms IS NULL GROUP BY token_id HAVING COUNT(*) > 1) x",
        ),
        (
            "tokens without their CREATE event",
            "SELECT COUNT(*) FROM api_tokens t WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.token_id = t.id AND e.action = 'CREATE')",
        ),
        (
            "roles of no token",
            "SELECT COUNT(*) FROM api_token_roles r WHERE NOT EXISTS (SELECT 1 FROM api_tokens t WHERE t.id = r.token_id)",
        ),
        (
            "secrets of no token",
            "SELECT COUNT(*) FROM api_token_secrets s WHERE NOT EXISTS (SELECT 1 FROM api_tokens t WHERE t.id = s.token_id)",
        ),
        (
            "per-scope counts that disagree with the tokens",
            "SELECT COUNT(*) FROM api_token_counts c WHERE c.tokens <> (SELECT COUNT(*) FROM api_tokens t WHERE t.organization_id = c.organization_id AND t.token_type = c.token_type AND t.entity_id = c.entity_id AND t.kind = c.kind)",
        ),
    ];
    for (what, sql) in checks {
        assert_eq!(count(&test_db, sql).await, 0, "{what}");
    }
    eprintln!(
        "{db:?}: {ROUNDS} kills; {} operations acknowledged; {} tokens checked ({live} live), {checked_secrets} replaced secrets refused, {unknown} unacknowledged creates found complete",
        ledger.acknowledged,
        ledger.tokens.len()
    );
    let (code, log) = server.terminate().await;
    assert_eq!(code, Some(0), "{log}");
}
