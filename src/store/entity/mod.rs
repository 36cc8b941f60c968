//! sea-orm entities: one per table. Enums are stored as the contract's
//! strings and timestamps as Unix seconds, so both databases hold the same
//! values and sort them the same way.

pub mod api_token;
pub mod api_token_count;
pub mod api_token_role;
pub mod api_token_secret;
pub mod audit_event;
pub mod subject;
