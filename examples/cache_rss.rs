//! Bytes per credential-cache entry, measured (issue 16.2): fills a
//! `CredentialCache` with `--entries` distinct credentials shaped like the
//! benchmark seed's (an organization, a workspace or deployment entity,
//! one to three role bindings, a 20-character name) and prints the growth
//! of the process's resident set per entry, as one JSON line.
//!
//! `cargo run --release --example cache_rss -- --entries 1000000`

use std::time::Duration;

use clap::Parser;
use tokend::domain::ids::{EntityId, OrganizationId, TokenId};
use tokend::domain::role::{EntityType, Role, RoleBinding};
use tokend::domain::secret::TokenSecret;
use tokend::domain::subject::Subject;
use tokend::domain::token::{ApiToken, TokenKind, TokenType};
use tokend::service::cache::{CacheSettings, CredentialCache};
use tokend::store::DigestMatch;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    entries: u32,
    /// Measure moka alone instead (32-byte keys, `Option<Arc<()>>` values):
    /// `expiry` with a per-entry expiry as the cache builds it, `ttl` with
    /// one time-to-live for all.
    #[arg(long)]
    moka_only: Option<String>,
}

struct Fixed;

impl moka::Expiry<[u8; 32], Option<std::sync::Arc<()>>> for Fixed {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        _: &Option<std::sync::Arc<()>>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(300))
    }
}

/// moka's own cost per entry, without tokend's value.
async fn moka_only(entries: u32, variant: &str) {
    let builder = moka::future::Cache::builder().max_capacity(u64::from(entries) + 1000);
    let cache: moka::future::Cache<[u8; 32], Option<std::sync::Arc<()>>> = match variant {
        "expiry" => builder
            .expire_after(Fixed)
            .support_invalidation_closures()
            .build(),
        _ => builder.time_to_live(Duration::from_secs(300)).build(),
    };
    cache.insert([0; 32], None).await;
    let before = rss_kb();
    for n in 0..entries {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&n.to_le_bytes());
        cache.insert(key, Some(std::sync::Arc::new(()))).await;
    }
    let after = rss_kb();
    println!(
        "{{\"moka_only\":{variant:?},\"entries\":{entries},\"bytes_per_entry\":{:.0}}}",
        (after.saturating_sub(before) * 1024) as f64 / f64::from(entries.max(1)),
    );
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn credential(n: u32, org: &OrganizationId, owner: &Subject) -> DigestMatch {
    let mut random = [0u8; 10];
    random[..4].copy_from_slice(&n.to_le_bytes());
    let id = TokenId::generate(1_764_000_000_000, random);
    let (token_type, entity_type, entity, role) = match n % 10 {
        0 => (
            TokenType::Organization,
            EntityType::Organization,
            org.as_str().to_owned(),
            "ORGANIZATION_MEMBER",
        ),
        1..=6 => (
            TokenType::Workspace,
            EntityType::Workspace,
            format!("ws-{}", n % 1000),
            "WORKSPACE_AUTHOR",
        ),
        _ => (
            TokenType::Deployment,
            EntityType::Deployment,
            format!("dep-{}", n % 3000),
            "DEPLOYMENT_ADMIN",
        ),
    };
    let entity_id = EntityId::from_stored(entity.clone());
    let mut roles = vec![RoleBinding::from_stored(
        entity_type,
        entity_id.clone(),
        Role::from_name(role).unwrap_or(Role::OrganizationMember),
        None,
    )];
    if n.is_multiple_of(2) && token_type == TokenType::Deployment {
        roles.push(RoleBinding::from_stored(
            EntityType::Dag,
            EntityId::from_stored(format!("dag-{}", n % 5000)),
            Role::from_name("DAG_AUTHOR").unwrap_or(Role::OrganizationMember),
            Some(entity_id.clone()),
        ));
    }
    DigestMatch {
        token: ApiToken {
            id,
            organization_id: org.clone(),
            name: format!("deploy nightly {n:07}"),
            description: format!("deploy nightly token for {entity}"),
            token_type,
            entity_id,
            kind: TokenKind::Standard,
            short_token: "tokend.0000".into(),
            enabled: true,
            start_at: 1_700_000_000,
            end_at: n.is_multiple_of(2).then_some(1_800_000_000),
            expiry_days: None,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_000,
            created_by: owner.clone(),
            updated_by: owner.clone(),
            last_used_at: None,
            last_used_ip: None,
            last_rotated_at: None,
            roles,
        },
        secret_expires_at_ms: None,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(variant) = &args.moka_only {
        moka_only(args.entries, variant).await;
        return Ok(());
    }
    let cache = CredentialCache::new(CacheSettings {
        capacity: u64::from(args.entries) + 1000,
        ttl: Duration::from_secs(300),
        negative_ttl: Duration::from_secs(1),
    });
    let org = OrganizationId::parse("org", "org-bench")?;
    let owner = Subject::user("seed", "Benchmark seeder")?;
    // Warm the allocator and the runtime before the baseline.
    let _ = cache
        .get_or_load(
            &TokenSecret::from_parts(TokenId::generate(1, [0; 10]), [0; 32]).digest(),
            async { Ok(None) },
        )
        .await;
    let before = rss_kb();
    for n in 0..args.entries {
        let found = credential(n, &org, &owner);
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&n.to_le_bytes());
        let digest = TokenSecret::from_parts(found.token.id.clone(), key).digest();
        cache
            .get_or_load(&digest, async { Ok(Some(found)) })
            .await?;
    }
    let after = rss_kb();
    println!(
        "{{\"entries\":{},\"counted\":{},\"rss_before_kb\":{before},\"rss_after_kb\":{after},\"bytes_per_entry\":{:.0}}}",
        args.entries,
        cache.entry_count(),
        (after.saturating_sub(before) * 1024) as f64 / f64::from(args.entries.max(1)),
    );
    Ok(())
}
