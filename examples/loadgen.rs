//! Closed-loop gRPC load generator for tokend's benchmarks.
//!
//! `cargo run --release --example loadgen -- --addr http://127.0.0.1:50051
//!  --scenario lookup-warm --secret S --concurrency 16 --duration 10s`
//!
//! Prints one JSON line: requests/s, p50/p99/max latency in microseconds, and
//! the gRPC codes seen. Exits 1 if any call got a code other than the one
//! the scenario expects (h2load, by contrast, counts HTTP 200 as success).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use tokend::config::parse_duration;
use tokend::domain::ids::TokenId;
use tokend::domain::secret::{TokenPrefix, TokenSecret};
use tokend::pb;
use tokend::pb::api_token_service_client::ApiTokenServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// grpc.health.v1.Health/Check: a unary call doing (almost) nothing; the baseline.
    Noop,
    /// Lookup of the caller's own secret (both resolutions hit the cache).
    LookupWarm,
    /// Lookup of a fresh random well-formed secret each call: a database probe.
    LookupUnknown,
    /// A call whose bearer secret fails its checksum: refused before any lookup.
    Malformed,
    /// GetApiToken of the caller's own token.
    Get,
    /// ListApiTokens (limit 20 unless --limit), with the given filters and sorts.
    List,
    /// Lookup of each secret in --secrets-file once (fills the cache), then stop.
    WarmCache,
    /// Lookup by the caller of a secret drawn uniformly at random from
    /// --secrets-file: a gateway or service checking the tokens of a fleet,
    /// each at a low rate.
    Fleet,
    /// Lookup of the caller's own token id with a random wrong secret.
    WrongSecret,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Caller secret (not needed for noop and malformed).
    #[arg(long, env = "LOADGEN_SECRET", default_value = "")]
    secret: String,
    #[arg(long, default_value = "tokend")]
    prefix: String,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Organization for Get/List (default: the caller's, from Lookup).
    #[arg(long)]
    org: Option<String>,
    #[arg(long)]
    workspace_id: Option<String>,
    #[arg(long)]
    deployment_id: Option<String>,
    #[arg(long)]
    dag_id: Option<String>,
    #[arg(long)]
    dag_tag: Vec<String>,
    #[arg(long)]
    only_org: bool,
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    sort: Vec<String>,
    #[arg(long, default_value_t = 20)]
    limit: i32,
    /// For warm-cache and fleet: one secret per line.
    #[arg(long)]
    secrets_file: Option<std::path::PathBuf>,
    /// A label for the output line.
    #[arg(long, default_value = "")]
    label: String,
}

/// What one worker measured.
struct Tally {
    latency: Histogram<u64>,
    codes: BTreeMap<String, u64>,
}

