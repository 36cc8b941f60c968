//! `TestApp`: the real server on a free port against a fresh database, with a
//! bootstrap ORGANIZATION_OWNER token and a client.

use std::net::SocketAddr;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokend::config::Settings;
use tokend::domain::ids::{OrganizationId, TokenId};
use tokend::domain::secret::{TokenPrefix, TokenSecret};
use tokend::domain::subject::Subject;
use tokend::domain::time::{now_millis, now_seconds};
use tokend::domain::token::{CreateTokenInput, NewToken, TokenType};
use tokend::pb;
use tokend::pb::api_token_service_client::ApiTokenServiceClient;
use tokend::server::{Application, StartupError};
use tokend::service::mint::issue;
use tokend::store::{Store, StoreOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

/// The organization every TestApp's bootstrap token belongs to.
pub const ORG: &str = "org-test";
/// Another organization, for isolation tests.
pub const OTHER_ORG: &str = "org-other";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The database behind one TestApp, kept for fault injection and cleanup.
pub enum TestDb {
    Sqlite {
        dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

/// Where the PostgreSQL tests connect as an administrator (to create one
/// database per test). `TOKEND_TEST_POSTGRES_URL` overrides it.
pub fn postgres_admin_url() -> String {
    std::env::var("TOKEND_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..path_start])
}

async fn admin() -> DatabaseConnection {
    let url = postgres_admin_url();
    Database::connect(url.as_str()).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for the postgres tests and is not reachable at {url}: {e}. \
             Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) \
             or set TOKEND_TEST_POSTGRES_URL."
        )
    })
}

impl TestDb {
    /// A fresh, empty database of kind `db`.
    pub async fn create(db: Db) -> Self {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("tokend.db");
                Self::Sqlite { dir, path }
            }
            Db::Postgres => {
                let mut random = [0u8; 8];
                getrandom::fill(&mut random).expect("random");
                let name = format!(
                    "tokend_test_{}",
                    random
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                );
                admin()
                    .await
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                Self::Postgres {
                    admin_url: postgres_admin_url(),
                    name,
                }
            }
        }
    }

    /// The URL tokend connects to.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite { path, .. } => format!("sqlite://{}?mode=rwc", path.display()),
            Self::Postgres { admin_url, name } => with_database(admin_url, name),
        }
    }

    /// Which kind it is.
    pub fn kind(&self) -> Db {
        match self {
            Self::Sqlite { .. } => Db::Sqlite,
            Self::Postgres { .. } => Db::Postgres,
        }
    }

    /// Makes the database stop answering: the SQLite file is moved away, or
    /// the PostgreSQL database refuses connections and its sessions are
    /// terminated.
    pub async fn break_it(&self) {
        match self {
            Self::Sqlite { path, .. } => {
                std::fs::rename(path, path.with_extension("moved")).expect("move db file")
            }
            Self::Postgres { name, .. } => {
                let admin = admin().await;
                admin
                    .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                    .await
                    .expect("refuse connections");
                admin
                    .execute_unprepared(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                    ))
                    .await
                    .expect("terminate sessions");
            }
        }
    }

    /// Undoes [`TestDb::break_it`].
    pub async fn repair(&self) {
        match self {
            Self::Sqlite { path, .. } => {
                std::fs::rename(path.with_extension("moved"), path).expect("move db file back")
            }
            Self::Postgres { name, .. } => {
                admin()
                    .await
                    .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
                    .await
                    .expect("allow connections");
            }
        }
    }

    /// Runs `sql` directly on the database (test setup that the API cannot
    /// do yet).
    pub async fn execute(&self, sql: &str) {
        let conn = self.connect().await;
        conn.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
    }

    /// The stored `(last_used_at, last_used_ip)` of token `id`, read straight
    /// from the database.
    pub async fn usage_of(&self, id: &str) -> (Option<i64>, Option<String>) {
        let conn = self.connect().await;
        let sql = format!("SELECT last_used_at, last_used_ip FROM api_tokens WHERE id = '{id}'");
        let row = conn
            .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .expect("read usage")
            .unwrap_or_else(|| panic!("token {id} is not in the database"));
        let _ = conn.close().await;
        (
            row.try_get("", "last_used_at").expect("last_used_at"),
            row.try_get("", "last_used_ip").expect("last_used_ip"),
        )
    }

    /// Runs one SQL statement directly (test setup and inspection).
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(self.url().as_str())
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { name, .. } = self {
            let name = name.clone();
            // Async cleanup cannot run inside Drop on the test's runtime; a
            // short-lived thread with its own runtime drops the database.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async {
                        if let Ok(admin) = Database::connect(postgres_admin_url().as_str()).await {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// A running server, its database and a client.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: ApiTokenServiceClient<Channel>,
    pub health: HealthClient<Channel>,
    /// Secret of the bootstrap ORGANIZATION_OWNER token of [`ORG`].
    pub secret: String,
    /// Id of the bootstrap token.
    pub token_id: String,
    pub db: TestDb,
    pub prefix: TokenPrefix,
    /// Where `/metrics` is served, when the test turned metrics on.
    pub metrics_addr: Option<SocketAddr>,
    task: ServerTask,
}

/// A built server running on a task until stopped or dropped: every test
/// server (a [`TestApp`], a [`Replica`]) is started by [`ServerTask::start`].
struct ServerTask {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartupError>>>,
}

/// Whether [`ServerTask::start`] connects a channel before returning.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Connect {
    /// Connect now (the server answers plaintext gRPC).
    Now,
    /// Connect on first use (a TLS listener, which a plaintext channel cannot reach).
    Lazily,
}

