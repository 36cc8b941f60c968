//! LookupApiToken: Dynatrace-shaped metadata for a secret, INVALID_ARGUMENT
//! for strings that are not secrets, NOT_FOUND for secrets of no token, and
//! a recorded use of the token looked up.

use crate::helpers::Secret as _;
use tokend::domain::token::TokenType;
use tokend::pb;
use tonic::Code;

use crate::both_databases;
use crate::helpers::{
    Db, OTHER_ORG, TestApp, assert_code, assert_invalid_in, at, bootstrap_token, dt_date, dt_of,
    eventually, now, unknown_secret, workspace_token,
};

const DAY: i64 = 86_400;

async fn lookup_returns_the_metadata_of_the_token(db: Db) {
    let app = TestApp::spawn(db).await;
    let created = app
        .create(pb::CreateApiTokenRequest {
            token_expiry_period_in_days: Some(30),
            ..workspace_token("ci", "ws1")
        })
        .await;
    let meta = app.lookup_as(&app.secret, &created.secret()).await.unwrap();
    assert_eq!(meta.id, format!("tokend.{}", created.id));
    assert_eq!(meta.name, "ci");
    assert_eq!(
        meta.owner, "bootstrap",
        "created by the bootstrap token: its name"
    );
    // Dynatrace's date form, milliseconds included.
    assert_eq!(Some(meta.creation_date.clone()), dt_of(&created.created_at));
    assert!(
        meta.creation_date.ends_with(".000Z"),
        "{}",
        meta.creation_date
    );
    assert_eq!(meta.expiration_date, dt_of(&created.end_at));
    assert_eq!(Some(meta.modified_date.clone()), dt_of(&created.updated_at));
    assert_eq!(meta.last_used_ip_address, None, "never used: absent");
    assert!(meta.enabled);
    assert!(!meta.personal_access_token);
    assert_eq!(
        meta.resource_scopes,
        [
            "role:WORKSPACE_MEMBER:organizations/org-test/workspaces/ws1",
            "apiTokens.read:organizations/org-test/workspaces/ws1"
        ],
        "its role, then the token permissions the matrix derives from it"
    );
    assert!(
        meta.scopes.is_empty(),
        "it may read one workspace's tokens, not the organization's: no plain name {:?}",
        meta.scopes
    );
    let secret = created.secret();
    let secret_part = secret.rsplit_once('.').unwrap().1;
    assert!(
        !format!("{meta:?}").contains(secret_part),
        "metadata echoes the secret"
    );

    // The bootstrap token was created by a user: the owner is the username.
    let bootstrap = app.lookup_as(&app.secret, &app.secret).await.unwrap();
    assert_eq!(bootstrap.id, format!("tokend.{}", app.token_id));
    assert_eq!(bootstrap.name, "bootstrap");
    assert_eq!(bootstrap.owner, "bootstrap-admin");
    assert_eq!(bootstrap.expiration_date, None, "never expires");
    assert!(
        bootstrap
            .resource_scopes
            .iter()
            .any(|s| s.contains("ORGANIZATION_OWNER")),
        "{:?}",
        bootstrap.resource_scopes
    );
    assert_eq!(
        bootstrap.scopes,
        ["apiTokens.read", "apiTokens.write"],
        "an organization owner may read and manage every token: Dynatrace's plain names"
    );
    app.stop().await;
}

