//! Enrolment requests: what a person should receive (certificates from CSRs, a device), who
//! asked, who approved, and what was issued.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cards::device::DeviceKind;

/// Most certificates one request asks for.
pub const MAX_ITEMS: usize = 10;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved; being carried out.
    Approved,
    /// Approved and carried out: see `result`.
    Completed,
    /// Approved, but carrying it out failed: see `result.error`.
    Failed,
    /// Refused by an approver.
    Rejected,
    /// Withdrawn.
    Cancelled,
}

impl RequestStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> crate::Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            crate::CoreError::invalid(
                "invalid_status",
                format!("`{s}` is not a request status (pending, approved, completed, failed, rejected, cancelled)"),
            )
        })
    }
}

/// A certificate asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertificateItem {
    /// Profile.
    pub profile: String,
    /// PKCS#10 request, PEM.
    pub csr: String,
}

/// A device asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceItem {
    /// Kind.
    pub kind: DeviceKind,
    /// Serial number (for a virtual token, Sigil makes one when absent).
    pub serial: Option<String>,
}

/// One approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    /// The approver (operator id, or the key or plugin id when no operator).
    pub by: String,
    /// Comment.
    pub comment: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
}

/// What carrying out the request produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestResult {
    /// Issued certificates.
    pub certificates: Vec<Uuid>,
    /// Registered device.
    pub device_id: Option<Uuid>,
    /// Why it failed.
    pub error: Option<String>,
}

/// An enrolment request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolmentRequest {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// The office it belongs to (the person's).
    pub office_id: Uuid,
    /// Who it is for.
    pub person_id: Uuid,
    /// Certificates asked for.
    pub certificates: Vec<CertificateItem>,
    /// Device asked for.
    pub device: Option<DeviceItem>,
    /// State.
    pub status: RequestStatus,
    /// Who asked (operator id, or key or plugin id).
    pub requested_by: String,
    /// Approvals needed (the strictest of the profiles involved).
    pub approvals_required: u8,
    /// Whether the requester may approve.
    pub requester_may_approve: bool,
    /// Approvals so far.
    pub approvals: Vec<Approval>,
    /// Who rejected or cancelled it, and why.
    pub decision: Option<Approval>,
    /// What was issued.
    pub result: RequestResult,
    /// Free-form attributes, enriched over the request's life.
    pub metadata: serde_json::Value,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl EnrolmentRequest {
    /// The first profile asked for (what the `profile` filter matches).
    pub fn profile(&self) -> Option<&str> {
        self.certificates.first().map(|c| c.profile.as_str())
    }
}

/// Filters of the request list (times in microseconds).
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// In this state.
    pub status: Option<RequestStatus>,
    /// Of this office.
    pub office_id: Option<Uuid>,
    /// Asked by this operator (or key).
    pub requested_by: Option<String>,
    /// Whose first certificate uses this profile.
    pub profile: Option<String>,
    /// For this person.
    pub person_id: Option<Uuid>,
    /// Created at or after.
    pub from_us: Option<i64>,
    /// Created before.
    pub until_us: Option<i64>,
}
