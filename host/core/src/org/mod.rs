//! The organisation: organizations, divisions and registration offices, the scopes operators
//! see them through, and the use cases that manage them.

mod organization;
pub mod organizations;

pub use organization::*;

#[cfg(test)]
mod tests;