fn bearer<T>(secret: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = format!("Bearer {secret}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// xorshift64*: fast, non-cryptographic; random ids for unknown secrets only.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

struct Target {
    api: ApiTokenServiceClient<Channel>,
    health: HealthClient<Channel>,
    args: std::sync::Arc<Args>,
    org: String,
    token_id: String,
    malformed: String,
    prefix: TokenPrefix,
    /// The caller's token id, parsed (wrong-secret).
    own_id: TokenId,
    /// The secrets of --secrets-file (fleet).
    fleet: std::sync::Arc<Vec<String>>,
}

impl Target {
    async fn call(&mut self, rng: &mut u64) -> Code {
        let a = &self.args;
        let result = match a.scenario {
            Scenario::Noop => self
                .health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| ()),
            Scenario::LookupWarm | Scenario::WarmCache => self
                .api
                .lookup_api_token(bearer(
                    &a.secret,
                    pb::ApiTokenSecret {
                        token: a.secret.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            Scenario::LookupUnknown => {
                let mut random = [0u8; 10];
                random[..8].copy_from_slice(&next(rng).to_le_bytes());
                let mut key = [0u8; 32];
                for chunk in key.chunks_mut(8) {
                    chunk.copy_from_slice(&next(rng).to_le_bytes());
                }
                let id = TokenId::generate(1_700_000_000_000, random);
                let unknown = TokenSecret::from_parts(id, key)
                    .reveal(&self.prefix)
                    .into_exposed();
                self.api
                    .lookup_api_token(bearer(&a.secret, pb::ApiTokenSecret { token: unknown }))
                    .await
                    .map(|_| ())
            }
            Scenario::Fleet => {
                let secrets = &self.fleet;
                let secret = &secrets[(next(rng) % secrets.len().max(1) as u64) as usize];
                self.api
                    .lookup_api_token(bearer(
                        &a.secret,
                        pb::ApiTokenSecret {
                            token: secret.clone(),
                        },
                    ))
                    .await
                    .map(|_| ())
            }
            Scenario::WrongSecret => {
                let mut key = [0u8; 32];
                for chunk in key.chunks_mut(8) {
                    chunk.copy_from_slice(&next(rng).to_le_bytes());
                }
                let wrong = TokenSecret::from_parts(self.own_id.clone(), key)
                    .reveal(&self.prefix)
                    .into_exposed();
                self.api
                    .lookup_api_token(bearer(&a.secret, pb::ApiTokenSecret { token: wrong }))
                    .await
                    .map(|_| ())
            }
            Scenario::Malformed => self
                .api
                .lookup_api_token(bearer(
                    &self.malformed,
                    pb::ApiTokenSecret {
                        token: self.malformed.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            Scenario::Get => self
                .api
                .get_api_token(bearer(
                    &a.secret,
                    pb::GetApiTokenRequest {
                        organization_id: self.org.clone(),
                        token_id: self.token_id.clone(),
                    },
                ))
                .await
                .map(|_| ()),
            Scenario::List => self
                .api
                .list_api_tokens(bearer(&a.secret, self.list_request()))
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => Code::Ok,
            Err(status) => status.code(),
        }
    }

    fn list_request(&self) -> pb::ListApiTokensRequest {
        let a = &self.args;
        let kind = match a.kind.as_deref() {
            Some("STANDARD") => pb::api_token::Kind::Standard as i32,
            Some("DIRECT_ACCESS") => pb::api_token::Kind::DirectAccess as i32,
            _ => 0,
        };
        pb::ListApiTokensRequest {
            organization_id: self.org.clone(),
            workspace_id: a.workspace_id.clone().unwrap_or_default(),
            deployment_id: a.deployment_id.clone().unwrap_or_default(),
            dag_id: a.dag_id.clone().unwrap_or_default(),
            dag_tags: a.dag_tag.clone(),
            include_only_organization_tokens: a.only_org,
            kind,
            offset: 0,
            limit: Some(a.limit),
            sorts: a.sort.clone(),
        }
    }
}

fn expected(scenario: Scenario) -> Code {
    match scenario {
        Scenario::LookupUnknown | Scenario::WrongSecret => Code::NotFound,
        Scenario::Malformed => Code::Unauthenticated,
        _ => Code::Ok,
    }
}

async fn worker(mut target: Target, until: Instant, measure_from: Instant, seed: u64) -> Tally {
    let mut tally = Tally {
        latency: Histogram::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|_| Histogram::new(3).expect("histogram")),
        codes: BTreeMap::new(),
    };
    let mut rng = seed | 1;
    loop {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let code = target.call(&mut rng).await;
        if started >= measure_from {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let _ = tally.latency.record(micros.max(1));
            *tally.codes.entry(format!("{code:?}")).or_default() += 1;
        }
    }
    tally
}

async fn warm_cache(args: &Args, channel: Channel) -> Result<(), Box<dyn std::error::Error>> {
    let path = args
        .secrets_file
        .as_ref()
        .ok_or("--secrets-file is required for warm-cache")?;
    let secrets: Vec<String> = std::fs::read_to_string(path)?
        .lines()
        .map(str::to_owned)
        .collect();
    let started = Instant::now();
    let chunks: Vec<Vec<String>> = secrets
        .chunks(secrets.len().div_ceil(args.concurrency.max(1)).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let tasks = chunks.into_iter().map(|chunk| {
        let mut api = ApiTokenServiceClient::new(channel.clone());
        let caller = args.secret.clone();
        tokio::spawn(async move {
            let mut failed = 0u64;
            for secret in chunk {
                // By the caller when there is one (expired tokens can be
                // looked up, not authenticate), else by the secret itself.
                let by = if caller.is_empty() { &secret } else { &caller };
                if api
                    .lookup_api_token(bearer(
                        by,
                        pb::ApiTokenSecret {
                            token: secret.clone(),
                        },
                    ))
                    .await
                    .is_err()
                {
                    failed += 1;
                }
            }
            failed
        })
    });
    let mut failed = 0;
    for task in futures_util::future::join_all(tasks).await {
        failed += task?;
    }
    println!(
        "{{\"scenario\":\"warm-cache\",\"secrets\":{},\"failed\":{failed},\"seconds\":{:.1}}}",
        secrets.len(),
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = std::sync::Arc::new(Args::parse());
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(Channel::from_shared(args.addr.clone())?.connect().await?);
    }
    if args.scenario == Scenario::WarmCache {
        return warm_cache(&args, channels[0].clone()).await;
    }
    let prefix = TokenPrefix::parse(&args.prefix)?;
    let (mut org, mut token_id) = (args.org.clone().unwrap_or_default(), String::new());
    if !args.secret.is_empty() {
        let mut api = ApiTokenServiceClient::new(channels[0].clone());
        let me = api
            .lookup_api_token(bearer(
                &args.secret,
                pb::ApiTokenSecret {
                    token: args.secret.clone(),
                },
            ))
            .await?
            .into_inner();
        token_id = me.id.rsplit('.').next().unwrap_or_default().to_owned();
        if org.is_empty() {
            // The caller's organization, as Lookup names it.
            org = me.organization_id;
        }
    }
    let valid = TokenSecret::from_parts(TokenId::generate(1_700_000_000_000, [1; 10]), [2; 32])
        .reveal(&prefix)
        .into_exposed();
    let malformed = format!("{}A", &valid[..valid.len() - 1]);
    let own_id = TokenId::parse_generated(&token_id)
        .unwrap_or_else(|| TokenId::generate(1_700_000_000_000, [1; 10]));
    let fleet = std::sync::Arc::new(match (&args.secrets_file, args.scenario) {
        (Some(path), Scenario::Fleet) => std::fs::read_to_string(path)?
            .lines()
            .map(str::to_owned)
            .collect(),
        (None, Scenario::Fleet) => return Err("--secrets-file is required for fleet".into()),
        _ => Vec::new(),
    });
    let measure_from = Instant::now() + args.warmup;
    let until = measure_from + args.duration;
    let workers = (0..args.concurrency).map(|i| {
        let channel = channels[i % channels.len()].clone();
        let target = Target {
            api: ApiTokenServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
            args: args.clone(),
            org: org.clone(),
            token_id: token_id.clone(),
            malformed: malformed.clone(),
            prefix: prefix.clone(),
            own_id: own_id.clone(),
            fleet: fleet.clone(),
        };
        tokio::spawn(worker(
            target,
            until,
            measure_from,
            0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1),
        ))
    });
    let mut latency = Histogram::<u64>::new(3)?;
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    for tally in futures_util::future::join_all(workers).await {
        let tally = tally?;
        latency.add(&tally.latency)?;
        for (code, n) in tally.codes {
            *codes.entry(code).or_default() += n;
        }
    }
    let total: u64 = codes.values().sum();
    let want = format!("{:?}", expected(args.scenario));
    let unexpected: u64 = codes
        .iter()
        .filter(|(c, _)| **c != want)
        .map(|(_, n)| *n)
        .sum();
    let label = if args.label.is_empty() {
        format!("{:?}", args.scenario)
    } else {
        args.label.clone()
    };
    println!(
        "{{\"scenario\":{label:?},\"concurrency\":{},\"requests\":{total},\"rps\":{:.0},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"codes\":{:?},\"unexpected\":{unexpected}}}",
        args.concurrency,
        total as f64 / args.duration.as_secs_f64(),
        latency.value_at_quantile(0.50),
        latency.value_at_quantile(0.99),
        latency.max(),
        codes,
    );
    if unexpected > 0 || total == 0 {
        std::process::exit(1);
    }
    Ok(())
}
