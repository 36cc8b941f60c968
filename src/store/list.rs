//! ListApiTokens: one statement for the page, one for the count.
//!
//! Every filter is a condition on the organization's rows; role filters are
//! `id IN (SELECT token_id FROM api_token_roles WHERE ...)` subqueries
//! answered from the roles' (organization, entity type, entity) and
//! (organization, deployment) indexes. Ordering walks the (organization,
//! sort key, id) indexes. See BENCHMARKS.md for the plans on both databases.

use sea_orm::sea_query::{Expr, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, DbBackend, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select, Statement,
};

use super::entity::{api_token, api_token_count, api_token_role};
use super::{Store, StoreError};
use crate::domain::ids::{EntityId, OrganizationId};
use crate::domain::list::{Direction, ListFilter, ListQuery, SortField};
use crate::domain::permission::Visibility;
use crate::domain::role::EntityType;
use crate::domain::token::{ApiToken, TokenType};

/// The two statements of a List, for EXPLAIN.
#[derive(Debug, Clone)]
pub struct ListStatements {
    /// `SELECT COUNT(*) ...`: the total.
    pub count: Statement,
    /// The page: ordered, offset, limited.
    pub page: Statement,
}

impl Store {
    /// One page of the tokens of `org` matching `query` that `visibility`
    /// lets the caller see, and how many match in all.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "list_tokens", system = self.kind.as_str()))]
    pub async fn list_tokens(
        &self,
        org: &OrganizationId,
        query: &ListQuery,
        visibility: &Visibility,
    ) -> Result<(Vec<ApiToken>, u64), StoreError> {
        let _timer = super::DbTimer::start();
        let matching = matching(org, &query.filter, visibility);
        let total: i64 = match counted(org, &query.filter, visibility) {
            Some(counts) => counts.into_tuple().one(&self.read).await?,
            None => count(matching.clone()).into_tuple().one(&self.read).await?,
        }
        .unwrap_or(0);
        let total = u64::try_from(total).unwrap_or(0);
        let page = query.page;
        if page.limit() == 0 || u64::from(page.offset()) >= total {
            return Ok((Vec::new(), total));
        }
        let rows = ordered_page(matching, query).all(&self.read).await?;
        Ok((self.hydrate(rows).await?, total))
    }
}

/// The statements [`Store::list_tokens`] runs, built for `backend`.
pub fn list_statements(
    backend: DbBackend,
    org: &OrganizationId,
    query: &ListQuery,
    visibility: &Visibility,
) -> ListStatements {
    let matching = matching(org, &query.filter, visibility);
    let count = match counted(org, &query.filter, visibility) {
        Some(counts) => counts.build(backend),
        None => count(matching.clone()).build(backend),
    };
    ListStatements {
        count,
        page: ordered_page(matching, query).build(backend),
    }
}

/// The total from `api_token_counts`, when the filter involves no role: a
/// sum over at most (types x entities x kinds) rows of the organization,
/// whatever its number of tokens. `None` when a role filter is given; those
/// are counted over their (already narrow) role matches.
fn counted(
    org: &OrganizationId,
    filter: &ListFilter,
    visibility: &Visibility,
) -> Option<Select<api_token_count::Entity>> {
    let by_role = filter.workspace_id.is_some()
        || filter.deployment_id.is_some()
        || filter.dag_id.is_some()
        || !filter.dag_tags.is_empty();
    if by_role {
        return None;
    }
    use api_token_count::Column as C;
    let mut select = api_token_count::Entity::find()
        .select_only()
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(tokens), 0) AS BIGINT)"),
            "total",
        )
        .filter(C::OrganizationId.eq(org.as_str()))
        .filter(visibility_condition(C::TokenType, C::EntityId, visibility));
    if filter.only_organization_tokens {
        select = select.filter(C::TokenType.eq(TokenType::Organization.as_str()));
    }
    if let Some(kind) = filter.kind {
        select = select.filter(C::Kind.eq(kind.as_str()));
    }
    Some(select)
}

fn matching(
    org: &OrganizationId,
    filter: &ListFilter,
    visibility: &Visibility,
) -> Select<api_token::Entity> {
    api_token::Entity::find()
        .filter(list_condition(org, filter))
        .filter(visibility_condition(
            api_token::Column::TokenType,
            api_token::Column::EntityId,
            visibility,
        ))
}