impl ServerTask {
    /// Starts `app` and a channel to it.
    async fn start(app: Application, connect: Connect) -> (Self, Channel) {
        let addr = app.local_addr().expect("local addr");
        let metrics_addr = app.metrics_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let endpoint = Channel::from_shared(format!("http://{addr}")).expect("uri");
        let channel = match connect {
            Connect::Now => endpoint
                .connect()
                .await
                .expect("connect to the test server"),
            Connect::Lazily => endpoint.connect_lazy(),
        };
        let task = Self {
            addr,
            metrics_addr,
            shutdown: Some(tx),
            server: Some(server),
        };
        (task, channel)
    }

    /// Stops the server gracefully (flushing usage) and waits for it.
    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Settings every test server uses: port 0 and short intervals, parsed
/// from a command line exactly as `tokend serve` parses its own.
pub fn test_settings(url: &str) -> Settings {
    Settings::from_command_line([
        "--database-url",
        url,
        "--database-timeout",
        "2s",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--usage-flush-interval",
        "100ms",
        "--health-check-interval",
        "200ms",
        // Many tests send bursts of bad credentials from 127.0.0.1 on
        // purpose; throttling is off here and tested on its own.
        "--auth-failure-threshold",
        "0",
    ])
    .expect("test settings")
}

/// The deployment's default token prefix, as the command line has it.
pub fn default_prefix() -> TokenPrefix {
    TokenPrefix::parse(tokend::cli::DEFAULT_TOKEN_PREFIX).expect("default prefix")
}

/// A fresh database holding one ORGANIZATION_OWNER token of [`ORG`] named
/// `name`: the database, the token's id and its secret.
pub async fn database_with_owner(db: Db, name: &str) -> (TestDb, String, String) {
    let test_db = TestDb::create(db).await;
    let (id, secret) = bootstrap_token(
        &test_db.url(),
        ORG,
        name,
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    (test_db, id, secret)
}

/// Writes a token straight to the store, as `tokend token create` does.
pub async fn bootstrap_token(
    url: &str,
    org: &str,
    name: &str,
    token_type: TokenType,
    role: &str,
    entity_id: &str,
) -> (String, String) {
    let store = Store::connect(url, &StoreOptions::defaults().expect("store options"))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let now = now_seconds();
    let new = NewToken::parse(
        OrganizationId::parse("org", org).expect("org"),
        &CreateTokenInput {
            name,
            token_type: Some(token_type),
            role,
            entity_id,
            ..CreateTokenInput::default()
        },
        now,
    )
    .expect("valid bootstrap token");
    let creator = Subject::user("bootstrap-admin", "Bootstrap Admin").expect("user");
    let (token, secret) = issue(&store, &default_prefix(), &new, &creator, None, now)
        .await
        .expect("issue bootstrap token");
    store.close().await;
    (token.id.as_str().to_owned(), secret.into_exposed())
}

impl TestApp {
    /// A server on a fresh database of kind `db`.
    pub async fn spawn(db: Db) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// A server on a fresh database with adjusted settings.
    pub async fn spawn_with(db: Db, configure: impl FnOnce(&mut Settings)) -> Self {
        let test_db = TestDb::create(db).await;
        let url = test_db.url();
        let (token_id, secret) = bootstrap_token(
            &url,
            ORG,
            "bootstrap",
            TokenType::Organization,
            "ORGANIZATION_OWNER",
            "",
        )
        .await;
        let mut settings = test_settings(&url);
        configure(&mut settings);
        let prefix = settings.token_prefix.clone();
        let app = Application::build(settings).await.expect("build server");
        let (task, channel) = ServerTask::start(app, Connect::Now).await;
        let app = Self {
            addr: task.addr,
            client: ApiTokenServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
            secret,
            token_id,
            db: test_db,
            prefix,
            metrics_addr: task.metrics_addr,
            task,
        };
        app.wait_for_health(ServingStatus::Serving).await;
        app
    }

    /// A request carrying the bootstrap token.
    pub fn req<T>(&self, message: T) -> Request<T> {
        with_bearer(&self.secret, message)
    }

    /// The health status of `service` ("" for the server).
    pub async fn health_of(&self, service: &str) -> Result<ServingStatus, Status> {
        let response = self
            .health
            .clone()
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?;
        Ok(ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown))
    }

    /// Polls health until both "" and the API service report `status`;
    /// panics after 10 s.
    pub async fn wait_for_health(&self, status: ServingStatus) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let all = self.health_of("").await.ok() == Some(status)
                && self.health_of("tokend.v1.ApiTokenService").await.ok() == Some(status);
            if all {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "health never became {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a token through the API as the bootstrap caller.
    pub async fn create(&self, request: pb::CreateApiTokenRequest) -> pb::ApiToken {
        self.client
            .clone()
            .create_api_token(self.req(request))
            .await
            .expect("create token")
            .into_inner()
    }

    /// Creates a token through the API as the bootstrap caller, keeping the
    /// error.
    pub async fn try_create(
        &self,
        request: pb::CreateApiTokenRequest,
    ) -> Result<pb::ApiToken, Status> {
        self.client
            .clone()
            .create_api_token(self.req(request))
            .await
            .map(|r| r.into_inner())
    }

    /// Looks up `secret` with `caller` as the bearer.
    pub async fn lookup_as(
        &self,
        caller: &str,
        secret: &str,
    ) -> Result<pb::ApiTokenMetadata, Status> {
        self.client
            .clone()
            .lookup_api_token(with_bearer(
                caller,
                pb::ApiTokenSecret {
                    token: secret.into(),
                },
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// Gets a token of [`ORG`] as the bootstrap caller.
    pub async fn get(&self, token_id: &str) -> Result<pb::ApiToken, Status> {
        self.client
            .clone()
            .get_api_token(self.req(pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: token_id.into(),
            }))
            .await
            .map(|r| r.into_inner())
    }

    /// Lists tokens of [`ORG`] as the bootstrap caller.
    pub async fn list(
        &self,
        request: pb::ListApiTokensRequest,
    ) -> Result<pb::ListApiTokensResponse, Status> {
        self.client
            .clone()
            .list_api_tokens(self.req(pb::ListApiTokensRequest {
                organization_id: ORG.into(),
                ..request
            }))
            .await
            .map(|r| r.into_inner())
    }

    /// Starts another server (a replica) on this app's database.
    pub async fn replica(&self, configure: impl FnOnce(&mut Settings)) -> Replica {
        Replica::start(&self.db.url(), configure).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.task.stop().await;
    }
}

/// Another server process on a shared database (in this process).
pub struct Replica {
    pub addr: SocketAddr,
    pub client: ApiTokenServiceClient<Channel>,
    /// Where `/metrics` is served, when the test turned metrics on.
    pub metrics_addr: Option<SocketAddr>,
    task: ServerTask,
}

impl Replica {
    /// Builds (migrating) and starts a server on `url`.
    pub async fn start(url: &str, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = test_settings(url);
        configure(&mut settings);
        let app = Application::build(settings).await.expect("build replica");
        Self::run(app).await
    }

    /// Starts an already built server without connecting to it (for
    /// listeners a plaintext client cannot reach, such as TLS).
    pub async fn serve_only(app: Application) -> Self {
        Self::launch(app, Connect::Lazily).await
    }

    /// Starts an already built server.
    pub async fn run(app: Application) -> Self {
        Self::launch(app, Connect::Now).await
    }

    async fn launch(app: Application, connect: Connect) -> Self {
        let (task, channel) = ServerTask::start(app, connect).await;
        Self {
            addr: task.addr,
            client: ApiTokenServiceClient::new(channel),
            metrics_addr: task.metrics_addr,
            task,
        }
    }

    /// Stops it gracefully (flushing usage) and waits.
    pub async fn stop(mut self) {
        self.task.stop().await;
    }
}

/// A request carrying `secret` as its bearer token.
pub fn with_bearer<T>(secret: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {secret}").parse().expect("ascii header"),
    );
    request
}

/// A WORKSPACE-token Create request with sensible defaults.
pub fn workspace_token(name: &str, workspace: &str) -> pb::CreateApiTokenRequest {
    pb::CreateApiTokenRequest {
        organization_id: ORG.into(),
        name: name.into(),
        r#type: pb::api_token::Type::Workspace as i32,
        role: "WORKSPACE_MEMBER".into(),
        entity_id: workspace.into(),
        ..Default::default()
    }
}

/// Asserts that `result` failed with `code`, returning the status.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// The fields named in the `google.rpc.BadRequest` details of `status`, in
/// the order the server listed them.
pub fn bad_request_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|details| {
            details
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that `result` failed with INVALID_ARGUMENT naming `field` (and no
/// other field) in its message and in its BadRequest details.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) -> Status {
    assert_invalid_in("", result, field)
}

/// [`assert_invalid`], naming the case `context` when it fails.
#[track_caller]
pub fn assert_invalid_in<T: std::fmt::Debug>(
    context: &str,
    result: Result<T, Status>,
    field: &str,
) -> Status {
    let status = match result {
        Ok(value) => panic!("{context}: expected INVALID_ARGUMENT for {field}, got Ok({value:?})"),
        Err(status) => status,
    };
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{context}: {status:?}"
    );
    let mut fields = bad_request_fields(&status);
    fields.dedup();
    assert_eq!(
        fields,
        [field],
        "{context}: BadRequest fields of {status:?}"
    );
    assert!(
        status.message().contains(field),
        "{context}: message {:?} does not name {field}",
        status.message()
    );
    status
}

/// A well-formed secret of this deployment (right prefix, id shape and
/// checksum) that belongs to no token.
pub fn unknown_secret() -> String {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).expect("random");
    TokenSecret::from_parts(TokenId::generate(now_millis(), random), [7; 32])
        .reveal(&default_prefix())
        .into_exposed()
}

/// A protobuf timestamp `seconds` after the Unix epoch.
pub fn at(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    now_seconds()
}

/// An ORGANIZATION-token Create request for [`ORG`].
pub fn organization_token(name: &str) -> pb::CreateApiTokenRequest {
    pb::CreateApiTokenRequest {
        organization_id: ORG.into(),
        name: name.into(),
        r#type: pb::api_token::Type::Organization as i32,
        role: "ORGANIZATION_MEMBER".into(),
        ..Default::default()
    }
}

/// A DEPLOYMENT-token Create request for [`ORG`].
pub fn deployment_token(name: &str, deployment: &str) -> pb::CreateApiTokenRequest {
    pb::CreateApiTokenRequest {
        organization_id: ORG.into(),
        name: name.into(),
        r#type: pb::api_token::Type::Deployment as i32,
        role: "DEPLOYMENT_ADMIN".into(),
        entity_id: deployment.into(),
        ..Default::default()
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for up to 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The longest any black-box test may run (issue 14.8): past it the test
/// fails instead of hanging the run, under plain `cargo test` as under
/// nextest (whose `.config/nextest.toml` kills at the same 180 s).
pub const TEST_DEADLINE: Duration = Duration::from_secs(180);

/// Runs `test` to completion or fails it at [`TEST_DEADLINE`].
pub async fn within_deadline<F: std::future::Future>(name: &str, test: F) -> F::Output {
    tokio::time::timeout(TEST_DEADLINE, test)
        .await
        .unwrap_or_else(|_| panic!("{name} ran past its {} s deadline", TEST_DEADLINE.as_secs()))
}

/// Runs each listed `async fn(Db)` test once on SQLite and once on
/// PostgreSQL, each within [`TEST_DEADLINE`].
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::within_deadline(
                        stringify!($name),
                        super::$name($crate::helpers::Db::Sqlite),
                    )
                    .await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::within_deadline(
                        stringify!($name),
                        super::$name($crate::helpers::Db::Postgres),
                    )
                    .await
                }
            )*
        }
    };
}

