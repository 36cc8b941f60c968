//! Token queries: create, get, list, find by secret digest.

use std::collections::HashMap;

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, JoinType, OnConflict, Order, Query, SelectStatement,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, Iterable, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, TransactionTrait,
};

use super::audit::{self, EventScope};
use super::convert::{
    role_from_row, role_to_row, subject_from_row, subject_to_row, token_from_row,
};
use super::entity::{api_token, api_token_count, api_token_role, api_token_secret, subject};
use super::{Store, StoreError};
use crate::domain::audit::{Actor, AuditAction};
use crate::domain::ids::{EntityId, OrganizationId, TokenId};
use crate::domain::permission::TokenScope;
use crate::domain::role::RoleBinding;
use crate::domain::secret::SecretDigest;
use crate::domain::subject::Subject;
use crate::domain::token::{ApiToken, NewToken, TokenKind, TokenType};

/// A token's row as found for authorization: its scope, not yet its roles.
#[derive(Debug, Clone)]
pub struct TokenHead {
    /// The token's id.
    pub id: TokenId,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Its type.
    pub token_type: TokenType,
    /// Its organization, workspace or deployment.
    pub entity_id: EntityId,
    /// Its name.
    pub name: String,
    pub(super) row: api_token::Model,
}

impl TokenHead {
    fn from_row(row: api_token::Model) -> Result<Self, StoreError> {
        let token_type = TokenType::from_name(&row.token_type).ok_or_else(|| {
            StoreError::Corrupt(format!("api_tokens.token_type holds {:?}", row.token_type))
        })?;
        Ok(Self {
            id: TokenId::from_stored(row.id.clone()),
            organization_id: OrganizationId::from_stored(row.organization_id.clone()),
            token_type,
            entity_id: EntityId::from_stored(row.entity_id.clone()),
            name: row.name.clone(),
            row,
        })
    }

    /// What authorization decides on.
    pub fn scope(&self) -> TokenScope<'_> {
        TokenScope {
            token_type: self.token_type,
            entity_id: &self.entity_id,
        }
    }

    /// Where its audit events go.
    pub(super) fn event_scope(&self) -> EventScope<'_> {
        EventScope {
            organization_id: &self.organization_id,
            token_id: &self.id,
            token_type: self.token_type,
            entity_id: &self.entity_id,
        }
    }
}

/// A token found by one of its secret digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMatch {
    /// The token.
    pub token: ApiToken,
    /// When this particular secret stops working, Unix milliseconds (set
    /// only for a secret rotated out with a grace period).
    pub secret_expires_at_ms: Option<i64>,
}

/// What Create writes besides the validated request.
#[derive(Debug, Clone)]
pub struct CreateRecord<'a> {
    /// The generated id.
    pub id: &'a TokenId,
    /// Digest of the generated secret.
    pub digest: &'a SecretDigest,
    /// Display form of the generated secret.
    pub short_token: &'a str,
    /// Who creates it.
    pub creator: &'a Subject,
    /// From which client address (none for the command line).
    pub ip: Option<&'a str>,
    /// When (Unix seconds).
    pub now: i64,
    /// The audit event's detail.
    pub detail: &'a str,
}

