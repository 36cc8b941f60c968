//! Write-behind usage: many recorded uses, one statement per flush.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use super::{Store, StoreError};
use crate::domain::ids::TokenId;

/// Most tokens updated by one statement (3 parameters each, far below both
/// databases' parameter limits).
const BATCH: usize = 500;

/// The latest use of one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The token used.
    pub token_id: TokenId,
    /// When (Unix seconds).
    pub at: i64,
    /// From which client address, if known.
    pub ip: Option<String>,
}

impl Store {
    /// Writes the latest use of each token in `records` (at most one record
    /// per token), never moving `last_used_at` backwards, so replicas that
    /// flush in any order converge on the newest use. Returns rows changed.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "record_usage", system = self.kind.as_str()))]
    pub async fn record_usage(&self, records: &[UsageRecord]) -> Result<u64, StoreError> {
        let _timer = super::DbTimer::start();
        let mut changed = 0;
        for chunk in records.chunks(BATCH) {
            let statement = usage_statement(self.backend(), chunk);
            changed += self.write.execute_raw(statement).await?.rows_affected();
        }
        Ok(changed)
    }
}

/// `UPDATE api_tokens SET ... FROM (VALUES ...) WHERE id matches and the
/// stored use is not newer`. Both databases name VALUES columns column1..3.
fn usage_statement(backend: DbBackend, records: &[UsageRecord]) -> Statement {
    let mut values: Vec<Value> = Vec::with_capacity(records.len() * 3);
    let mut rows = Vec::with_capacity(records.len());
    let placeholder = |n: usize| match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    for record in records {
        let n = values.len();
        rows.push(format!(
            "(CAST({} AS TEXT), CAST({} AS BIGINT), CAST({} AS TEXT))",
            placeholder(n + 1),
            placeholder(n + 2),
            placeholder(n + 3)
        ));
        values.push(record.token_id.as_str().into());
        values.push(record.at.into());
        values.push(record.ip.clone().into());
    }
    let sql = format!(
        "UPDATE api_tokens SET last_used_at = v.column2, last_used_ip = v.column3 \
         FROM (VALUES {}) AS v \
         WHERE api_tokens.id = v.column1 \
         AND (api_tokens.last_used_at IS NULL OR api_tokens.last_used_at <= v.column2)",
        rows.join(", ")
    );
    Statement::from_sql_and_values(backend, sql, values)
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, Value};

    use super::*;

    fn record(id: &str, at: i64, ip: Option<&str>) -> UsageRecord {
        UsageRecord {
            token_id: TokenId::from_stored(id.to_owned()),
            at,
            ip: ip.map(str::to_owned),
        }
    }

    #[test]
    fn one_statement_updates_every_record_and_never_moves_a_use_back() {
        let records = [record("a", 10, Some("10.0.0.1")), record("b", 20, None)];
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            let statement = usage_statement(backend, &records);
            let sql = &statement.sql;
            assert_eq!(sql.matches("UPDATE").count(), 1, "{sql}");
            assert!(!sql.contains(';'), "{sql}");
            // The guard that keeps a newer use written by another replica.
            assert!(
                sql.contains(
                    "api_tokens.last_used_at IS NULL OR api_tokens.last_used_at <= v.column2"
                ),
                "{sql}"
            );
            let placeholders = match backend {
                DbBackend::Postgres => (1..=6).map(|n| format!("${n}")).collect::<Vec<_>>(),
                _ => vec!["?".to_owned(); 6],
            };
            let mut rest = sql.as_str();
            for p in &placeholders {
                let at = rest
                    .find(p.as_str())
                    .unwrap_or_else(|| panic!("{p} in {sql}"));
                rest = &rest[at + p.len()..];
            }
            let values = statement.values.expect("values").0;
            assert_eq!(
                values,
                vec![
                    Value::from("a"),
                    Value::from(10i64),
                    Value::from(Some("10.0.0.1".to_owned())),
                    Value::from("b"),
                    Value::from(20i64),
                    Value::from(None::<String>),
                ]
            );
        }
    }
}
