//! Remote signing: signers, signing credentials and their keys, the CSC protocol (tokens, SADs,
//! signHash) and CSC provider configuration.

pub mod cache;
pub mod credential;
pub mod csc;
pub mod key_store;
pub mod providers;
pub mod signers;

pub mod store;
#[cfg(test)]
mod tests;
