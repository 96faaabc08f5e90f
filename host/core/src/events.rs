//! The catalogue of lifecycle events: what a committed change announces to workflow plugins
//! (`EventSink`), and so the names their `hooks` subscribe to. One table gives each kind its
//! wire name and meaning; the configuration checks hooks against it.

use crate::catalogue::catalogue;

catalogue! {
    /// A kind of lifecycle event.
    pub enum EventKind {
        /// A certificate was issued.
        CertificateIssued = "certificate.issued",
        /// A certificate was issued as the renewal of another.
        CertificateRenewed = "certificate.renewed",
        /// A certificate was put on hold.
        CertificateSuspended = "certificate.suspended",
        /// A certificate hold was released.
        CertificateReactivated = "certificate.reactivated",
        /// A certificate was revoked.
        CertificateRevoked = "certificate.revoked",
        /// An enrolment request was made.
        RequestCreated = "request.created",
        /// An enrolment request received an approval (the quorum may still be short).
        RequestApproved = "request.approved",
        /// An enrolment request was rejected.
        RequestRejected = "request.rejected",
        /// An enrolment request was cancelled.
        RequestCancelled = "request.cancelled",
        /// An enrolment request was carried out.
        RequestCompleted = "request.completed",
        /// Carrying out an enrolment request failed.
        RequestFailed = "request.failed",
        /// A device was registered (or went back to registered).
        DeviceRegistered = "device.registered",
        /// A device became active.
        DeviceActive = "device.active",
        /// A device was suspended.
        DeviceSuspended = "device.suspended",
        /// A device was reported lost.
        DeviceLost = "device.lost",
        /// A device was reported damaged.
        DeviceDamaged = "device.damaged",
        /// A device was revoked.
        DeviceRevoked = "device.revoked",
        /// A device expired.
        DeviceExpired = "device.expired",
        /// A device was terminated.
        DeviceTerminated = "device.terminated",
        /// A device PIN was reset.
        DevicePinReset = "device.pin_reset",
    }
}

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn every_kind_parses_back_from_its_name_and_says_what_it_announces() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
            assert!(k.meaning().ends_with('.'), "{k}");
        }
        assert_eq!(EventKind::parse("device.gone"), None);
    }
}
