//! People: person records with extended attributes validated against custom field
//! definitions, their use cases, and completion from identity sources.

pub mod directory;
pub mod identity;
mod person;

pub use person::*;

#[cfg(test)]
mod tests;