#[test]
fn with_database_replaces_the_path() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/postgres?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}

/// Polls `check` every 50 ms until it returns `Some`, for up to `limit`.
pub async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text `/metrics` at `addr` serves.
pub async fn scrape_metrics(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        Ok::<_, std::io::Error>(text)
    };
    let text = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("/metrics at {addr} did not answer within 10 s"))
        .unwrap_or_else(|e| panic!("/metrics at {addr}: {e}"));
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    text
}

/// Settings for a test that counts the server's database statements
/// (`tokend_db_statements_total`): metrics on, and the background work that
/// runs statements (health checks, usage flushes, the SQLite feed's reads)
/// slowed down so that the test's own show.
pub fn counting_statements(s: &mut Settings) {
    s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    s.health_check_interval = Duration::from_secs(5);
    s.usage_flush_interval = Duration::from_secs(60);
    s.change_feed.poll = Duration::from_millis(500);
}

/// The sample `series` the server whose metrics are at `addr` reports now.
pub async fn metric_now(addr: Option<SocketAddr>, series: &str) -> f64 {
    let text = scrape_metrics(addr.expect("metrics on")).await;
    metric_value(&text, series).unwrap_or_else(|| panic!("{series} in\n{text}"))
}

/// The value of the sample `series` (name and labels exactly as printed) in
/// a `/metrics` text.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Makes `change` ("disable", "rotate" with no grace, "delete", or "roles":
/// WORKSPACE_OWNER on ws1) to token `token_id` of [`ORG`] through `client`,
/// as `caller`.
pub async fn change_token(
    client: &ApiTokenServiceClient<Channel>,
    caller: &str,
    token_id: &str,
    change: &str,
) {
    let mut client = client.clone();
    let (organization_id, token_id) = (ORG.to_owned(), token_id.to_owned());
    let done = match change {
        "disable" => client
            .update_api_token(with_bearer(
                caller,
                pb::UpdateApiTokenRequest {
                    organization_id,
                    token_id,
                    enabled: Some(false),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "rotate" => client
            .rotate_api_token(with_bearer(
                caller,
                pb::RotateApiTokenRequest {
                    organization_id,
                    token_id,
                    grace_period_seconds: 0,
                },
            ))
            .await
            .map(drop),
        "delete" => client
            .delete_api_token(with_bearer(
                caller,
                pb::DeleteApiTokenRequest {
                    organization_id,
                    token_id,
                },
            ))
            .await
            .map(drop),
        "roles" => client
            .update_api_token_roles(with_bearer(
                caller,
                pb::UpdateApiTokenRolesRequest {
                    organization_id,
                    token_id,
                    roles: vec![pb::ApiTokenRole {
                        entity_type: pb::api_token_role::EntityType::Workspace as i32,
                        entity_id: "ws1".into(),
                        role: "WORKSPACE_OWNER".into(),
                        ..Default::default()
                    }],
                },
            ))
            .await
            .map(drop),
        other => panic!("no such change {other:?}"),
    };
    done.unwrap_or_else(|s| panic!("{change}: {s:?}"));
}

/// The secret an ApiToken answer carries (Create and Rotate), or "" when it
/// carries none (Get, List, Update): `token` is a wrapper, absent unless set.
pub trait Secret {
    /// The secret, or "".
    fn secret(&self) -> String;
}

impl Secret for pb::ApiToken {
    fn secret(&self) -> String {
        self.token.clone().unwrap_or_default()
    }
}

/// UpdateApiTokenRoles' SubjectRoles answer as the role bindings it stands
/// for, in its order (organization, workspaces, deployments, DAGs).
pub fn bindings_of(roles: pb::SubjectRoles) -> Vec<pb::ApiTokenRole> {
    use pb::api_token_role::EntityType;
    let binding = |t: EntityType, id: String, role: String, dep: Option<String>| pb::ApiTokenRole {
        entity_id: id,
        entity_type: t as i32,
        role,
        deployment_id: dep,
    };
    let mut out = Vec::new();
    if let Some(role) = roles.organization_role {
        out.push(binding(EntityType::Organization, ORG.into(), role, None));
    }
    for w in roles.workspace_roles {
        out.push(binding(EntityType::Workspace, w.workspace_id, w.role, None));
    }
    for d in roles.deployment_roles {
        out.push(binding(
            EntityType::Deployment,
            d.deployment_id,
            d.role,
            None,
        ));
    }
    for d in roles.dag_roles {
        let (t, id) = match (d.dag_id, d.dag_tag) {
            (Some(id), _) => (EntityType::Dag, id),
            (None, tag) => (EntityType::DagTag, tag.unwrap_or_default()),
        };
        out.push(binding(t, id, d.role, Some(d.deployment_id)));
    }
    out
}

/// Unix seconds in Lookup's Dynatrace form, `2020-11-12T08:15:30.000Z`.
pub fn dt_date(seconds: i64) -> String {
    tokend::domain::time::rfc3339_millis(seconds * 1000)
}

/// A Timestamp answer in Lookup's Dynatrace form.
pub fn dt_of(t: &Option<prost_types::Timestamp>) -> Option<String> {
    t.as_ref().map(|t| dt_date(t.seconds))
}