fn count(matching: Select<api_token::Entity>) -> Select<api_token::Entity> {
    matching
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "total")
}

/// The page in the requested order. Ties are broken by id in the direction
/// of the last criterion, so a single-criterion sort is one walk of its
/// (organization, key, id) index, forwards or backwards.
fn ordered_page(
    matching: Select<api_token::Entity>,
    query: &ListQuery,
) -> Select<api_token::Entity> {
    let order = |direction| match direction {
        Direction::Asc => Order::Asc,
        Direction::Desc => Order::Desc,
    };
    let mut ordered = matching;
    for spec in query.sorts.specs() {
        ordered = ordered.order_by(sort_column(spec.field), order(spec.direction));
    }
    let tie_break = query
        .sorts
        .specs()
        .last()
        .map_or(Order::Asc, |spec| order(spec.direction));
    ordered
        .order_by(api_token::Column::Id, tie_break)
        .offset(u64::from(query.page.offset()))
        .limit(u64::from(query.page.limit()))
}

fn sort_column(field: SortField) -> api_token::Column {
    match field {
        SortField::Name => api_token::Column::Name,
        SortField::Description => api_token::Column::Description,
        SortField::CreatedAt => api_token::Column::CreatedAt,
        SortField::UpdatedAt => api_token::Column::UpdatedAt,
        SortField::TokenStartAt => api_token::Column::StartAt,
    }
}

/// The WHERE clause of a List: the organization and every filter, ANDed.
fn list_condition(org: &OrganizationId, filter: &ListFilter) -> Condition {
    use api_token_role::Column as R;
    let mut cond = Condition::all().add(api_token::Column::OrganizationId.eq(org.as_str()));
    if filter.only_organization_tokens {
        cond = cond.add(api_token::Column::TokenType.eq(TokenType::Organization.as_str()));
    }
    if let Some(kind) = filter.kind {
        cond = cond.add(api_token::Column::Kind.eq(kind.as_str()));
    }
    if let Some(ws) = &filter.workspace_id {
        cond = cond.add(with_binding(
            org,
            binding_on(EntityType::Workspace).add(R::EntityId.eq(ws.as_str())),
        ));
    }
    if let Some(dep) = &filter.deployment_id {
        let on_deployment = binding_on(EntityType::Deployment).add(R::EntityId.eq(dep.as_str()));
        let inside_deployment = Condition::all()
            .add(R::EntityType.is_in([EntityType::Dag.as_str(), EntityType::DagTag.as_str()]))
            .add(R::DeploymentId.eq(dep.as_str()));
        cond = cond.add(with_binding(
            org,
            Condition::any().add(on_deployment).add(inside_deployment),
        ));
    }
    if let Some(dag) = &filter.dag_id {
        cond = cond.add(with_binding(
            org,
            binding_on(EntityType::Dag).add(R::EntityId.eq(dag.as_str())),
        ));
    }
    if !filter.dag_tags.is_empty() {
        let tags = filter.dag_tags.iter().map(|t| t.as_str().to_owned());
        cond = cond.add(with_binding(
            org,
            binding_on(EntityType::DagTag).add(R::EntityId.is_in(tags)),
        ));
    }
    cond
}

/// Only the tokens a caller may read (see `docs/authorization.md`), on a
/// table whose token type and entity are `type_column` and `entity_column`.
fn visibility_condition<C: ColumnTrait>(
    type_column: C,
    entity_column: C,
    visibility: &Visibility,
) -> Condition {
    match visibility {
        Visibility::All => Condition::all(),
        Visibility::Scoped {
            workspaces,
            deployments,
        } => {
            let in_scope = |token_type: TokenType, ids: &[EntityId]| {
                Condition::all()
                    .add(type_column.eq(token_type.as_str()))
                    .add(entity_column.is_in(ids.iter().map(|i| i.as_str().to_owned())))
            };
            Condition::any()
                .add(in_scope(TokenType::Workspace, workspaces))
                .add(in_scope(TokenType::Deployment, deployments))
        }
    }
}

