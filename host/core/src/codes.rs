//! The catalogue of error codes: every stable `code` Sigil puts on the wire (problem+json),
//! with what it means. A use case names a code by its variant; the wire name and the meaning
//! come from this one table, which the API documentation lists.

use crate::catalogue::catalogue;

catalogue! {
    /// A stable error code.
    pub enum ErrorCode {
        /// The certificate was renewed already; renew its renewal.
        AlreadyRenewed = "already_renewed",
        /// The API key has expired.
        ApiKeyExpired = "api_key_expired",
        /// The API key has been revoked.
        ApiKeyRevoked = "api_key_revoked",
        /// Under dual control or separation of duties only an operator (or a key bound to one) approves.
        ApproverNotAnOperator = "approver_not_an_operator",
        /// The audit chain does not verify.
        AuditChainBroken = "audit_chain_broken",
        /// CSC: the signer's credentials were not accepted.
        AuthenticationError = "authentication_error",
        /// The target credential would hold more authority than the caller.
        AuthorityExceeded = "authority_exceeded",
        /// The request body exceeds its limit.
        BodyTooLarge = "body_too_large",
        /// Built-in roles cannot be changed or deleted.
        BuiltInRole = "built_in_role",
        /// A CA certificate is not acceptable (not a CA, wrong key, expired).
        CaBadCertificate = "ca_bad_certificate",
        /// A CA with this name or id exists.
        CaExists = "ca_exists",
        /// What the CA issued differs from what the profile decided.
        CaResultMismatch = "ca_result_mismatch",
        /// The CA back end could not be reached or failed.
        CaUnavailable = "ca_unavailable",
        /// The client certificate is bound to another key or operator.
        CertificateTaken = "certificate_taken",
        /// This endpoint needs a TLS client certificate.
        ClientCertificateRequired = "client_certificate_required",
        /// Another office has this code.
        CodeTaken = "code_taken",
        /// The object changed meanwhile; read it again and retry.
        ConcurrentUpdate = "concurrent_update",
        /// The change conflicts with an existing record.
        Conflict = "conflict",
        /// The roles break a separation-of-duties rule.
        ConflictingRoles = "conflicting_roles",
        /// The API key is not valid.
        CredentialsInvalid = "credentials_invalid",
        /// No API key or client certificate was presented.
        CredentialsMissing = "credentials_missing",
        /// The profile needs a CSR.
        CsrRequired = "csr_required",
        /// The CSR's self-signature does not verify.
        CsrSignatureInvalid = "csr_signature_invalid",
        /// The import holds no rows.
        EmptyImport = "empty_import",
        /// The request asks for nothing.
        EmptyRequest = "empty_request",
        /// A key may not outlive the key that creates it.
        ExpiryBeyondCreator = "expiry_beyond_creator",
        /// The exposure change would lock every administrator out.
        ExposureLockout = "exposure_lockout",
        /// Another object already has this external id.
        ExternalIdTaken = "external_id_taken",
        /// The caller may not do this.
        Forbidden = "forbidden",
        /// An identity source plugin failed to answer.
        IdentitySourceFailed = "identity_source_failed",
        /// An internal error; nothing was changed.
        Internal = "internal",
        /// The admin key is not valid.
        InvalidAdminKey = "invalid_admin_key",
        /// The allowed values of a custom field are not valid.
        InvalidAllowedValues = "invalid_allowed_values",
        /// Attributes do not match the custom field definitions.
        InvalidAttributes = "invalid_attributes",
        /// The auth types is not valid.
        InvalidAuthTypes = "invalid_auth_types",
        /// The batch is not valid.
        InvalidBatch = "invalid_batch",
        /// The sealed secret does not belong here.
        InvalidBinding = "invalid_binding",
        /// The body is not acceptable.
        InvalidBody = "invalid_body",
        /// The ca is not valid.
        InvalidCa = "invalid_ca",
        /// The card challenge is not valid.
        InvalidChallenge = "invalid_challenge",
        /// The code is not valid.
        InvalidCode = "invalid_code",
        /// The comment is not valid.
        InvalidComment = "invalid_comment",
        /// The configuration is not valid.
        InvalidConfiguration = "invalid_configuration",
        /// The crl is not valid.
        InvalidCrl = "invalid_crl",
        /// The csr is not valid.
        InvalidCsr = "invalid_csr",
        /// The CSV cannot be read.
        InvalidCsv = "invalid_csv",
        /// The page cursor is not valid.
        InvalidCursor = "invalid_cursor",
        /// The days is not valid.
        InvalidDays = "invalid_days",
        /// The description is not valid.
        InvalidDescription = "invalid_description",
        /// The email is not valid.
        InvalidEmail = "invalid_email",
        /// The excluded names are not valid.
        InvalidExcludes = "invalid_excludes",
        /// The expiry is not valid.
        InvalidExpiry = "invalid_expiry",
        /// The export request is not valid.
        InvalidExport = "invalid_export",
        /// The exposure setting is not valid.
        InvalidExposure = "invalid_exposure",
        /// The external id is not valid.
        InvalidExternalId = "invalid_external_id",
        /// The field is not valid.
        InvalidField = "invalid_field",
        /// A list filter is not valid.
        InvalidFilter = "invalid_filter",
        /// The fingerprint is not valid.
        InvalidFingerprint = "invalid_fingerprint",
        /// The format is not valid.
        InvalidFormat = "invalid_format",
        /// The grace period is not valid.
        InvalidGracePeriod = "invalid_grace_period",
        /// The ip whitelist is not valid.
        InvalidIpWhitelist = "invalid_ip_whitelist",
        /// The body is not valid JSON for this endpoint.
        InvalidJson = "invalid_json",
        /// The key algorithm is not valid.
        InvalidKeyAlgorithm = "invalid_key_algorithm",
        /// The key type is not valid.
        InvalidKeyType = "invalid_key_type",
        /// The language is not valid.
        InvalidLanguage = "invalid_language",
        /// The length is not valid.
        InvalidLength = "invalid_length",
        /// The page size is out of range.
        InvalidLimit = "invalid_limit",
        /// The logo is not valid.
        InvalidLogo = "invalid_logo",
        /// The metadata is not valid.
        InvalidMetadata = "invalid_metadata",
        /// The multisign count is out of range.
        InvalidMultisign = "invalid_multisign",
        /// The name is not valid.
        InvalidName = "invalid_name",
        /// The OCSP request cannot be parsed.
        InvalidOcspRequest = "invalid_ocsp_request",
        /// The password is not valid.
        InvalidPassword = "invalid_password",
        /// The pattern is not valid.
        InvalidPattern = "invalid_pattern",
        /// The permission is not valid.
        InvalidPermission = "invalid_permission",
        /// The phone is not valid.
        InvalidPhone = "invalid_phone",
        /// The pin is not valid.
        InvalidPin = "invalid_pin",
        /// The profile is not valid.
        InvalidProfile = "invalid_profile",
        /// A query parameter is not valid.
        InvalidQuery = "invalid_query",
        /// The rate limit is not valid.
        InvalidRateLimit = "invalid_rate_limit",
        /// The reason is not valid.
        InvalidReason = "invalid_reason",
        /// The region is not valid.
        InvalidRegion = "invalid_region",
        /// The request is not acceptable (CSC and SAD refusals).
        InvalidRequest = "invalid_request",
        /// A row of an import is not valid.
        InvalidRow = "invalid_row",
        /// The SCAL value is not supported.
        InvalidScal = "invalid_scal",
        /// The scope is not valid.
        InvalidScope = "invalid_scope",
        /// The serial is not valid.
        InvalidSerial = "invalid_serial",
        /// The object is not in a state that allows this.
        InvalidState = "invalid_state",
        /// The status is not valid.
        InvalidStatus = "invalid_status",
        /// The state change is not allowed from the current state.
        InvalidTransition = "invalid_transition",
        /// The unlock code is not valid.
        InvalidUnlockCode = "invalid_unlock_code",
        /// The username is not valid.
        InvalidUsername = "invalid_username",
        /// The caller's address is not in the key's allowlist.
        IpNotAllowed = "ip_not_allowed",
        /// The key type or size is not allowed by the profile.
        KeyNotAllowed = "key_not_allowed",
        /// The requested key store is not configured on this server.
        KeyStoreUnavailable = "key_store_unavailable",
        /// The HTTP method is not allowed on this path.
        MethodNotAllowed = "method_not_allowed",
        /// A required field is missing.
        MissingField = "missing_field",
        /// Another object already has this name.
        NameTaken = "name_taken",
        /// The caller is not a token holder (self-service only).
        NotAHolder = "not_a_holder",
        /// No such object, or not one the caller sees.
        NotFound = "not_found",
        /// The request was decided already.
        NotPending = "not_pending",
        /// The object is not available to self-service.
        NotSelfService = "not_self_service",
        /// The certificate is not yet within its renewal window.
        OutsideRenewalWindow = "outside_renewal_window",
        /// The caller lacks the permission this needs.
        PermissionDenied = "permission_denied",
        /// The caller cannot grant a permission it does not hold.
        PermissionEscalation = "permission_escalation",
        /// The person moved to another office meanwhile.
        PersonMoved = "person_moved",
        /// The certificate no longer matches the person record; enrol again.
        PersonRecordChanged = "person_record_changed",
        /// The card has no PIN reset set up.
        PinResetUnavailable = "pin_reset_unavailable",
        /// The plugin engine could not start.
        PluginEngine = "plugin_engine",
        /// A plugin does not fit the contract it claims.
        PluginIncompatible = "plugin_incompatible",
        /// A plugin file could not be read.
        PluginIo = "plugin_io",
        /// A plugin exceeded its memory limit.
        PluginMemoryLimit = "plugin_memory_limit",
        /// A plugin imports what it was not granted.
        PluginNotGranted = "plugin_not_granted",
        /// A plugin refused.
        PluginRejected = "plugin_rejected",
        /// A plugin ran past its time limit.
        PluginTimeout = "plugin_timeout",
        /// A plugin crashed.
        PluginTrap = "plugin_trap",
        /// The account behind the credential is disabled.
        PrincipalDisabled = "principal_disabled",
        /// The profile does not issue signing certificates.
        ProfileNotForSigning = "profile_not_for_signing",
        /// The CA must publish status (CRL, OCSP) for this.
        PublicationRequired = "publication_required",
        /// The caller exceeded its rate limit.
        RateLimited = "rate_limited",
        /// A renewal must keep the subject and names.
        RenewalChangesIdentity = "renewal_changes_identity",
        /// The request took too long.
        RequestTimeout = "request_timeout",
        /// Operators still hold this role.
        RoleInUse = "role_in_use",
        /// These roles may not be held by one operator.
        RolesHeldTogether = "roles_held_together",
        /// A subject alternative name is not allowed by the profile.
        SanNotAllowed = "san_not_allowed",
        /// The caller cannot grant a scope wider than its own.
        ScopeEscalation = "scope_escalation",
        /// Only an operator who sees every office may do this.
        ScopeRestricted = "scope_restricted",
        /// An operator cannot disable itself.
        SelfDisable = "self_disable",
        /// The same person cannot both request and approve, or approve twice.
        SeparationOfDuties = "separation_of_duties",
        /// Another object already has this serial.
        SerialTaken = "serial_taken",
        /// The server is at a limit; retry later.
        ServerBusy = "server_busy",
        /// An identity source must be named.
        SourceRequired = "source_required",
        /// The CA publishes no status for this certificate.
        StatusNotPublished = "status_not_published",
        /// The database is unavailable; nothing was changed.
        StorageUnavailable = "storage_unavailable",
        /// The subject is not allowed by the profile.
        SubjectNotAllowed = "subject_not_allowed",
        /// An operator suspended this; only an operator releases it.
        SuspendedByOperator = "suspended_by_operator",
        /// The profile does not allow suspension.
        SuspensionNotAllowed = "suspension_not_allowed",
        /// The CA back end cannot suspend.
        SuspensionNotSupported = "suspension_not_supported",
        /// More certificates than the limit allows.
        TooManyCertificates = "too_many_certificates",
        /// More descendants than the limit allows.
        TooManyDescendants = "too_many_descendants",
        /// More fields than the limit allows.
        TooManyFields = "too_many_fields",
        /// More items than the limit allows.
        TooManyItems = "too_many_items",
        /// More providers than the limit allows.
        TooManyProviders = "too_many_providers",
        /// More rows than the limit allows.
        TooManyRows = "too_many_rows",
        /// Too many event streams are open.
        TooManyStreams = "too_many_streams",
        /// No such ca, or not one the caller sees.
        UnknownCa = "unknown_ca",
        /// No such certificate, or not one the caller sees.
        UnknownCertificate = "unknown_certificate",
        /// No such division, or not one the caller sees.
        UnknownDivision = "unknown_division",
        /// The body names a field this endpoint does not know.
        UnknownField = "unknown_field",
        /// No such office, or not one the caller sees.
        UnknownOffice = "unknown_office",
        /// No such operator, or not one the caller sees.
        UnknownOperator = "unknown_operator",
        /// No such organization, or not one the caller sees.
        UnknownOrganization = "unknown_organization",
        /// No such permission, or not one the caller sees.
        UnknownPermission = "unknown_permission",
        /// No such person, or not one the caller sees.
        UnknownPerson = "unknown_person",
        /// No such profile, or not one the caller sees.
        UnknownProfile = "unknown_profile",
        /// No such role, or not one the caller sees.
        UnknownRole = "unknown_role",
        /// No such signer, or not one the caller sees.
        UnknownSigner = "unknown_signer",
        /// No such source, or not one the caller sees.
        UnknownSource = "unknown_source",
        /// The request body has an unsupported content type.
        UnsupportedMediaType = "unsupported_media_type",
        /// Another object already has this username.
        UsernameTaken = "username_taken",
        /// A validator plugin refused the change.
        ValidationFailed = "validation_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn wire_names_are_unique_snake_case_and_each_code_says_what_it_means() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ErrorCode::ALL {
            let w = c.as_str();
            assert!(seen.insert(w), "{w} twice");
            assert!(w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{w}");
            assert!(c.meaning().ends_with('.') && c.meaning().len() > 10, "{w}: {}", c.meaning());
        }
        assert_eq!(ErrorCode::NotFound.to_string(), "not_found");
    }
}