impl Store {
    /// Writes a new token, its secret digest, its role and its creator in
    /// one transaction, and returns the token as stored.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "create_token", system = self.kind.as_str()))]
    pub async fn create_token(
        &self,
        new: &NewToken,
        record: &CreateRecord<'_>,
    ) -> Result<ApiToken, StoreError> {
        let _timer = super::DbTimer::start();
        let txn = self.write.begin().await?;
        upsert_subject(&txn, record.creator).await?;
        let end_at = new.end_at();
        api_token::Entity::insert(api_token::ActiveModel {
            id: Set(record.id.as_str().to_owned()),
            organization_id: Set(new.organization_id.as_str().to_owned()),
            name: Set(new.name.as_str().to_owned()),
            description: Set(new.description.as_str().to_owned()),
            token_type: Set(new.token_type.as_str().to_owned()),
            entity_id: Set(new.entity_id.as_str().to_owned()),
            kind: Set(new.kind.as_str().to_owned()),
            short_token: Set(record.short_token.to_owned()),
            enabled: Set(true),
            start_at: Set(new.start_at),
            end_at: Set(end_at),
            expiry_days: Set(new.expiry.map(|e| e.days())),
            created_at: Set(record.now),
            updated_at: Set(record.now),
            created_by: Set(record.creator.id.clone()),
            updated_by: Set(record.creator.id.clone()),
            last_used_at: Set(None),
            last_used_ip: Set(None),
            last_rotated_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        api_token_secret::Entity::insert(api_token_secret::ActiveModel {
            digest: Set(record.digest.as_bytes().to_vec()),
            token_id: Set(record.id.as_str().to_owned()),
            created_at: Set(record.now),
            expires_at_ms: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        api_token_role::Entity::insert(role_to_row(record.id, &new.organization_id, &new.role))
            .exec_without_returning(&txn)
            .await?;
        adjust_count(
            &txn,
            &new.organization_id,
            new.token_type,
            &new.entity_id,
            new.kind,
            1,
        )
        .await?;
        // A new token: replicas that answered "unknown" for its id learn of it.
        super::changes::announce(&txn, self.kind, record.id, record.now.saturating_mul(1000))
            .await?;
        audit::append(
            &txn,
            EventScope {
                organization_id: &new.organization_id,
                token_id: record.id,
                token_type: new.token_type,
                entity_id: &new.entity_id,
            },
            AuditAction::Create,
            &Actor {
                subject: record.creator,
                ip: record.ip,
                at: record.now,
            },
            record.detail.to_owned(),
        )
        .await?;
        txn.commit().await?;
        Ok(ApiToken {
            id: record.id.clone(),
            organization_id: new.organization_id.clone(),
            name: new.name.as_str().to_owned(),
            description: new.description.as_str().to_owned(),
            token_type: new.token_type,
            entity_id: new.entity_id.clone(),
            kind: new.kind,
            short_token: record.short_token.to_owned(),
            enabled: true,
            start_at: new.start_at,
            end_at,
            expiry_days: new.expiry.map(|e| e.days()),
            created_at: record.now,
            updated_at: record.now,
            created_by: record.creator.clone(),
            updated_by: record.creator.clone(),
            last_used_at: None,
            last_used_ip: None,
            last_rotated_at: None,
            roles: vec![new.role.clone()],
        })
    }

    /// The token `id` of organization `org`, if it exists, with its roles
    /// and subjects: one statement (see [`full_tokens`]), whose cost is the
    /// same primary-key miss whether the token is absent or in another
    /// organization.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "get_token", system = self.kind.as_str()))]
    pub async fn get_token(
        &self,
        org: &OrganizationId,
        id: &TokenId,
    ) -> Result<Option<ApiToken>, StoreError> {
        let _timer = super::DbTimer::start();
        let mut select = full_tokens();
        select
            .and_where(Expr::col((T, api_token::Column::Id)).eq(id.as_str()))
            .and_where(Expr::col((T, api_token::Column::OrganizationId)).eq(org.as_str()));
        let rows = self.read.query_all(&select).await?;
        Ok(decode_full_tokens(&rows)?.pop())
    }

    /// The row of token `id` of `org`, without its roles and subjects: one
    /// primary-key lookup, the same cost whether the token is absent, in
    /// another organization or present, so authorization can decide before
    /// anything else is read.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "find_head", system = self.kind.as_str()))]
    pub async fn find_head(
        &self,
        org: &OrganizationId,
        id: &TokenId,
    ) -> Result<Option<TokenHead>, StoreError> {
        let _timer = super::DbTimer::start();
        let row = api_token::Entity::find_by_id(id.as_str())
            .filter(api_token::Column::OrganizationId.eq(org.as_str()))
            .one(&self.read)
            .await?;
        row.map(TokenHead::from_row).transpose()
    }

    /// The token one of whose secrets has `digest`, if any: one statement
    /// (the secret's primary key, then the token's, its subjects' and its
    /// roles' index; plans at [`full_tokens`]).
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "find_by_digest", system = self.kind.as_str()))]
    pub async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<DigestMatch>, StoreError> {
        let _timer = super::DbTimer::start();
        let rows = self.read.query_all(&by_digest(digest)).await?;
        let Some(token) = decode_full_tokens(&rows)?.pop() else {
            return Ok(None);
        };
        // One secret, so every row carries the same end.
        let secret_expires_at_ms = rows
            .first()
            .map(|row| row.try_get::<Option<i64>>(SECRET_PREFIX, "expires_at_ms"))
            .transpose()?
            .flatten();
        Ok(Some(DigestMatch {
            token,
            secret_expires_at_ms,
        }))
    }

    /// Up to `limit` token ids greater than `after`, in id order: one page
    /// of the live-id set's load (a primary-key range scan).
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "token_ids_after", system = self.kind.as_str()))]
    pub async fn token_ids_after(
        &self,
        after: Option<&TokenId>,
        limit: u64,
    ) -> Result<Vec<TokenId>, StoreError> {
        let _timer = super::DbTimer::start();
        let mut query = api_token::Entity::find()
            .select_only()
            .column(api_token::Column::Id)
            .order_by_asc(api_token::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(api_token::Column::Id.gt(after.as_str()));
        }
        let ids: Vec<String> = query.into_tuple().all(&self.read).await?;
        Ok(ids.into_iter().map(TokenId::from_stored).collect())
    }

    /// The whole tokens of `rows` (roles and subjects), keeping their
    /// order: one statement, whatever their number.
    pub(super) async fn hydrate(
        &self,
        rows: Vec<api_token::Model>,
    ) -> Result<Vec<ApiToken>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = full_tokens();
        select.and_where(
            Expr::col((T, api_token::Column::Id)).is_in(rows.iter().map(|r| r.id.as_str())),
        );
        let found = self.read.query_all(&select).await?;
        let mut tokens: HashMap<String, ApiToken> = decode_full_tokens(&found)?
            .into_iter()
            .map(|token| (token.id.as_str().to_owned(), token))
            .collect();
        rows.iter()
            .map(|row| {
                tokens.remove(&row.id).ok_or_else(|| {
                    StoreError::Corrupt(format!("token {} vanished while read", row.id))
                })
            })
            .collect()
    }
}