fn binding_on(entity_type: EntityType) -> Condition {
    Condition::all().add(api_token_role::Column::EntityType.eq(entity_type.as_str()))
}

/// `id IN (SELECT token_id FROM api_token_roles WHERE organization_id = org AND cond)`.
fn with_binding(org: &OrganizationId, cond: Condition) -> Condition {
    let subquery: SelectStatement = Query::select()
        .column(api_token_role::Column::TokenId)
        .from(api_token_role::Entity)
        .and_where(api_token_role::Column::OrganizationId.eq(org.as_str()))
        .cond_where(cond)
        .to_owned();
    Condition::all().add(api_token::Column::Id.in_subquery(subquery))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::list::{ListInput, ListQuery};

    fn query(input: ListInput<'_>) -> ListQuery {
        ListQuery::parse(&input).unwrap()
    }

    fn input<'a>(sorts: &'a [String], tags: &'a [String]) -> ListInput<'a> {
        ListInput {
            workspace_id: "",
            deployment_id: "",
            dag_id: "",
            dag_tags: tags,
            only_organization_tokens: false,
            kind: None,
            offset: 0,
            limit: Some(20),
            sorts,
        }
    }

    fn org() -> OrganizationId {
        OrganizationId::parse("o", "org-1").unwrap()
    }

    fn sql(q: &ListQuery, visibility: &Visibility) -> (String, String) {
        let s = list_statements(DbBackend::Sqlite, &org(), q, visibility);
        (s.count.to_string(), s.page.to_string())
    }

    #[test]
    fn counts_come_from_the_count_table_unless_a_role_filter_is_given() {
        let (count, _) = sql(&query(input(&[], &[])), &Visibility::All);
        assert!(count.contains("api_token_counts"), "{count}");
        let tags = ["nightly".to_owned()];
        for q in [
            query(ListInput {
                workspace_id: "ws-1",
                ..input(&[], &[])
            }),
            query(ListInput {
                deployment_id: "dep-1",
                ..input(&[], &[])
            }),
            query(ListInput {
                dag_id: "etl",
                ..input(&[], &[])
            }),
            query(input(&[], &tags)),
        ] {
            let (count, _) = sql(&q, &Visibility::All);
            assert!(!count.contains("api_token_counts"), "{count}");
            assert!(count.contains("api_token_roles"), "{count}");
            assert!(
                count.contains("'org-1'"),
                "the role subquery names the organization: {count}"
            );
        }
    }

    #[test]
    fn scoped_visibility_restricts_both_count_and_page() {
        let visibility = Visibility::Scoped {
            workspaces: vec![EntityId::from_stored("ws-1".into())],
            deployments: vec![],
        };
        let tags = ["nightly".to_owned()];
        for q in [query(input(&[], &[])), query(input(&[], &tags))] {
            let (count, page) = sql(&q, &visibility);
            for statement in [&count, &page] {
                assert!(statement.contains("'WORKSPACE'"), "{statement}");
                assert!(statement.contains("'ws-1'"), "{statement}");
                assert!(statement.contains("'DEPLOYMENT'"), "{statement}");
            }
        }
        let (all_count, all_page) = sql(&query(input(&[], &[])), &Visibility::All);
        assert!(!all_count.contains("'WORKSPACE'"), "{all_count}");
        assert!(!all_page.contains("'WORKSPACE'"), "{all_page}");
    }

    #[test]
    fn ties_break_by_id_in_the_direction_of_the_last_sort() {
        let desc = ["name:asc".to_owned(), "createdAt:desc".to_owned()];
        let (_, page) = sql(&query(input(&desc, &[])), &Visibility::All);
        let order = &page[page.find("ORDER BY").unwrap()..];
        assert!(
            order.starts_with(r#"ORDER BY "api_tokens"."name" ASC, "api_tokens"."created_at" DESC, "api_tokens"."id" DESC"#),
            "{order}"
        );
        let (_, default) = sql(&query(input(&[], &[])), &Visibility::All);
        assert!(
            default.contains(r#"ORDER BY "api_tokens"."id" ASC LIMIT 20 OFFSET 0"#),
            "{default}"
        );
    }
}
