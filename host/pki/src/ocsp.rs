//! OCSP (RFC 6960): request parsing, CertID matching against Sigil's CAs, and responses signed
//! by the CA key itself (no delegated responder certificate).

use sigil_core::ErrorCode;
use std::sync::Arc;

use der::asn1::{BitString, GeneralizedTime, OctetString};
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use sigil_core::certs::RevocationReason;
use sigil_core::certs::ca::{Issuer, Ocsp, OcspQuery, OcspStatus};
use sigil_core::{CoreError, Result};
use time::OffsetDateTime;
use x509_cert::Certificate as X509;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId,
    ResponseData, RevokedInfo, SingleResponse, Version,
};

const SHA1: &str = "1.3.14.3.2.26";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const NONCE: &str = "1.3.6.1.5.5.7.48.1.2";

fn bad(m: impl std::fmt::Display) -> CoreError {
    CoreError::invalid(ErrorCode::InvalidOcspRequest, m.to_string())
}

/// The OCSP codec: responses valid (nextUpdate) for `validity`.
#[derive(Debug, Clone, Copy)]
pub struct OcspCodec {
    validity: time::Duration,
}

impl OcspCodec {
    /// Responses that say they may be relied on for `validity`.
    pub fn new(validity: time::Duration) -> Self {
        Self { validity }
    }
}

impl Default for OcspCodec {
    fn default() -> Self {
        Self::new(time::Duration::hours(1))
    }
}

struct CaHashes {
    name_der: Vec<u8>,
    key_bits: Vec<u8>,
}

fn ca_hashes(cert_der: &[u8]) -> Option<CaHashes> {
    let c = X509::from_der(cert_der).ok()?;
    Some(CaHashes {
        name_der: c.tbs_certificate.subject.to_der().ok()?,
        key_bits: c.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes().to_vec(),
    })
}

/// Most CertIDs answered in one OCSP request; more is a malformedRequest.
pub const MAX_CERT_IDS: usize = 16;

fn digest(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    match alg {
        SHA1 => Some(Sha1::digest(data).to_vec()),
        SHA256 => Some(Sha256::digest(data).to_vec()),
        _ => None,
    }
}

fn gtime(t: OffsetDateTime) -> Result<OcspGeneralizedTime> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| CoreError::Internal("time before 1970".into()))?;
    let g = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok(OcspGeneralizedTime(g))
}

impl Ocsp for OcspCodec {
    fn parse(&self, der: &[u8], cas: &[Arc<dyn Issuer>]) -> Result<OcspQuery> {
        let req = OcspRequest::from_der(der).map_err(bad)?;
        // Each CertID costs a lookup and a signed answer; an anonymous caller gets a few.
        if req.tbs_request.request_list.len() > MAX_CERT_IDS {
            return Err(bad("too many certificates in one request"));
        }
        let hashes: Vec<Option<CaHashes>> =
            cas.iter().map(|c| ca_hashes(c.ca_certificate())).collect();
        let mut items = Vec::new();
        let mut cert_ids = Vec::new();
        for r in &req.tbs_request.request_list {
            let id = &r.req_cert;
            cert_ids.push(id.to_der().map_err(bad)?);
            let alg = id.hash_algorithm.oid.to_string();
            let matched = hashes.iter().position(|h| {
                h.as_ref().is_some_and(|h| {
                    digest(&alg, &h.name_der).as_deref() == Some(id.issuer_name_hash.as_bytes())
                        && digest(&alg, &h.key_bits).as_deref()
                            == Some(id.issuer_key_hash.as_bytes())
                })
            });
            let serial =
                hex::encode(id.serial_number.as_bytes()).trim_start_matches('0').to_owned();
            items.push((matched, serial));
        }
        if items.is_empty() {
            return Err(bad("the request asks about no certificate"));
        }
        Ok(OcspQuery { der: der.to_vec(), items, cert_ids, echo_nonce: true })
    }

    fn respond(
        &self,
        query: &OcspQuery,
        statuses: &[OcspStatus],
        signer: &dyn Issuer,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        let req = OcspRequest::from_der(&query.der).map_err(bad)?;
        let this_update = gtime(now)?;
        let next_update = Some(gtime(now + self.validity)?);
        let mut responses = Vec::new();
        for (r, status) in req.tbs_request.request_list.iter().zip(statuses) {
            let cert_status = match status {
                OcspStatus::Good => CertStatus::good(),
                OcspStatus::Unknown => CertStatus::unknown(),
                OcspStatus::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                    revocation_time: gtime(*at)?,
                    // As in the CRL: an unspecified reason is left out (RFC 5280 §5.3.1).
                    revocation_reason: (*reason != RevocationReason::Unspecified)
                        .then(|| crl_reason(reason.code())),
                }),
            };
            responses.push(SingleResponse {
                cert_id: r.req_cert.clone(),
                cert_status,
                this_update,
                next_update,
                single_extensions: None,
            });
        }
        // Echo the nonce, so that clients that sent one can check freshness.
        let nonce = req
            .tbs_request
            .request_extensions
            .as_ref()
            .and_then(|exts| exts.iter().find(|e| e.extn_id.to_string() == NONCE).cloned())
            .filter(|_| query.echo_nonce);
        let key_hash = {
            let c = X509::from_der(signer.ca_certificate())
                .map_err(|e| CoreError::Internal(e.to_string()))?;
            Sha1::digest(c.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes())
                .to_vec()
        };
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new(key_hash).map_err(|e| CoreError::Internal(e.to_string()))?,
            ),
            produced_at: this_update,
            responses,
            response_extensions: nonce.map(|n| vec![n]),
        };
        let tbs_der = tbs.to_der().map_err(|e| CoreError::Internal(e.to_string()))?;
        let publisher = signer.status().ok_or_else(|| {
            CoreError::Internal("OCSP for a CA whose status Sigil does not publish".into())
        })?;
        let (signature, alg_der) = publisher.sign(&tbs_der)?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: AlgorithmIdentifierOwned::from_der(&alg_der)
                .map_err(|e| CoreError::Internal(e.to_string()))?,
            signature: BitString::from_bytes(&signature)
                .map_err(|e| CoreError::Internal(e.to_string()))?,
            certs: None,
        };
        OcspResponse::successful(basic)
            .and_then(|r| r.to_der())
            .map_err(|e| CoreError::Internal(e.to_string()))
    }

    fn validity(&self) -> time::Duration {
        self.validity
    }

    fn malformed(&self) -> Vec<u8> {
        OcspResponse::malformed_request().to_der().unwrap_or_default()
    }

    fn unauthorized(&self) -> Vec<u8> {
        OcspResponse::unauthorized().to_der().unwrap_or_default()
    }
}

fn crl_reason(code: u8) -> CrlReason {
    match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        8 => CrlReason::RemoveFromCRL,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => CrlReason::Unspecified,
    }
}
