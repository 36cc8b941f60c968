//! Prints the query plans of the List statement shapes, and of the single
//! statements behind a credential-cache miss and a Get, on a database:
//! `cargo run --release --example explain -- --database-url URL --org org-bench`
//! (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN (ANALYZE, BUFFERS)).

use clap::Parser;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tokend::domain::ids::OrganizationId;
use tokend::domain::list::{ListInput, ListQuery};
use tokend::domain::permission::Visibility;
use tokend::domain::token::TokenKind;
use tokend::store::{list_statements, read_statements};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, env = "TOKEND_DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value = "org-bench")]
    org: String,
}

/// The shapes measured in BENCHMARKS.md: one filter and one sort each.
pub fn shapes() -> Vec<(&'static str, ListInput<'static>)> {
    fn sorts(s: &'static str) -> &'static [String] {
        Box::leak(vec![s.to_owned()].into_boxed_slice())
    }
    let tag: &'static [String] = Box::leak(vec!["tag-7".to_owned()].into_boxed_slice());
    vec![
        (
            "no filter, name:asc",
            ListInput {
                sorts: sorts("name:asc"),
                ..ListInput::default()
            },
        ),
        (
            "workspaceId, name:asc",
            ListInput {
                workspace_id: "ws-7",
                sorts: sorts("name:asc"),
                ..ListInput::default()
            },
        ),
        (
            "deploymentId, createdAt:desc",
            ListInput {
                deployment_id: "dep-7",
                sorts: sorts("createdAt:desc"),
                ..ListInput::default()
            },
        ),
        (
            "dagId, updatedAt:desc",
            ListInput {
                dag_id: "dag-7",
                sorts: sorts("updatedAt:desc"),
                ..ListInput::default()
            },
        ),
        (
            "dagTags, tokenStartAt:asc",
            ListInput {
                dag_tags: tag,
                sorts: sorts("tokenStartAt:asc"),
                ..ListInput::default()
            },
        ),
        (
            "includeOnlyOrganizationTokens, description:asc",
            ListInput {
                only_organization_tokens: true,
                sorts: sorts("description:asc"),
                ..ListInput::default()
            },
        ),
        (
            "kind=DIRECT_ACCESS, createdAt:desc",
            ListInput {
                kind: Some(TokenKind::DirectAccess),
                sorts: sorts("createdAt:desc"),
                ..ListInput::default()
            },
        ),
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let db = Database::connect(args.database_url.as_str()).await?;
    let backend = db.get_database_backend();
    let org = OrganizationId::parse("org", &args.org)?;
    let mut explained: Vec<(String, Vec<(&str, Statement)>)> = Vec::new();
    for (name, input) in shapes() {
        let query = ListQuery::parse(&input).map_err(|v| format!("{v:?}"))?;
        let statements = list_statements(backend, &org, &query, &Visibility::All);
        explained.push((
            name.to_owned(),
            vec![("count", statements.count), ("page", statements.page)],
        ));
    }
    explained.push(("reads".to_owned(), read_statements(backend).into()));
    for (name, statements) in explained {
        println!("### {name}");
        for (what, statement) in statements {
            let prefix = match backend {
                DbBackend::Postgres => "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) ",
                _ => "EXPLAIN QUERY PLAN ",
            };
            let explain = Statement {
                sql: format!("{prefix}{}", statement.sql),
                ..statement.clone()
            };
            println!("{what}: {}", statement.sql);
            for row in db.query_all_raw(explain).await? {
                let line: String = match backend {
                    DbBackend::Postgres => row.try_get("", "QUERY PLAN")?,
                    _ => row.try_get("", "detail")?,
                };
                println!("    {line}");
            }
        }
    }
    Ok(())
}
