//! Black-box tests: the real server on a free port, a real database, a real
//! gRPC client. Every test that touches a database runs on SQLite and on
//! PostgreSQL (`both_databases!`); one module per capability.

pub mod helpers;
pub mod process;

mod audit;
mod auth;
mod authn;
mod authz;
mod cli;
mod crash;
mod create;
mod ext_authz;
mod failures;
mod faults;
mod feed;
mod get;
mod health;
mod hostile;
mod lifecycle;
mod limits;
mod list;
mod live_ids;
mod lookup;
mod reflection;
mod replicas;
mod security;
mod shutdown;
mod stall;
mod statements;
mod tls;
