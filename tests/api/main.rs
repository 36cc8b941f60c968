//! Black-box tests: the real server on a free port, a real database, a real
//! gRPC client. Every test that touches a database runs on SQLite and on
//! PostgreSQL (`both_databases!`); one module per capability.

pub mod helpers;

mod audit;
mod auth;
mod authz;
mod cli;
mod create;
mod faults;
mod get;
mod health;
mod lifecycle;
mod limits;
mod list;
mod lookup;
mod reflection;
mod replicas;
mod tls;