/// Table aliases of [`full_tokens`]; each column `c` of alias `a` is
/// selected as `a_c`.
const T: &str = "t";
const CREATED_BY: &str = "cb";
const UPDATED_BY: &str = "ub";
const ROLE: &str = "r";
const SECRET: &str = "s";
const SECRET_PREFIX: &str = "s_";

/// Selects every column of `C` from `table`, as `{table}_{column}`.
fn select_prefixed<C: ColumnTrait + Iterable>(select: &mut SelectStatement, table: &'static str) {
    for column in C::iter() {
        select.expr_as(
            Expr::col((table, column)),
            Alias::new(format!("{table}_{}", column.as_str())),
        );
    }
}

/// Tokens with their creator, their updater and their roles in one
/// statement: one row per role binding (a token without roles has one row
/// with empty role columns), ordered by token then role as they are
/// listed. Filtered by the caller (`and_where`). Subjects are joined
/// outer, so that a missing one is reported as corruption, not as an
/// absent token.
///
/// Plans (`cargo run --example explain`, 100,000 tokens and 20,000
/// subjects, after ANALYZE; the bundled SQLite and PostgreSQL 15), for all three
/// uses (by digest, by id, by the ids of a List page):
/// - SQLite: `SEARCH s USING INDEX sqlite_autoindex_api_token_secrets_1
///   (digest=?)` (by digest), `SEARCH t USING INDEX
///   sqlite_autoindex_api_tokens_1 (id=?)`, `SEARCH cb` / `SEARCH ub USING
///   INDEX sqlite_autoindex_subjects_1 (id=?)`, `SEARCH r USING INDEX
///   sqlite_autoindex_api_token_roles_1 (token_id=?)`, and a temporary
///   B-tree for the role order (a token's few rows). With a handful of
///   subjects and no statistics SQLite scans `subjects` instead, which is
///   then as cheap.
/// - PostgreSQL: nested loops of index scans: `api_token_secrets_pkey`
///   (digest), `api_tokens_pkey` (or `idx_api_tokens_org_type_start` with
///   both organization and id as its condition, by id),
///   `subjects_pkey` twice, `api_token_roles_pkey` (token_id), then a sort
///   of the few rows.
fn full_tokens() -> SelectStatement {
    let mut select = Query::select();
    select.from_as(api_token::Entity, T);
    select_prefixed::<api_token::Column>(&mut select, T);
    select_prefixed::<subject::Column>(&mut select, CREATED_BY);
    select_prefixed::<subject::Column>(&mut select, UPDATED_BY);
    select_prefixed::<api_token_role::Column>(&mut select, ROLE);
    for (alias, by) in [
        (CREATED_BY, api_token::Column::CreatedBy),
        (UPDATED_BY, api_token::Column::UpdatedBy),
    ] {
        select.join_as(
            JoinType::LeftJoin,
            subject::Entity,
            alias,
            Expr::col((alias, subject::Column::Id)).equals((T, by)),
        );
    }
    select.join_as(
        JoinType::LeftJoin,
        api_token_role::Entity,
        ROLE,
        Expr::col((ROLE, api_token_role::Column::TokenId)).equals((T, api_token::Column::Id)),
    );
    select
        .order_by((T, api_token::Column::Id), Order::Asc)
        .order_by((ROLE, api_token_role::Column::EntityType), Order::Asc)
        .order_by((ROLE, api_token_role::Column::DeploymentId), Order::Asc)
        .order_by((ROLE, api_token_role::Column::EntityId), Order::Asc);
    select
}

