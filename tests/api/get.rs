//! GetApiToken: the seed 000 shape, NOT_FOUND that reveals nothing, and
//! refused ids.

use crate::helpers::Secret as _;
use prost::Message;
use tokend::domain::token::TokenType;
use tokend::pb;
use tokend::pb::api_token::{Kind, Type};
use tokend::pb::api_token_role::EntityType;
use tokend::pb::basic_subject_profile::SubjectType;
use tonic::{Code, Status};

use crate::both_databases;
use crate::helpers::{
    Db, ORG, OTHER_ORG, TestApp, assert_code, assert_invalid, bootstrap_token, deployment_token,
    eventually, now, with_bearer,
};

/// GetApiToken for `organization` and `token` as the bootstrap caller.
async fn get_in(app: &TestApp, organization: &str, token: &str) -> Result<pb::ApiToken, Status> {
    get_as(app, &app.secret, organization, token).await
}

/// GetApiToken with `caller` as the bearer.
async fn get_as(
    app: &TestApp,
    caller: &str,
    organization: &str,
    token: &str,
) -> Result<pb::ApiToken, Status> {
    app.client
        .clone()
        .get_api_token(with_bearer(
            caller,
            pb::GetApiTokenRequest {
                organization_id: organization.into(),
                token_id: token.into(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// Whether `id` has the shape of a generated token id: 26 characters of
/// lowercase Crockford base32.
fn is_token_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b"0123456789abcdefghjkmnpqrstvwxyz".contains(&b))
}

async fn get_returns_every_field_of_the_token(db: Db) {
    let app = TestApp::spawn(db).await;
    let before = now();
    let created = app
        .create(pb::CreateApiTokenRequest {
            description: "my token description".into(),
            token_expiry_period_in_days: Some(30),
            ..deployment_token("My token", "clm8sgvai000008l794psbkdv")
        })
        .await;
    let after = now();
    let token = app.get(&created.id).await.unwrap();

    assert!(is_token_id(&token.id), "id {:?}", token.id);
    assert_eq!(token.id, created.id);
    assert_eq!(token.name, "My token");
    assert_eq!(token.description, "my token description");
    assert_eq!(token.r#type, Type::Deployment as i32);
    assert_eq!(token.kind, Kind::Standard as i32);
    let created_at = token.created_at.unwrap();
    assert!(
        (before..=after).contains(&created_at.seconds),
        "createdAt {created_at:?}"
    );
    assert_eq!(created_at.nanos, 0, "timestamps have second precision");
    assert_eq!(token.updated_at, Some(created_at));
    assert_eq!(token.start_at, Some(created_at));
    assert_eq!(
        token.end_at.unwrap().seconds,
        created_at.seconds + 30 * 86_400
    );
    assert_eq!(token.expiry_period_in_days, Some(30));
    assert_eq!(token.last_used_at, None, "never used");
    assert_eq!(token.secret(), "", "Get never returns the secret");

    // shortToken: the prefix and the first characters of the secret part,
    // never the whole secret.
    let secret = created.secret();
    let secret_part = secret.rsplit_once('.').unwrap().1;
    let short = token
        .short_token
        .strip_prefix("tokend.")
        .expect("short token prefix");
    assert!(
        !short.is_empty() && short.len() < secret_part.len(),
        "{}",
        token.short_token
    );
    assert!(
        secret_part.starts_with(short),
        "{} vs the secret",
        token.short_token
    );
    assert_eq!(token.short_token, created.short_token);

    assert_eq!(
        token.roles,
        [pb::ApiTokenRole {
            entity_id: "clm8sgvai000008l794psbkdv".into(),
            entity_type: EntityType::Deployment as i32,
            role: "DEPLOYMENT_ADMIN".into(),
            deployment_id: None,
        }]
    );
    let creator = token.created_by.clone().expect("createdBy");
    assert_eq!(creator.id, app.token_id);
    assert_eq!(creator.api_token_name.as_deref(), Some("bootstrap"));
    // A SERVICEKEY subject has none of a USER's fields: absent, not "".
    assert_eq!(
        (&creator.avatar_url, &creator.full_name, &creator.username),
        (&None, &None, &None)
    );
    assert_eq!(creator.subject_type, SubjectType::Servicekey as i32);
    assert_eq!(token.updated_by, Some(creator));
    app.stop().await;
}

async fn get_shows_a_user_creator_and_the_last_use(db: Db) {
    let app = TestApp::spawn(db).await;
    // The bootstrap token was written by a user (the command line) and is
    // used by every call the test makes.
    let token = eventually("lastUsedAt of the bootstrap token", || async {
        let token = app.get(&app.token_id).await.unwrap();
        token.last_used_at.is_some().then_some(token)
    })
    .await;
    let last_used = token.last_used_at.unwrap().seconds;
    assert!(
        (now() - 60..=now()).contains(&last_used),
        "lastUsedAt {last_used}"
    );
    assert_eq!(token.name, "bootstrap");
    assert_eq!(token.r#type, Type::Organization as i32);
    let creator = token.created_by.expect("createdBy");
    assert_eq!(creator.subject_type, SubjectType::User as i32);
    assert_eq!(creator.username.as_deref(), Some("bootstrap-admin"));
    assert_eq!(creator.full_name.as_deref(), Some("Bootstrap Admin"));
    assert_eq!(creator.api_token_name, None, "a USER has no token name");
    assert!(!creator.id.is_empty());
    app.stop().await;
}

async fn unknown_and_foreign_tokens_are_not_found_alike(db: Db) {
    let app = TestApp::spawn(db).await;
    let (theirs, their_secret) = bootstrap_token(
        &app.db.url(),
        OTHER_ORG,
        "theirs",
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    // The other organization's token exists: its owner can read it.
    assert_eq!(
        get_as(&app, &their_secret, OTHER_ORG, &theirs)
            .await
            .unwrap()
            .name,
        "theirs"
    );

    let unknown = "0000000000000000000000000z";
    let absent = assert_code(get_in(&app, ORG, unknown).await, Code::NotFound);
    let foreign = assert_code(get_in(&app, ORG, &theirs).await, Code::NotFound);
    assert_eq!(foreign.message(), absent.message());
    assert_eq!(foreign.details(), absent.details());

    // Asking in the other organization: the same answer whether the token
    // exists there or not.
    let there = assert_code(get_in(&app, OTHER_ORG, &theirs).await, Code::NotFound);
    let not_there = assert_code(get_in(&app, OTHER_ORG, unknown).await, Code::NotFound);
    assert_eq!(there.message(), not_there.message());
    for status in [absent, foreign, there, not_there] {
        assert!(!status.message().contains(&theirs), "{}", status.message());
        assert!(
            !status.message().contains(OTHER_ORG),
            "{}",
            status.message()
        );
    }
    app.stop().await;
}

async fn get_with_the_wrong_organization_is_not_found(db: Db) {
    let app = TestApp::spawn(db).await;
    let mine = app.create(deployment_token("mine", "dep1")).await;
    bootstrap_token(
        &app.db.url(),
        OTHER_ORG,
        "theirs",
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    for organization in [OTHER_ORG, "org-nonexistent", "ORG-TEST"] {
        assert_code(get_in(&app, organization, &mine.id).await, Code::NotFound);
    }
    assert_eq!(get_in(&app, ORG, &mine.id).await.unwrap().id, mine.id);
    app.stop().await;
}

async fn get_refuses_empty_and_oversized_ids(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = app.token_id.clone();
    assert_invalid(get_in(&app, ORG, "").await, "tokenId");
    assert_invalid(get_in(&app, ORG, &"a".repeat(65)).await, "tokenId");
    assert_invalid(get_in(&app, "", &id).await, "organizationId");
    assert_invalid(get_in(&app, &"o".repeat(65), &id).await, "organizationId");
    assert_invalid(get_in(&app, "org with spaces", &id).await, "organizationId");
    // 64 characters is still an id; it is simply not found.
    assert_code(get_in(&app, ORG, &"a".repeat(64)).await, Code::NotFound);
    app.stop().await;
}

both_databases!(
    get_returns_every_field_of_the_token,
    get_shows_a_user_creator_and_the_last_use,
    unknown_and_foreign_tokens_are_not_found_alike,
    get_with_the_wrong_organization_is_not_found,
    get_refuses_empty_and_oversized_ids,
);

/// The JSON names of the fields of message `name` in the service's
/// descriptor set.
pub fn json_names(message: &str) -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(tokend::server::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let file = set
        .file
        .iter()
        .find(|f| f.name() == "tokend/v1/api_token.proto")
        .expect("api_token.proto");
    let found = file
        .message_type
        .iter()
        .find(|m| m.name() == message)
        .unwrap_or_else(|| panic!("message {message}"));
    found
        .field
        .iter()
        .map(|f| f.json_name().to_owned())
        .collect()
}

#[test]
fn api_token_has_every_field_of_seed_000() {
    let fields = json_names("ApiToken");
    for seed in [
        "createdAt",
        "description",
        "id",
        "name",
        "shortToken",
        "startAt",
        "type",
        "updatedAt",
        "createdBy",
        "endAt",
        "expiryPeriodInDays",
        "lastUsedAt",
        "roles",
        "token",
        "updatedBy",
        "kind",
    ] {
        assert!(
            fields.iter().any(|f| f == seed),
            "ApiToken lacks {seed}: {fields:?}"
        );
    }
    let subject = json_names("BasicSubjectProfile");
    for seed in [
        "id",
        "apiTokenName",
        "avatarUrl",
        "fullName",
        "subjectType",
        "username",
    ] {
        assert!(
            subject.iter().any(|f| f == seed),
            "BasicSubjectProfile lacks {seed}"
        );
    }
    let role = json_names("ApiTokenRole");
    for seed in ["entityId", "entityType", "role", "deploymentId"] {
        assert!(role.iter().any(|f| f == seed), "ApiTokenRole lacks {seed}");
    }
}
