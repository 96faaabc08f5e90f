//! ACME's errors: a problem document with an ACME error type and an HTTP status, or one of
//! Sigil's own errors (which the HTTP layer words as ACME problems).

use super::model::AcmeProblem;
use crate::{CoreError, ErrorCode, StoreError};

/// What an ACME use case fails with.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// A protocol error: the status to answer and the problem document.
    #[error("{}: {}", .1.kind, .1.detail)]
    Problem(u16, AcmeProblem),
    /// One of Sigil's errors (storage, issuance, a dependency).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<StoreError> for AcmeError {
    fn from(e: StoreError) -> Self {
        Self::Core(e.into())
    }
}

macro_rules! problems {
    ($($(#[doc = $doc:literal])* $fn:ident => ($status:literal, $kind:literal);)*) => {
        impl AcmeError {
            $($(#[doc = $doc])*
            pub fn $fn(detail: impl Into<String>) -> Self {
                Self::Problem($status, AcmeProblem::new($kind, detail))
            })*
        }
    };
}

problems! {
    /// `malformed` (400).
    malformed => (400, "malformed");
    /// `unauthorized` (403).
    unauthorized => (403, "unauthorized");
    /// `badNonce` (400): the client retries with the fresh nonce of the answer.
    bad_nonce => (400, "badNonce");
    /// `accountDoesNotExist` (400).
    account_does_not_exist => (400, "accountDoesNotExist");
    /// `badPublicKey` (400).
    bad_public_key => (400, "badPublicKey");
    /// `rejectedIdentifier` (400).
    rejected_identifier => (400, "rejectedIdentifier");
    /// `unsupportedIdentifier` (400).
    unsupported_identifier => (400, "unsupportedIdentifier");
    /// `orderNotReady` (403).
    order_not_ready => (403, "orderNotReady");
    /// `badCSR` (400).
    bad_csr => (400, "badCSR");
    /// `alreadyRevoked` (400).
    already_revoked => (400, "alreadyRevoked");
    /// `badRevocationReason` (400).
    bad_revocation_reason => (400, "badRevocationReason");
    /// `externalAccountRequired` (400).
    external_account_required => (400, "externalAccountRequired");
    /// `invalidContact` (400).
    invalid_contact => (400, "invalidContact");
    /// `unsupportedContact` (400).
    unsupported_contact => (400, "unsupportedContact");
    /// `conflict` (409): a key change to a key another account holds.
    conflict => (409, "conflict");
}

impl AcmeError {
    /// `badSignatureAlgorithm` (400), naming the accepted algorithms.
    pub fn bad_signature_algorithm(alg: &str) -> Self {
        Self::Problem(
            400,
            AcmeProblem::new(
                "badSignatureAlgorithm",
                format!(
                    "algorithm `{alg}` is not accepted; use one of {}",
                    super::jws::ALGORITHMS.join(", ")
                ),
            ),
        )
    }

    /// A 404 for an object that does not exist or is not the account's (the same answer, so
    /// that ids of other accounts' objects cannot be probed).
    pub fn not_found(what: &str) -> Self {
        Self::Problem(404, AcmeProblem::new("malformed", format!("no such {what}")))
    }

    /// The ACME error type (for tests and logs): `serverInternal` for Sigil's own errors.
    pub fn kind(&self) -> &str {
        match self {
            Self::Problem(_, p) => &p.kind,
            Self::Core(e) => core_kind(e),
        }
    }
}

/// The ACME error type of one of Sigil's errors.
pub fn core_kind(e: &CoreError) -> &'static str {
    match e {
        CoreError::Invalid { code, .. } => match code {
            ErrorCode::InvalidCsr | ErrorCode::CsrSignatureInvalid => "badCSR",
            ErrorCode::KeyNotAllowed => "badPublicKey",
            ErrorCode::SanNotAllowed
            | ErrorCode::SubjectNotAllowed
            | ErrorCode::ValidationFailed => "rejectedIdentifier",
            _ => "malformed",
        },
        CoreError::NotFound { .. } => "malformed",
        CoreError::Conflict { .. } => "malformed",
        CoreError::Unauthenticated(_) | CoreError::Forbidden { .. } => "unauthorized",
        CoreError::RateLimited { .. } | CoreError::Busy { .. } => "rateLimited",
        CoreError::Dependency { .. } | CoreError::Storage(_) | CoreError::Internal(_) => {
            "serverInternal"
        }
    }
}