/// [`full_tokens`] of the token one of whose secrets has `digest`, with
/// that secret's end (`s_expires_at_ms`).
fn by_digest(digest: &SecretDigest) -> SelectStatement {
    let mut select = full_tokens();
    select
        .expr_as(
            Expr::col((SECRET, api_token_secret::Column::ExpiresAtMs)),
            Alias::new(format!("{SECRET_PREFIX}expires_at_ms")),
        )
        .join_as(
            JoinType::InnerJoin,
            api_token_secret::Entity,
            SECRET,
            Expr::col((SECRET, api_token_secret::Column::TokenId))
                .equals((T, api_token::Column::Id)),
        )
        .and_where(
            Expr::col((SECRET, api_token_secret::Column::Digest)).eq(digest.as_bytes().to_vec()),
        );
    select
}

/// The statements behind a cache miss and a Get, built for `backend` (for
/// `examples/explain.rs`).
pub fn read_statements(backend: sea_orm::DbBackend) -> [(&'static str, sea_orm::Statement); 3] {
    let id = TokenId::generate(1_700_000_000_000, [0; 10]);
    let digest = crate::domain::secret::TokenSecret::from_parts(id.clone(), [0; 32]).digest();
    let mut get = full_tokens();
    get.and_where(Expr::col((T, api_token::Column::Id)).eq(id.as_str()))
        .and_where(Expr::col((T, api_token::Column::OrganizationId)).eq("org"));
    let mut page = full_tokens();
    page.and_where(
        Expr::col((T, api_token::Column::Id)).is_in((0..20u8).map(|n| {
            TokenId::generate(1_700_000_000_000, [n; 10])
                .as_str()
                .to_owned()
        })),
    );
    [
        ("find_by_digest", backend.build(&by_digest(&digest))),
        ("get_token", backend.build(&get)),
        ("list page's tokens", backend.build(&page)),
    ]
}

/// The tokens of [`full_tokens`]' rows, in their order.
fn decode_full_tokens(rows: &[QueryResult]) -> Result<Vec<ApiToken>, StoreError> {
    struct Partial {
        row: api_token::Model,
        created_by: Subject,
        updated_by: Subject,
        roles: Vec<RoleBinding>,
    }
    fn finish(p: Partial) -> Result<ApiToken, StoreError> {
        token_from_row(p.row, p.roles, p.created_by, p.updated_by)
    }
    fn subject_of(row: &QueryResult, alias: &str, id: &str) -> Result<Subject, StoreError> {
        let prefix = format!("{alias}_");
        if row.try_get::<Option<String>>(&prefix, "id")?.is_none() {
            return Err(StoreError::Corrupt(format!("subject {id:?} is missing")));
        }
        subject_from_row(subject::Model::from_query_result(row, &prefix)?)
    }
    let mut tokens = Vec::new();
    let mut current: Option<Partial> = None;
    for row in rows {
        let id: String = row.try_get("t_", "id")?;
        let same = current.as_ref().is_some_and(|p| p.row.id == id);
        if !same {
            if let Some(done) = current.take() {
                tokens.push(finish(done)?);
            }
            let token = api_token::Model::from_query_result(row, "t_")?;
            current = Some(Partial {
                created_by: subject_of(row, CREATED_BY, &token.created_by)?,
                updated_by: subject_of(row, UPDATED_BY, &token.updated_by)?,
                row: token,
                roles: Vec::new(),
            });
        }
        if row.try_get::<Option<String>>("r_", "token_id")?.is_some()
            && let Some(partial) = current.as_mut()
        {
            let role = api_token_role::Model::from_query_result(row, "r_")?;
            partial.roles.push(role_from_row(&role)?);
        }
    }
    if let Some(done) = current {
        tokens.push(finish(done)?);
    }
    Ok(tokens)
}

/// Adds `delta` to the count of (organization, type, entity, kind).
pub(super) async fn adjust_count<C: ConnectionTrait>(
    db: &C,
    org: &OrganizationId,
    token_type: TokenType,
    entity_id: &EntityId,
    kind: TokenKind,
    delta: i64,
) -> Result<(), StoreError> {
    use api_token_count::Column as C;
    api_token_count::Entity::insert(api_token_count::ActiveModel {
        organization_id: Set(org.as_str().to_owned()),
        token_type: Set(token_type.as_str().to_owned()),
        entity_id: Set(entity_id.as_str().to_owned()),
        kind: Set(kind.as_str().to_owned()),
        tokens: Set(std::cmp::max(delta, 0)),
    })
    .on_conflict(
        OnConflict::columns([C::OrganizationId, C::TokenType, C::EntityId, C::Kind])
            .value(
                C::Tokens,
                Expr::col((api_token_count::Entity, C::Tokens)).add(delta),
            )
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Inserts a subject, or refreshes its names if it exists.
pub(super) async fn upsert_subject<C: ConnectionTrait>(
    db: &C,
    subject: &Subject,
) -> Result<(), StoreError> {
    subject::Entity::insert(subject_to_row(subject))
        .on_conflict(
            OnConflict::column(subject::Column::Id)
                .update_columns([
                    subject::Column::Username,
                    subject::Column::FullName,
                    subject::Column::AvatarUrl,
                    subject::Column::ApiTokenName,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, IdenStatic};

    use super::*;

    #[test]
    fn a_miss_a_get_and_a_page_are_each_one_statement_over_the_same_joins() {
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            let [digest, get, page] = read_statements(backend);
            for (what, statement) in [&digest, &get, &page] {
                let sql = &statement.sql;
                assert_eq!(sql.matches("SELECT").count(), 1, "{what}: {sql}");
                assert!(!sql.contains(';'), "{what}: {sql}");
                for join in [
                    r#"LEFT JOIN "subjects" AS "cb" ON "cb"."id" = "t"."created_by""#,
                    r#"LEFT JOIN "subjects" AS "ub" ON "ub"."id" = "t"."updated_by""#,
                    r#"LEFT JOIN "api_token_roles" AS "r" ON "r"."token_id" = "t"."id""#,
                ] {
                    assert!(sql.contains(join), "{what} lacks {join}: {sql}");
                }
                // Rows of one token are adjacent, roles in their listed order.
                assert!(
                    sql.ends_with(
                        r#"ORDER BY "t"."id" ASC, "r"."entity_type" ASC, "r"."deployment_id" ASC, "r"."entity_id" ASC"#
                    ),
                    "{what}: {sql}"
                );
                // Every column the decoder reads is selected under its prefix.
                for column in api_token::Column::iter() {
                    assert!(
                        sql.contains(&format!(r#"AS "t_{}""#, column.as_str())),
                        "{what}: {sql}"
                    );
                }
                for column in api_token_role::Column::iter() {
                    assert!(
                        sql.contains(&format!(r#"AS "r_{}""#, column.as_str())),
                        "{what}: {sql}"
                    );
                }
            }
            let p = |n: usize| match backend {
                DbBackend::Postgres => format!("${n}"),
                _ => "?".to_owned(),
            };
            let (sql, values) = (&digest.1.sql, digest.1.values.clone().expect("values").0);
            assert!(
                sql.contains(
                    r#"INNER JOIN "api_token_secrets" AS "s" ON "s"."token_id" = "t"."id""#
                ),
                "{sql}"
            );
            assert!(
                sql.contains(&format!(r#"WHERE "s"."digest" = {}"#, p(1))),
                "{sql}"
            );
            assert!(
                sql.contains(r#""s"."expires_at_ms" AS "s_expires_at_ms""#),
                "{sql}"
            );
            assert_eq!(values.len(), 1);
            let sql = &get.1.sql;
            assert!(
                sql.contains(&format!(
                    r#"WHERE "t"."id" = {} AND "t"."organization_id" = {}"#,
                    p(1),
                    p(2)
                )),
                "{sql}"
            );
            assert!(!sql.contains("api_token_secrets"), "{sql}");
            let sql = &page.1.sql;
            assert!(sql.contains(r#"WHERE "t"."id" IN ("#), "{sql}");
            assert_eq!(page.1.values.clone().expect("values").0.len(), 20);
        }
    }
}
