//! Certificates: the certificate model and its lifecycle, profiles and their conformance rules,
//! CA back ends (the `Issuer` port), and the use cases (issue, renew, revoke, CRL and OCSP).

pub mod ca;
pub mod cas;
mod certificate;
pub mod certificates;
pub mod profile;
pub mod profiles;
pub mod store;

pub use certificate::*;
