//! Devices (smart cards, USB tokens, virtual tokens): a lifecycle state machine whose
//! transitions cascade to the device's certificates, a per-device history, and production
//! metadata.

use crate::ErrorCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::certs::CertChange;
use crate::certs::RevocationReason;
use crate::error::{CoreError, Result};

/// Most certificates on one device.
pub const MAX_CERTIFICATES: usize = 32;

/// What kind of device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A smart card.
    SmartCard,
    /// A USB token.
    UsbToken,
    /// A virtual (software or cloud) token.
    VirtualToken,
}

impl DeviceKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SmartCard => "smart_card",
            Self::UsbToken => "usb_token",
            Self::VirtualToken => "virtual_token",
        }
    }
}

/// Lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Known to Sigil, not yet handed out.
    Registered,
    /// In use.
    Active,
    /// Temporarily blocked; its certificates are on hold.
    Suspended,
    /// Reported lost; its certificates are on hold until it is found or revoked.
    Lost,
    /// Reported damaged; its certificates are revoked.
    Damaged,
    /// Withdrawn; its certificates are revoked.
    Revoked,
    /// Past its end of life.
    Expired,
    /// Retired for good (final).
    Terminated,
}

impl DeviceStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Lost => "lost",
            Self::Damaged => "damaged",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Terminated => "terminated",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            CoreError::invalid(
                ErrorCode::InvalidStatus,
                format!("`{s}` is not a device status (registered, active, suspended, lost, damaged, revoked, expired, terminated)"),
            )
        })
    }

    /// The states reachable from this one.
    pub fn next(self) -> &'static [DeviceStatus] {
        use DeviceStatus::*;
        match self {
            Registered => &[Active, Lost, Damaged, Terminated],
            Active => &[Suspended, Lost, Damaged, Revoked, Expired, Terminated],
            Suspended => &[Active, Lost, Damaged, Revoked, Expired, Terminated],
            Lost => &[Active, Revoked, Terminated],
            Damaged => &[Revoked, Terminated],
            Revoked => &[Terminated],
            Expired => &[Terminated],
            Terminated => &[],
        }
    }

    /// The audit action of a move to this state.
    pub fn audit_action(self) -> crate::audit::AuditAction {
        use crate::audit::AuditAction as A;
        match self {
            Self::Registered => A::DeviceRegistered,
            Self::Active => A::DeviceActive,
            Self::Suspended => A::DeviceSuspended,
            Self::Lost => A::DeviceLost,
            Self::Damaged => A::DeviceDamaged,
            Self::Revoked => A::DeviceRevoked,
            Self::Expired => A::DeviceExpired,
            Self::Terminated => A::DeviceTerminated,
        }
    }

    /// The lifecycle event announcing a move to this state.
    pub fn event_kind(self) -> crate::events::EventKind {
        use crate::events::EventKind as E;
        match self {
            Self::Registered => E::DeviceRegistered,
            Self::Active => E::DeviceActive,
            Self::Suspended => E::DeviceSuspended,
            Self::Lost => E::DeviceLost,
            Self::Damaged => E::DeviceDamaged,
            Self::Revoked => E::DeviceRevoked,
            Self::Expired => E::DeviceExpired,
            Self::Terminated => E::DeviceTerminated,
        }
    }

    /// What entering this state does to the device's certificates: put them on hold, release
    /// the holds the device placed, revoke them, or nothing.
    pub fn cascade(
        self,
        from: DeviceStatus,
        reason: Option<RevocationReason>,
    ) -> Option<CertChange> {
        use DeviceStatus::*;
        match self {
            Suspended | Lost => Some(CertChange::Suspend),
            Active if matches!(from, Suspended | Lost) => Some(CertChange::Reactivate),
            Revoked => Some(CertChange::Revoke(reason.unwrap_or(RevocationReason::Unspecified))),
            Damaged | Terminated => {
                Some(CertChange::Revoke(reason.unwrap_or(RevocationReason::CessationOfOperation)))
            }
            _ => None,
        }
    }
}

/// Production metadata: where the device comes from and where it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Production {
    /// Production batch.
    pub batch: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Applet or firmware version.
    pub applet: Option<String>,
    /// Chip serial number.
    pub chip_serial: Option<String>,
    /// Disposal status (`in_use`, `returned`, `destroyed`, …).
    pub disposal_status: Option<String>,
    /// Anything else the personalization system records (a JSON object).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Registration office.
    pub office_id: Uuid,
    /// Its holder (a person of the same scope).
    pub holder_id: Option<Uuid>,
    /// Kind.
    pub kind: DeviceKind,
    /// Serial number (unique within the office).
    pub serial: String,
    /// State.
    pub status: DeviceStatus,
    /// Certificates on the device.
    pub certificates: Vec<Uuid>,
    /// Certificates the device's suspension put on hold (released on reactivation).
    #[serde(default)]
    pub held: Vec<Uuid>,
    /// Who placed the current suspension or loss report (`holder:<person id>` for the token
    /// holder through self-service, else `<actor kind>:<actor id>`); a holder may lift only a
    /// suspension the holder placed.
    #[serde(default)]
    pub suspended_by: Option<String>,
    /// Production metadata.
    pub production: Production,
    /// Free-form attributes (a JSON object).
    pub metadata: serde_json::Value,
    /// PIN retries left before the device locks (a PIN reset restores them).
    pub pin_retries_left: u8,
    /// Which PIN reset methods are set up (the secrets live apart, sealed).
    #[serde(default)]
    pub pin_reset: crate::cards::unlock::PinResetSetup,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Last state change.
    #[serde(with = "time::serde::rfc3339")]
    pub status_changed_at: OffsetDateTime,
}

