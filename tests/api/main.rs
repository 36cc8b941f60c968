//! Black-box tests: the real server on a free port, a real database, a real
//! gRPC client. Every test runs on SQLite and on PostgreSQL.

pub mod helpers;

mod auth;
mod cli;
mod create;
mod get;
mod health;
mod list;
mod lookup;
mod reflection;