async fn lookup_records_a_use_of_the_token_looked_up(db: Db) {
    let app = TestApp::spawn(db).await;
    let created = app.create(workspace_token("ci", "ws1")).await;
    assert_eq!(app.get(&created.id).await.unwrap().last_used_at, None);
    let before = now();
    app.lookup_as(&app.secret, &created.secret()).await.unwrap();
    let meta = eventually("lastUsedDate of the looked-up token", || async {
        let meta = app.lookup_as(&app.secret, &created.secret()).await.unwrap();
        meta.last_used_date.is_some().then_some(meta)
    })
    .await;
    let used = app.get(&created.id).await.unwrap().last_used_at;
    let seconds = used.unwrap().seconds;
    assert!((before..=now()).contains(&seconds), "lastUsedAt {seconds}");
    assert_eq!(meta.last_used_ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(meta.last_used_date, dt_of(&used));
    app.stop().await;
}

/// The alphabet of the id part (lowercase Crockford base32).
const ID_CHARS: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// The alphabet of the secret part (RFC 4648 base32).
const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `secret` with the character at byte `index` replaced by another one of
/// `alphabet`: still well-shaped, but the checksum no longer matches.
fn with_char_changed(secret: &str, index: usize, alphabet: &[u8]) -> String {
    let old = secret.as_bytes()[index];
    let new = alphabet.iter().find(|c| **c != old).copied().unwrap();
    let mut changed = secret.to_owned();
    changed.replace_range(index..=index, &char::from(new).to_string());
    changed
}

async fn lookup_refuses_strings_that_are_not_secrets(db: Db) {
    let app = TestApp::spawn(db).await;
    let secret = app.create(workspace_token("ci", "ws1")).await.secret();
    let secret_part_start = secret.rfind('.').unwrap() + 1;
    let (_, rest) = secret.split_once('.').unwrap();
    let cases = [
        (
            "a character of the secret part changed",
            with_char_changed(&secret, secret_part_start + 20, SECRET_CHARS),
        ),
        (
            "the last character changed",
            with_char_changed(&secret, secret.len() - 1, SECRET_CHARS),
        ),
        (
            "a character of the id changed",
            with_char_changed(&secret, "tokend.".len() + 20, ID_CHARS),
        ),
        ("truncated", secret[..secret.len() - 1].to_owned()),
        ("cut in half", secret[..secret.len() / 2].to_owned()),
        ("extended", format!("{secret}A")),
        ("wrong prefix", format!("dt0c01.{rest}")),
        ("upper-case prefix", format!("TOKEND.{rest}")),
        ("no prefix", rest.to_owned()),
        ("surrounding space", format!(" {secret} ")),
        ("lower-cased", secret.to_lowercase()),
        ("garbage", "not a token".to_owned()),
        ("empty", String::new()),
    ];
    for (what, text) in cases {
        let status = assert_invalid_in(what, app.lookup_as(&app.secret, &text).await, "token");
        if !text.is_empty() {
            assert!(
                !status.message().contains(&text),
                "{what}: message echoes the input"
            );
        }
    }
    app.stop().await;
}

async fn lookup_of_an_unknown_secret_is_not_found(db: Db) {
    let app = TestApp::spawn(db).await;
    let unknown = unknown_secret();
    let status = assert_code(app.lookup_as(&app.secret, &unknown).await, Code::NotFound);
    assert!(!status.message().contains(&unknown));
    app.stop().await;
}

async fn lookup_answers_for_expired_and_not_yet_valid_tokens(db: Db) {
    let app = TestApp::spawn(db).await;
    let start = now() - 2 * DAY;
    let expired = app
        .create(pb::CreateApiTokenRequest {
            start_at: Some(at(start)),
            token_expiry_period_in_days: Some(1),
            ..workspace_token("expired", "ws1")
        })
        .await;
    let meta = app.lookup_as(&app.secret, &expired.secret()).await.unwrap();
    assert_eq!(meta.name, "expired");
    assert_eq!(meta.expiration_date, Some(dt_date(start + DAY)));
    // The server holds it expired: as a caller it is refused, while Lookup
    // still describes it.
    assert_code(
        app.lookup_as(&expired.secret(), &app.secret).await,
        Code::Unauthenticated,
    );

    let later = now() + DAY;
    let pending = app
        .create(pb::CreateApiTokenRequest {
            start_at: Some(at(later)),
            token_expiry_period_in_days: Some(5),
            ..workspace_token("not-yet-valid", "ws1")
        })
        .await;
    let meta = app.lookup_as(&app.secret, &pending.secret()).await.unwrap();
    assert_eq!(meta.name, "not-yet-valid");
    assert_eq!(meta.expiration_date, Some(dt_date(later + 5 * DAY)));
    assert_eq!(Some(meta.creation_date), dt_of(&pending.created_at));
    assert_eq!(meta.start_date, dt_date(later));
    assert!(meta.enabled);
    // Not usable yet by the server's clock.
    assert_code(
        app.lookup_as(&pending.secret(), &app.secret).await,
        Code::Unauthenticated,
    );
    app.stop().await;
}

async fn any_valid_caller_may_look_up(db: Db) {
    let app = TestApp::spawn(db).await;
    let narrow = app.create(workspace_token("narrow", "ws1")).await;
    let (_, foreign) = bootstrap_token(
        &app.db.url(),
        OTHER_ORG,
        "theirs",
        TokenType::Workspace,
        "WORKSPACE_MEMBER",
        "ws9",
    )
    .await;
    // A workspace-scoped caller, and a caller of another organization.
    assert_eq!(
        app.lookup_as(&narrow.secret(), &app.secret)
            .await
            .unwrap()
            .name,
        "bootstrap"
    );
    assert_eq!(
        app.lookup_as(&foreign, &narrow.secret())
            .await
            .unwrap()
            .name,
        "narrow"
    );
    assert_eq!(
        app.lookup_as(&app.secret, &foreign).await.unwrap().name,
        "theirs"
    );
    app.stop().await;
}

both_databases!(
    lookup_returns_the_metadata_of_the_token,
    lookup_records_a_use_of_the_token_looked_up,
    lookup_refuses_strings_that_are_not_secrets,
    lookup_of_an_unknown_secret_is_not_found,
    lookup_answers_for_expired_and_not_yet_valid_tokens,
    any_valid_caller_may_look_up,
);
