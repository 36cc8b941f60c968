//! Micro-benchmarks of the pieces on every authenticated request:
//! `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tokend::domain::ids::{EntityId, OrganizationId, TokenId};
use tokend::domain::permission::{Action, Principal, TokenScope};
use tokend::domain::role::{EntityType, Role, RoleBinding};
use tokend::domain::secret::{TokenPrefix, TokenSecret};
use tokend::domain::subject::Subject;
use tokend::domain::token::{ApiToken, TokenKind, TokenType};
use tokend::service::cache::{CacheSettings, Credential, CredentialCache};
use tokend::store::DigestMatch;

fn sample_token(id: TokenId) -> DigestMatch {
    let org = OrganizationId::parse("org", "org-bench").unwrap();
    let subject = Subject::user("bench", "").unwrap();
    DigestMatch {
        token: ApiToken {
            id,
            organization_id: org,
            name: "bench".into(),
            description: String::new(),
            token_type: TokenType::Workspace,
            entity_id: EntityId::parse("e", "ws1").unwrap(),
            kind: TokenKind::Standard,
            short_token: "tokend.ABCDEFGH".into(),
            enabled: true,
            start_at: 0,
            end_at: None,
            expiry_days: None,
            created_at: 0,
            updated_at: 0,
            created_by: subject.clone(),
            updated_by: subject,
            last_used_at: None,
            last_used_ip: None,
            last_rotated_at: None,
            roles: vec![RoleBinding::from_stored(
                EntityType::Workspace,
                EntityId::parse("e", "ws1").unwrap(),
                Role::WorkspaceOwner,
                None,
            )],
        },
        secret_expires_at_ms: None,
    }
}

fn hot_path(c: &mut Criterion) {
    let prefix = TokenPrefix::parse(tokend::cli::DEFAULT_TOKEN_PREFIX).unwrap();
    let id = TokenId::generate(1_700_000_000_000, [3; 10]);
    let secret = TokenSecret::generate(id.clone()).unwrap();
    let text = secret.reveal(&prefix).into_exposed();
    let malformed = format!("{}A", &text[..text.len() - 1]);

    c.bench_function("parse_secret", |b| {
        b.iter(|| TokenSecret::parse(&prefix, black_box(&text)))
    });
    c.bench_function("reject_bad_checksum", |b| {
        b.iter(|| TokenSecret::parse(&prefix, black_box(&malformed)))
    });
    c.bench_function("digest", |b| b.iter(|| black_box(&secret).digest()));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cache = CredentialCache::new(CacheSettings {
        capacity: 100_000,
        ttl: std::time::Duration::from_secs(3600),
        negative_ttl: std::time::Duration::from_secs(1),
    });
    let digest = secret.digest();
    let found = sample_token(id.clone());
    runtime.block_on(async {
        cache
            .get_or_load(&digest, async { Ok(Some(found)) })
            .await
            .unwrap();
    });
    c.bench_function("cache_hit", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let hit = cache
                    .get_or_load(black_box(&digest), async { unreachable!("cached") })
                    .await;
                black_box(hit.ok().flatten().map(|m: Arc<Credential>| m.enabled))
            })
        })
    });

    let org = OrganizationId::parse("org", "org-bench").unwrap();
    let principal = Principal {
        organization: org.clone(),
        roles: sample_token(id).token.roles,
    };
    let ws = EntityId::parse("e", "ws1").unwrap();
    let target = TokenScope {
        token_type: TokenType::Workspace,
        entity_id: &ws,
    };
    c.bench_function("permission_check", |b| {
        b.iter(|| black_box(&principal).authorize(&org, target, Action::Rotate))
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
