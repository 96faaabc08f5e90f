//! Access: who calls (API keys, principals, operators), what they may do (permissions, roles,
//! separation of duties) and what they see (scopes), and the use cases that manage them.

pub mod api_key;
pub mod api_keys;
pub mod authz;
pub mod operator;
pub mod operator_import;
pub mod operators;
pub mod roles;
pub mod scope;
pub mod ui_session;
pub mod ui_sessions;

pub mod store;
#[cfg(test)]
mod tests;
