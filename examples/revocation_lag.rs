//! Revocation lag across two replicas (issue 16, benchmark d): how long
//! after a disable or delete through replica A is acknowledged replica B
//! first refuses the token, with B's cache holding it.
//!
//! `cargo run --release --example revocation_lag -- --a http://127.0.0.1:50051
//!  --b http://127.0.0.1:50052 --secret S --trials 200`
//!
//! Each trial: create a WORKSPACE token through A, authenticate with it
//! through B twice (so B has it cached), disable it (odd trials) or delete
//! it (even ones) through A, then call B back to back until it refuses the
//! token. The lag is from A's acknowledgement to the start of B's first
//! refused call. Prints one JSON line with p50 / p99 / max in microseconds
//! and, for scale, the median of sequential `grpc.health.v1.Health/Check`
//! calls to B in the same run.

use std::time::{Duration, Instant};

use clap::Parser;
use tokend::pb;
use tokend::pb::api_token_service_client::ApiTokenServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Parser)]
struct Args {
    /// Replica the changes are made through.
    #[arg(long)]
    a: String,
    /// Replica that must notice them.
    #[arg(long)]
    b: String,
    /// An ORGANIZATION_OWNER secret.
    #[arg(long, env = "LOADGEN_SECRET")]
    secret: String,
    #[arg(long, default_value_t = 200)]
    trials: usize,
    /// Give up on one trial after this long.
    #[arg(long, default_value_t = 10_000)]
    give_up_ms: u64,
}

fn bearer<T>(secret: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = format!("Bearer {secret}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Whether `secret` authenticates on `client` (a Get of its own token).
async fn accepted(
    client: &mut ApiTokenServiceClient<Channel>,
    secret: &str,
    org: &str,
    id: &str,
) -> Result<bool, tonic::Status> {
    match client
        .get_api_token(bearer(
            secret,
            pb::GetApiTokenRequest {
                organization_id: org.into(),
                token_id: id.into(),
            },
        ))
        .await
    {
        Ok(_) => Ok(true),
        Err(s) if s.code() == Code::Unauthenticated => Ok(false),
        // Authenticated, but a WORKSPACE token may not read itself here.
        Err(s) if matches!(s.code(), Code::PermissionDenied | Code::NotFound) => Ok(true),
        Err(s) => Err(s),
    }
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64)).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut a = ApiTokenServiceClient::new(Channel::from_shared(args.a.clone())?.connect().await?);
    let b_channel = Channel::from_shared(args.b.clone())?.connect().await?;
    let mut b = ApiTokenServiceClient::new(b_channel.clone());
    let mut health = HealthClient::new(b_channel);
    let me = a
        .lookup_api_token(bearer(
            &args.secret,
            pb::ApiTokenSecret {
                token: args.secret.clone(),
            },
        ))
        .await?
        .into_inner();
    let org = me.organization_id;
    let mut noop = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let started = Instant::now();
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        noop.push(started.elapsed().as_micros());
    }
    noop.sort_unstable();
    let mut lags = Vec::with_capacity(args.trials);
    let mut polls = 0u64;
    for trial in 0..args.trials {
        let token = a
            .create_api_token(bearer(
                &args.secret,
                pb::CreateApiTokenRequest {
                    organization_id: org.clone(),
                    name: format!("lag {trial} {}", std::process::id()),
                    r#type: pb::api_token::Type::Workspace as i32,
                    role: "WORKSPACE_MEMBER".into(),
                    entity_id: "ws-lag".into(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        let secret = token.token.as_deref().unwrap_or_default();
        for _ in 0..2 {
            if !accepted(&mut b, secret, &org, &token.id).await? {
                return Err(format!("trial {trial}: B refused a new token").into());
            }
        }
        if trial % 2 == 1 {
            a.update_api_token(bearer(
                &args.secret,
                pb::UpdateApiTokenRequest {
                    organization_id: org.clone(),
                    token_id: token.id.clone(),
                    enabled: Some(false),
                    ..Default::default()
                },
            ))
            .await?;
        } else {
            a.delete_api_token(bearer(
                &args.secret,
                pb::DeleteApiTokenRequest {
                    organization_id: org.clone(),
                    token_id: token.id.clone(),
                },
            ))
            .await?;
        }
        let acknowledged = Instant::now();
        loop {
            let sent = Instant::now();
            polls += 1;
            if !accepted(&mut b, secret, &org, &token.id).await? {
                lags.push(sent.duration_since(acknowledged).as_micros());
                break;
            }
            if acknowledged.elapsed() > Duration::from_millis(args.give_up_ms) {
                return Err(format!(
                    "trial {trial}: B still accepts after {} ms",
                    args.give_up_ms
                )
                .into());
            }
        }
    }
    lags.sort_unstable();
    println!(
        "{{\"scenario\":\"revocation-lag\",\"trials\":{},\"polls\":{polls},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"noop_p50_us\":{}}}",
        lags.len(),
        percentile(&lags, 50.0),
        percentile(&lags, 99.0),
        lags.last().copied().unwrap_or(0),
        percentile(&noop, 50.0),
    );
    Ok(())
}
