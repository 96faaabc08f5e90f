//! Challenge validation (RFC 8555 §8, RFC 8737, RFC 8738): the port the server implements with
//! its network guard (no loopback, private or link-local targets unless allowed, no redirects
//! to them, timeouts).

use async_trait::async_trait;

use super::model::{AcmeProblem, ChallengeType, Identifier};

/// Checks that `key_authorization` is served for `identifier` as challenge `kind` asks.
#[async_trait]
pub trait ChallengeValidator: Send + Sync {
    /// Ok when the identifier's holder answered the challenge; else the problem (`connection`,
    /// `dns`, `tls`, `incorrectResponse`, `unauthorized`, …) to record on it.
    async fn validate(
        &self,
        kind: ChallengeType,
        identifier: &Identifier,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), AcmeProblem>;
}