impl Device {
    /// The holds this device keeps after `change` touched the certificates `touched`: a
    /// suspension adds them; a release or revocation removes them. Holds the caller could not
    /// see (and so did not touch) stay recorded, for a caller who sees them to release.
    pub fn held_after(&self, change: CertChange, touched: &[Uuid]) -> Vec<Uuid> {
        match change {
            CertChange::Suspend => {
                let mut held = self.held.clone();
                held.extend(touched.iter().filter(|t| !self.held.contains(t)));
                held
            }
            _ => self.held.iter().filter(|h| !touched.contains(h)).copied().collect(),
        }
    }
}

/// One entry of a device's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// The device.
    pub device_id: Uuid,
    /// `registered`, `transition`, `updated`, `certificate_linked`, `pin_reset`.
    pub kind: String,
    /// State before (transitions).
    pub from: Option<DeviceStatus>,
    /// State after (transitions).
    pub to: Option<DeviceStatus>,
    /// Why.
    pub reason: Option<String>,
    /// Who (principal id and kind).
    pub actor: String,
    /// Certificates the change affected.
    pub certificates: Vec<Uuid>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Filters of the device list.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// In this state.
    pub status: Option<DeviceStatus>,
    /// Of this kind.
    pub kind: Option<DeviceKind>,
    /// In this office.
    pub office_id: Option<Uuid>,
    /// Held by this person.
    pub holder_id: Option<Uuid>,
    /// From this production batch.
    pub batch: Option<String>,
    /// This serial.
    pub serial: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::DeviceStatus::*;
    use super::*;

    #[test]
    fn the_state_machine_allows_only_its_transitions() {
        assert!(Registered.next().contains(&Active));
        assert!(!Registered.next().contains(&Suspended));
        assert!(Suspended.next().contains(&Active));
        assert!(Terminated.next().is_empty());
        assert!(!Revoked.next().contains(&Active));
        assert_eq!(DeviceStatus::parse("lost").unwrap(), Lost);
        assert_eq!(DeviceStatus::parse("gone").unwrap_err().code(), "invalid_status");
    }

    #[test]
    fn a_suspension_records_its_holds_and_a_release_drops_only_those_it_touched() {
        let (a, b, c, unseen) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut d: Device = serde_json::from_value(serde_json::json!({
            "id": Uuid::now_v7(), "office_id": Uuid::now_v7(), "holder_id": null,
            "kind": "smart_card", "serial": "S", "status": "active", "certificates": [a, b, c],
            "held": [unseen], "production": {"batch": null, "manufacturer": null, "model": null,
            "applet": null, "chip_serial": null, "disposal_status": null}, "metadata": {},
            "pin_retries_left": 3, "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "status_changed_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        d.held = d.held_after(CertChange::Suspend, &[a, b]);
        assert_eq!(d.held, [unseen, a, b]);
        // Suspending again adds nothing twice.
        assert_eq!(d.held_after(CertChange::Suspend, &[a]), [unseen, a, b]);
        // A release by a caller who saw a and b leaves the hold it could not see.
        assert_eq!(d.held_after(CertChange::Reactivate, &[a, b]), [unseen]);
        let revoked = d.held_after(CertChange::Revoke(RevocationReason::KeyCompromise), &[b]);
        assert_eq!(revoked, [unseen, a]);
    }

    #[test]
    fn each_state_names_its_audit_action_and_event() {
        for s in [Registered, Active, Suspended, Lost, Damaged, Revoked, Expired, Terminated] {
            let wire = format!("device.{}", s.as_str());
            assert_eq!(s.audit_action().as_str(), wire);
            assert_eq!(s.event_kind().as_str(), wire);
        }
    }

    #[test]
    fn transitions_cascade_to_certificates() {
        assert_eq!(Suspended.cascade(Active, None), Some(CertChange::Suspend));
        assert_eq!(Active.cascade(Suspended, None), Some(CertChange::Reactivate));
        assert_eq!(Active.cascade(Registered, None), None);
        assert_eq!(
            Terminated.cascade(Active, None),
            Some(CertChange::Revoke(RevocationReason::CessationOfOperation))
        );
        assert_eq!(
            Revoked.cascade(Active, Some(RevocationReason::KeyCompromise)),
            Some(CertChange::Revoke(RevocationReason::KeyCompromise))
        );
    }
}
