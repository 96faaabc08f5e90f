//! The catalogue of audit actions: every `action` an audit event can carry, with what it
//! records. A use case names its action by variant; the dotted wire name comes from this one
//! table (which `?action=` filters and exports use). A summary of repeated refusals carries its
//! action with `.repeated` appended (`access.denied.repeated`).

use crate::catalogue::catalogue;

catalogue! {
    /// What an audit event records.
    pub enum AuditAction {
        /// An authenticated caller was refused (permission, scope or address).
        AccessDenied = "access.denied",
        /// An ACME account was created.
        AcmeAccountCreate = "acme_account.create",
        /// An ACME account's contacts were changed.
        AcmeAccountUpdate = "acme_account.update",
        /// An ACME account was deactivated (by its holder or an administrator).
        AcmeAccountDeactivate = "acme_account.deactivate",
        /// An ACME account's key was replaced.
        AcmeAccountKeyChange = "acme_account.key_change",
        /// An ACME external account binding key was created.
        AcmeEabKeyCreate = "acme_eab_key.create",
        /// An ACME external account binding key was revoked.
        AcmeEabKeyRevoke = "acme_eab_key.revoke",
        /// An ACME authorization was validated, failed validation, or was deactivated.
        AcmeAuthzUpdate = "acme_authz.update",
        /// An ACME order was placed.
        AcmeOrderCreate = "acme_order.create",
        /// An ACME order was finalized (its certificate issued, or issuance refused).
        AcmeOrderFinalize = "acme_order.finalize",
        /// An API key was created.
        ApiKeyCreate = "api_key.create",
        /// An API key was revoked.
        ApiKeyRevoke = "api_key.revoke",
        /// An API key was rotated.
        ApiKeyRotate = "api_key.rotate",
        /// An API key was changed.
        ApiKeyUpdate = "api_key.update",
        /// A CA was created.
        CaCreate = "ca.create",
        /// A CA was imported.
        CaImport = "ca.import",
        /// A CA certificate was installed.
        CaInstall = "ca.install",
        /// A root CRL was published.
        CaRootCrlPublish = "ca.root_crl_publish",
        /// A root key was moved out of the database.
        CaRootKeyMoved = "ca.root_key_moved",
        /// A certificate was issued.
        CertificateIssue = "certificate.issue",
        /// A certificate hold was released.
        CertificateReactivate = "certificate.reactivate",
        /// A certificate was renewed.
        CertificateRenew = "certificate.renew",
        /// A certificate was revoked.
        CertificateRevoke = "certificate.revoke",
        /// A certificate was put on hold.
        CertificateSuspend = "certificate.suspend",
        /// A certificate's metadata changed.
        CertificateUpdate = "certificate.update",
        /// A CRL was published.
        CrlPublish = "crl.publish",
        /// A CSC credential was authorized (a SAD handed out).
        CscAuthorize = "csc.authorize",
        /// A signer logged in to the CSC API.
        CscLogin = "csc.login",
        /// A CSC login failed.
        CscLoginAttempt = "csc.login_attempt",
        /// CSC tokens were revoked.
        CscRevoke = "csc.revoke",
        /// Hashes were signed through the CSC API.
        CscSignHash = "csc.sign_hash",
        /// A CSC provider was created.
        CscProviderCreate = "csc_provider.create",
        /// A CSC provider was deleted.
        CscProviderDelete = "csc_provider.delete",
        /// A CSC provider changed.
        CscProviderUpdate = "csc_provider.update",
        /// A custom field definition was deleted.
        CustomFieldDelete = "custom_field.delete",
        /// A custom field definition was created or replaced.
        CustomFieldPut = "custom_field.put",
        /// A device became active.
        DeviceActive = "device.active",
        /// A device was reported damaged.
        DeviceDamaged = "device.damaged",
        /// A device expired.
        DeviceExpired = "device.expired",
        /// A certificate was linked to a device.
        DeviceLinkCertificate = "device.link_certificate",
        /// A device was reported lost.
        DeviceLost = "device.lost",
        /// A device PIN was reset.
        DevicePinReset = "device.pin_reset",
        /// A device's PIN reset secrets were set.
        DevicePinResetConfigure = "device.pin_reset_configure",
        /// A device was registered.
        DeviceRegister = "device.register",
        /// A device went back to registered.
        DeviceRegistered = "device.registered",
        /// A device was revoked.
        DeviceRevoked = "device.revoked",
        /// A device was suspended.
        DeviceSuspended = "device.suspended",
        /// A device was terminated.
        DeviceTerminated = "device.terminated",
        /// A device's details changed.
        DeviceUpdate = "device.update",
        /// A division was created.
        DivisionCreate = "division.create",
        /// A division changed.
        DivisionUpdate = "division.update",
        /// The configuration file's `[exposure]` changed and was reloaded (SIGHUP, a file
        /// change or a plugin reload); `in_force` says whether it applies (an override stored
        /// through the API wins).
        ExposureFileReload = "exposure.file_reload",
        /// Endpoint exposure was reset to the configuration.
        ExposureReset = "exposure.reset",
        /// Endpoint exposure changed.
        ExposureUpdate = "exposure.update",
        /// An office was created.
        OfficeCreate = "office.create",
        /// An office changed.
        OfficeUpdate = "office.update",
        /// An operator was created.
        OperatorCreate = "operator.create",
        /// An operator was disabled.
        OperatorDisable = "operator.disable",
        /// An operator was enabled.
        OperatorEnable = "operator.enable",
        /// An operator changed.
        OperatorUpdate = "operator.update",
        /// An organization was created.
        OrganizationCreate = "organization.create",
        /// An organization changed.
        OrganizationUpdate = "organization.update",
        /// A person record was completed from an identity source.
        PersonComplete = "person.complete",
        /// A person was created.
        PersonCreate = "person.create",
        /// A person changed.
        PersonUpdate = "person.update",
        /// A certificate profile was created.
        ProfileCreate = "profile.create",
        /// A certificate profile changed.
        ProfileUpdate = "profile.update",
        /// An enrolment request was approved.
        RequestApprove = "request.approve",
        /// An enrolment request was cancelled.
        RequestCancel = "request.cancel",
        /// An enrolment request was carried out.
        RequestComplete = "request.complete",
        /// An enrolment request was made.
        RequestCreate = "request.create",
        /// Carrying out an enrolment request failed.
        RequestFail = "request.fail",
        /// An enrolment request was rejected.
        RequestReject = "request.reject",
        /// An enrolment request changed.
        RequestUpdate = "request.update",
        /// A role was created.
        RoleCreate = "role.create",
        /// A role was deleted.
        RoleDelete = "role.delete",
        /// A role changed.
        RoleUpdate = "role.update",
        /// A sealed secret was re-sealed to its binding.
        SealingRebind = "sealing.rebind",
        /// A signer was created.
        SignerCreate = "signer.create",
        /// A signer changed.
        SignerUpdate = "signer.update",
        /// A signing credential was created.
        SigningCredentialCreate = "signing_credential.create",
        /// A signing credential changed.
        SigningCredentialUpdate = "signing_credential.update",
        /// Someone signed in to the admin web UI with an API key (the session acts as it).
        UiSignIn = "ui_session.sign_in",
        /// An admin web UI session was ended by signing out.
        UiSignOut = "ui_session.sign_out",
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    #[test]
    fn action_names_are_unique_and_dotted_and_each_says_what_it_records() {
        let mut seen = std::collections::BTreeSet::new();
        for a in AuditAction::ALL {
            let w = a.as_str();
            assert!(seen.insert(w), "{w} twice");
            let (object, verb) = w.split_once('.').unwrap_or_else(|| panic!("{w}"));
            assert!(!object.is_empty() && !verb.is_empty() && !verb.contains('.'), "{w}");
            assert!(a.meaning().ends_with('.'), "{w}");
        }
    }
}
