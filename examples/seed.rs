//! Seeds a benchmark database with many tokens in one organization (the
//! worst case for List), by bulk multi-row INSERTs.
//!
//! `cargo run --release --example seed -- --database-url URL --tokens 1000000
//!  --secrets-out secrets.txt --secrets 100000`
//!
//! Distribution (deterministic): 10% ORGANIZATION tokens, 60% WORKSPACE
//! tokens over 1,000 workspaces, 30% DEPLOYMENT tokens over 3,000
//! deployments; half of the deployment tokens also hold a DAG role (5,000
//! DAG ids) and 30% a DAG_TAG role (100 tags); 10% DIRECT_ACCESS; half expire.
//! Prints the secret of an ORGANIZATION_OWNER token of the organization on
//! the last line.

use std::time::Instant;

use clap::Parser;
use sea_orm::ActiveValue::Set;
use sea_orm::{EntityTrait, TransactionTrait};
use tokend::domain::ids::{OrganizationId, TokenId};
use tokend::domain::secret::{TokenPrefix, TokenSecret};
use tokend::domain::subject::Subject;
use tokend::domain::time::now_seconds;
use tokend::domain::token::{CreateTokenInput, NewToken, TokenType};
use tokend::service::mint::issue;
use tokend::store::entity::{api_token, api_token_role, api_token_secret, subject};
use tokend::store::{Store, StoreOptions};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, env = "TOKEND_DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 1_000_000)]
    tokens: u64,
    #[arg(long, default_value = "org-bench")]
    org: String,
    /// Rows per INSERT statement.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Write real secrets of the first --secrets tokens here (for cache warming).
    #[arg(long)]
    secrets_out: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 0)]
    secrets: u64,
    /// Keep the secrets of expired tokens too (Lookup by another caller
    /// still finds them; they cannot authenticate).
    #[arg(long)]
    all_secrets: bool,
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

const WORDS: [&str; 16] = [
    "ci",
    "deploy",
    "airflow",
    "nightly",
    "etl",
    "reporting",
    "backfill",
    "sync",
    "metrics",
    "export",
    "billing",
    "ml",
    "staging",
    "prod",
    "audit",
    "ingest",
];

struct Rows {
    tokens: Vec<api_token::ActiveModel>,
    roles: Vec<api_token_role::ActiveModel>,
    secrets: Vec<api_token_secret::ActiveModel>,
}

fn role(
    token: &str,
    org: &str,
    entity_type: &str,
    entity: String,
    role: &str,
    deployment: String,
) -> api_token_role::ActiveModel {
    api_token_role::ActiveModel {
        token_id: Set(token.to_owned()),
        entity_type: Set(entity_type.to_owned()),
        entity_id: Set(entity),
        deployment_id: Set(deployment),
        organization_id: Set(org.to_owned()),
        role: Set(role.to_owned()),
    }
}

