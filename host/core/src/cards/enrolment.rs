//! Enrolment requests: what a person should receive (certificates from CSRs, a device), who
//! asked, who approved, and what was issued.

use crate::ErrorCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cards::device::DeviceKind;
use crate::error::{CoreError, Result};

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
    pub fn parse(s: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            CoreError::invalid(
                ErrorCode::InvalidStatus,
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

/// Who approves a request: the actor as recorded, and whether it acts as an operator (an
/// operator, or a key bound to one; not an unbound key, not a plugin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// Operator id, or key or plugin id.
    pub id: String,
    /// Acting as an operator.
    pub is_operator: bool,
}

impl EnrolmentRequest {
    /// The first profile asked for (what the `profile` filter matches).
    pub fn profile(&self) -> Option<&str> {
        self.certificates.first().map(|c| c.profile.as_str())
    }

    /// Refuses (409 `not_pending`) unless the request still awaits a decision.
    pub fn ensure_pending(&self) -> Result<()> {
        if self.status != RequestStatus::Pending {
            return Err(CoreError::conflict(
                ErrorCode::NotPending,
                format!("the request is {}", self.status.as_str()),
            ));
        }
        Ok(())
    }

    /// The request with `by`'s approval added, and whether that completes the quorum (the
    /// request is then `approved`). Dual control and separation of duties count people: under
    /// such a profile only an operator approves, so two keys of one administrator are one
    /// approver; the requester approves only where the profile allows it; nobody approves twice.
    pub fn approve(
        &self,
        by: &Approver,
        comment: Option<String>,
        now: OffsetDateTime,
    ) -> Result<(Self, bool)> {
        self.ensure_pending()?;
        let counts_people = self.approvals_required > 1 || !self.requester_may_approve;
        if counts_people && !by.is_operator {
            return Err(CoreError::Forbidden {
                code: ErrorCode::ApproverNotAnOperator,
                detail: "this request needs approvals from distinct operators: approve with a \
                         key bound to an operator, or as an operator"
                    .into(),
            });
        }
        if !self.requester_may_approve && by.id == self.requested_by {
            return Err(CoreError::Forbidden {
                code: ErrorCode::SeparationOfDuties,
                detail: "the requester cannot approve their own request".into(),
            });
        }
        if self.approvals.iter().any(|a| a.by == by.id) {
            return Err(CoreError::Forbidden {
                code: ErrorCode::SeparationOfDuties,
                detail: "each approval must come from a different operator".into(),
            });
        }
        let mut r = self.clone();
        r.approvals.push(Approval { by: by.id.clone(), comment, at: now });
        r.updated_at = now;
        let done = r.approvals.len() >= usize::from(r.approvals_required);
        if done {
            r.status = RequestStatus::Approved;
        }
        Ok((r, done))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(required: u8, requester_may_approve: bool) -> EnrolmentRequest {
        let now = OffsetDateTime::now_utc();
        EnrolmentRequest {
            id: Uuid::now_v7(),
            office_id: Uuid::now_v7(),
            person_id: Uuid::now_v7(),
            certificates: vec![],
            device: None,
            status: RequestStatus::Pending,
            requested_by: "op-ana".into(),
            approvals_required: required,
            requester_may_approve,
            approvals: vec![],
            decision: None,
            result: RequestResult { certificates: vec![], device_id: None, error: None },
            metadata: serde_json::json!({}),
            created_at: now,
            updated_at: now,
        }
    }

    fn operator(id: &str) -> Approver {
        Approver { id: id.into(), is_operator: true }
    }

    fn refusal(r: Result<(EnrolmentRequest, bool)>) -> &'static str {
        match r {
            Err(CoreError::Forbidden { code, .. } | CoreError::Conflict { code, .. }) => {
                code.as_str()
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn dual_control_needs_two_distinct_operators_other_than_the_requester() {
        let now = OffsetDateTime::now_utc();
        let r = request(2, false);
        assert_eq!(refusal(r.approve(&operator("op-ana"), None, now)), "separation_of_duties");
        let key = Approver { id: "key-1".into(), is_operator: false };
        assert_eq!(refusal(r.approve(&key, None, now)), "approver_not_an_operator");

        let (one, done) = r.approve(&operator("op-bob"), Some("ok".into()), now).unwrap();
        assert!(!done);
        assert_eq!(one.status, RequestStatus::Pending);
        assert_eq!(refusal(one.approve(&operator("op-bob"), None, now)), "separation_of_duties");

        let (two, done) = one.approve(&operator("op-eve"), None, now).unwrap();
        assert!(done);
        assert_eq!(two.status, RequestStatus::Approved);
        let by: Vec<&str> = two.approvals.iter().map(|a| a.by.as_str()).collect();
        assert_eq!(by, ["op-bob", "op-eve"]);
        // Once decided, nobody approves it again.
        assert_eq!(refusal(two.approve(&operator("op-dan"), None, now)), "not_pending");
    }

    #[test]
    fn a_single_approval_profile_lets_any_approver_including_the_requester_decide() {
        let now = OffsetDateTime::now_utc();
        let r = request(1, true);
        let key = Approver { id: "key-1".into(), is_operator: false };
        assert!(r.approve(&key, None, now).unwrap().1, "an unbound key counts when people do not");
        let (by_requester, done) = r.approve(&operator("op-ana"), None, now).unwrap();
        assert!(done);
        assert_eq!(by_requester.status, RequestStatus::Approved);
        // Separation of duties alone (one approval, not the requester) still counts people.
        let sod = request(1, false);
        assert_eq!(refusal(sod.approve(&key, None, now)), "approver_not_an_operator");
        assert_eq!(refusal(sod.approve(&operator("op-ana"), None, now)), "separation_of_duties");
        assert!(sod.approve(&operator("op-bob"), None, now).unwrap().1);
    }
}