fn make(
    i: u64,
    rng: &mut u64,
    org: &str,
    creator: &str,
    now: i64,
    prefix: &TokenPrefix,
    rows: &mut Rows,
) -> (String, bool) {
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&next(rng).to_le_bytes());
    let id = TokenId::generate(1_600_000_000_000 + i, random);
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&next(rng).to_le_bytes());
    }
    let secret = TokenSecret::from_parts(id.clone(), key);
    let (token_type, entity, own_role) = match i % 10 {
        0 => ("ORGANIZATION", org.to_owned(), "ORGANIZATION_MEMBER"),
        1..=6 => (
            "WORKSPACE",
            format!("ws-{}", next(rng) % 1000),
            "WORKSPACE_MEMBER",
        ),
        _ => (
            "DEPLOYMENT",
            format!("dep-{}", next(rng) % 3000),
            "DEPLOYMENT_ADMIN",
        ),
    };
    let id_text = id.as_str().to_owned();
    let entity_type = token_type;
    rows.roles.push(role(
        &id_text,
        org,
        entity_type,
        entity.clone(),
        own_role,
        String::new(),
    ));
    if token_type == "DEPLOYMENT" {
        if next(rng).is_multiple_of(2) {
            rows.roles.push(role(
                &id_text,
                org,
                "DAG",
                format!("dag-{}", next(rng) % 5000),
                "DAG_AUTHOR",
                entity.clone(),
            ));
        }
        if next(rng) % 10 < 3 {
            rows.roles.push(role(
                &id_text,
                org,
                "DAG_TAG",
                format!("tag-{}", next(rng) % 100),
                "DAG_VIEWER",
                entity.clone(),
            ));
        }
    }
    let created = now - i64::try_from(next(rng) % (2 * 365 * 86_400)).unwrap_or(0);
    let updated = created + i64::try_from(next(rng) % (30 * 86_400)).unwrap_or(0);
    let expiry =
        (next(rng).is_multiple_of(2)).then(|| i32::try_from(30 + next(rng) % 335).unwrap_or(30));
    let words = format!(
        "{} {}",
        WORDS[(next(rng) % 16) as usize],
        WORDS[(next(rng) % 16) as usize]
    );
    rows.tokens.push(api_token::ActiveModel {
        id: Set(id_text.clone()),
        organization_id: Set(org.to_owned()),
        name: Set(format!("{words} {i:07}")),
        description: Set(format!("{words} token for {entity}")),
        token_type: Set(token_type.to_owned()),
        entity_id: Set(entity),
        kind: Set(if next(rng).is_multiple_of(10) {
            "DIRECT_ACCESS"
        } else {
            "STANDARD"
        }
        .to_owned()),
        short_token: Set(secret.short_token(prefix)),
        enabled: Set(true),
        start_at: Set(created),
        end_at: Set(expiry.map(|d| created + i64::from(d) * 86_400)),
        expiry_days: Set(expiry),
        created_at: Set(created),
        updated_at: Set(updated),
        created_by: Set(creator.to_owned()),
        updated_by: Set(creator.to_owned()),
        last_used_at: Set(None),
        last_used_ip: Set(None),
        last_rotated_at: Set(None),
    });
    rows.secrets.push(api_token_secret::ActiveModel {
        digest: Set(secret.digest().as_bytes().to_vec()),
        token_id: Set(id_text),
        created_at: Set(created),
        expires_at_ms: Set(None),
    });
    // The secret, and whether it is usable as a credential (it never
    // expires); an expired one can only be looked up.
    (secret.reveal(prefix).into_exposed(), expiry.is_none())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let store = Store::connect(&args.database_url, &StoreOptions::defaults()?).await?;
    store.migrate().await?;
    let prefix = TokenPrefix::parse(tokend::cli::DEFAULT_TOKEN_PREFIX)?;
    let org = OrganizationId::parse("org", &args.org)?;
    let now = now_seconds();
    let creator = Subject::user("seed", "Benchmark seeder")?;
    let owner = NewToken::parse(
        org.clone(),
        &CreateTokenInput {
            name: "bench owner",
            token_type: Some(TokenType::Organization),
            role: "ORGANIZATION_OWNER",
            ..CreateTokenInput::default()
        },
        now,
    )
    .map_err(|v| format!("{v:?}"))?;
    let (_, owner_secret) = issue(&store, &prefix, &owner, &creator, None, now).await?;
    let db = sea_orm::Database::connect(args.database_url.as_str()).await?;
    subject::Entity::insert(subject::ActiveModel {
        id: Set(creator.id.clone()),
        subject_type: Set("USER".into()),
        username: Set(creator.username.clone()),
        full_name: Set(creator.full_name.clone()),
        avatar_url: Set(String::new()),
        api_token_name: Set(String::new()),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(&db)
    .await?;
    let started = Instant::now();
    let mut rng = 0x5EED_u64;
    let mut written = 0u64;
    let mut kept_secrets = Vec::new();
    while written < args.tokens {
        let n = (args.tokens - written).min(args.batch as u64 * 10);
        let mut rows = Rows {
            tokens: Vec::new(),
            roles: Vec::new(),
            secrets: Vec::new(),
        };
        for i in written..written + n {
            let (secret, usable) = make(
                i,
                &mut rng,
                org.as_str(),
                &creator.id,
                now,
                &prefix,
                &mut rows,
            );
            if (usable || args.all_secrets) && (kept_secrets.len() as u64) < args.secrets {
                kept_secrets.push(secret);
            }
        }
        let txn = db.begin().await?;
        for chunk in rows.tokens.chunks(args.batch) {
            api_token::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        for chunk in rows.roles.chunks(args.batch) {
            api_token_role::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        for chunk in rows.secrets.chunks(args.batch) {
            api_token_secret::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        written += n;
        if written.is_multiple_of(100_000) || written == args.tokens {
            eprintln!(
                "seeded {written} tokens in {:.0}s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    {
        use sea_orm::ConnectionTrait;
        // The bulk insert bypasses Create, so rebuild the per-scope counts
        // List's totalCount reads, then refresh planner statistics.
        let txn = db.begin().await?;
        txn.execute_unprepared(tokend::store::migration::RECOUNT_SQL)
            .await?;
        txn.commit().await?;
        let analyze = if db.get_database_backend() == sea_orm::DbBackend::Postgres {
            "VACUUM ANALYZE"
        } else {
            "ANALYZE"
        };
        db.execute_unprepared(analyze).await?;
    }
    if let Some(path) = args.secrets_out {
        std::fs::write(path, kept_secrets.join("\n") + "\n")?;
    }
    eprintln!(
        "done: {written} tokens in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    println!("{}", owner_secret.expose());
    Ok(())
}
