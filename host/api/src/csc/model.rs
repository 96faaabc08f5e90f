//! CSC request and response bodies. Requests accept the v1 and the v2 spelling of each field
//! (`hash`/`hashes`, `hashAlgo`/`hashAlgorithmOID`, `PIN`/`authData`) and ignore unknown ones;
//! responses carry the field names of the version asked.

use serde::{Deserialize, Deserializer, Serialize};

/// CSC's error body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CscErrorBody {
    /// Error code: `invalid_request`, `invalid_token`, `expired_token`, `invalid_pin` (v1),
    /// `invalid_authentication_data` (v2), `authentication_error`, `access_denied`,
    /// `temporarily_unavailable`, `server_error`.
    pub error: String,
    /// What was wrong.
    pub error_description: String,
}

/// A count given as a JSON number or a numeric string (both are seen in the wild).
fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u32),
        Text(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Num(n)) => Ok(Some(n)),
        Some(N::Text(t)) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected a non-negative integer")),
    }
}

/// `info` request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct InfoRequest {
    /// Preferred language.
    // Accepted (clients send it) and documented; Sigil has no use for it.
    #[allow(dead_code)]
    #[serde(default)]
    pub lang: Option<String>,
}

/// `info` response.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfoResponse {
    /// Specification version.
    pub specs: String,
    /// Service name.
    pub name: String,
    /// Logo URI.
    pub logo: String,
    /// ISO 3166-1 alpha-2 region.
    pub region: String,
    /// RFC 5646 language.
    pub lang: String,
    /// Description.
    pub description: String,
    /// Authentication types.
    pub auth_type: Vec<String>,
    /// Methods served.
    pub methods: Vec<String>,
    /// v2: signature algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_algorithms: Option<SignAlgorithms>,
    /// v2: signDoc formats (none: this service signs hashes).
    #[serde(default, rename = "signature_formats", skip_serializing_if = "Option::is_none")]
    pub signature_formats: Option<SignatureFormats>,
    /// v2: conformance levels of signDoc (none).
    #[serde(default, rename = "conformance_levels", skip_serializing_if = "Option::is_none")]
    pub conformance_levels: Option<Vec<String>>,
}

/// v2 `signAlgorithms`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignAlgorithms {
    /// Algorithm OIDs.
    pub algos: Vec<String>,
}

/// v2 `signature_formats`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignatureFormats {
    /// Formats.
    pub formats: Vec<String>,
}

/// `auth/login` request (credentials come in the `Authorization: Basic` header).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// A refresh token from an earlier login with `rememberMe`, instead of Basic credentials.
    #[serde(default, rename = "refresh_token")]
    pub refresh_token: Option<String>,
    /// Also hand out a refresh token.
    #[serde(default)]
    pub remember_me: Option<bool>,
    /// Free-form client data.
    // Accepted (clients send it) and documented; Sigil has no use for it.
    #[allow(dead_code)]
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `auth/login` response.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Bearer token for the other calls.
    pub access_token: String,
    /// With `rememberMe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// `auth/revoke` request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RevokeRequest {
    /// The token to revoke.
    #[serde(default)]
    pub token: Option<String>,
    /// `access_token` or `refresh_token`.
    #[serde(default)]
    pub token_type_hint: Option<String>,
}

/// `credentials/list` request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    /// Must be absent: the token already names the user.
    #[serde(default, rename = "userID")]
    pub user_id: Option<serde_json::Value>,
    /// v1: page size.
    #[serde(default, deserialize_with = "lenient_u32")]
    pub max_results: Option<u32>,
    /// v1: `nextPageToken` of the previous page.
    #[serde(default)]
    pub page_token: Option<String>,
    /// v2: include each credential's info.
    #[serde(default)]
    pub credential_info: Option<bool>,
    /// v2: `none`, `single` (default) or `chain`, with `credentialInfo`.
    #[serde(default)]
    pub certificates: Option<String>,
    /// v2: certificate details, with `credentialInfo`.
    #[serde(default)]
    pub cert_info: Option<bool>,
    /// v2: authentication details, with `credentialInfo`.
    // Accepted (clients send it) and documented; Sigil has no use for it.
    #[allow(dead_code)]
    #[serde(default)]
    pub auth_info: Option<bool>,
    /// v2: only enabled credentials with a valid certificate.
    #[serde(default)]
    pub only_valid: Option<bool>,
}

/// `credentials/list` response.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    /// The user's credentials.
    #[serde(rename = "credentialIDs")]
    pub credential_ids: Vec<String>,
    /// v1: the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    /// v2: each credential's info, with its `credentialID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_infos: Option<Vec<CredentialInfo>>,
    /// v2: echoed when `onlyValid` was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_valid: Option<bool>,
}

/// `credentials/info` request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfoOfCredential {
    /// The credential.
    #[serde(default, rename = "credentialID")]
    pub credential_id: Option<String>,
    /// `none`, `single` (default) or `chain`.
    #[serde(default)]
    pub certificates: Option<String>,
    /// Certificate details.
    #[serde(default)]
    pub cert_info: Option<bool>,
    /// Authentication details.
    // Accepted (clients send it) and documented; Sigil has no use for it.
    #[allow(dead_code)]
    #[serde(default)]
    pub auth_info: Option<bool>,
    /// Language.
    // Accepted (clients send it) and documented; Sigil has no use for it.
    #[allow(dead_code)]
    #[serde(default)]
    pub lang: Option<String>,
}

/// `key` of a credential.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyInfo {
    /// `enabled` or `disabled`.
    pub status: String,
    /// Signature algorithm OIDs it signs with (`signAlgo` values).
    pub algo: Vec<String>,
    /// Key length, bits.
    pub len: u32,
    /// Curve OID (EC keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

/// `cert` of a credential.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    /// `valid`, `expired`, `revoked` or `suspended`.
    pub status: String,
    /// Base64 DER: the certificate first, then its chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<String>>,
    /// Issuer DN (RFC 4514).
    #[serde(default, rename = "issuerDN", skip_serializing_if = "Option::is_none")]
    pub issuer_dn: Option<String>,
    /// Serial, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Subject DN (RFC 4514).
    #[serde(default, rename = "subjectDN", skip_serializing_if = "Option::is_none")]
    pub subject_dn: Option<String>,
    /// notBefore, `YYYYMMDDHHMMSSZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// notAfter, `YYYYMMDDHHMMSSZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

/// v1 `PIN` description.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PinInfo {
    /// `true`: a PIN is required.
    pub presence: String,
    /// `N` (digits) or `A` (any characters).
    pub format: String,
    /// Label.
    pub label: String,
    /// Description.
    pub description: String,
}

/// v2 `auth` description.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuthInfo {
    /// `explicit`.
    pub mode: String,
    /// The factors: one `Password` object with id `PIN`.
    pub objects: Vec<AuthObject>,
}

/// v2 authentication object.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuthObject {
    /// `Password`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `PIN`: the `id` to use in `authData`.
    pub id: String,
    /// `N` or `A`.
    pub format: String,
    /// Label.
    pub label: String,
    /// Description.
    pub description: String,
}

/// `credentials/info` response (v1 uses `authMode` and `PIN`, v2 `auth`); in a v2 list each
/// carries its `credentialID`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialInfo {
    /// v2 list entries: the credential.
    #[serde(default, rename = "credentialID", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// Description.
    pub description: String,
    /// The key.
    pub key: KeyInfo,
    /// The certificate.
    pub cert: CertInfo,
    /// v1: `explicit` (a PIN at `credentials/authorize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    /// v1: the PIN.
    #[serde(default, rename = "PIN", skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinInfo>,
    /// v2: authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthInfo>,
    /// Sole control assurance level, `1` or `2`.
    #[serde(rename = "SCAL")]
    pub scal: String,
    /// Most signatures per authorization.
    pub multisign: u32,
    /// Language.
    pub lang: String,
}

/// v2 `authData` entry.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AuthDatum {
    /// Factor id (`PIN`).
    pub id: String,
    /// Its value.
    #[serde(default)]
    pub value: Option<String>,
}

/// `credentials/authorize` request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeRequest {
    /// The credential.
    #[serde(default, rename = "credentialID")]
    pub credential_id: Option<String>,
    /// Signatures to allow (at most the credential's `multisign`).
    #[serde(default, deserialize_with = "lenient_u32")]
    pub num_signatures: Option<u32>,
    /// Base64 digests to bind the SAD to (`hash` in v1, `hashes` in v2; SCAL 2 requires them).
    #[serde(default, alias = "hashes")]
    pub hash: Option<Vec<String>>,
    /// v2: digest algorithm OID of `hashes`.
    #[serde(default, rename = "hashAlgorithmOID", alias = "hashAlgo")]
    pub hash_algorithm_oid: Option<String>,
    /// v1: the PIN.
    #[serde(default, rename = "PIN")]
    pub pin: Option<String>,
    /// v1: an OTP (not used by Sigil credentials).
    // Accepted (clients send it) and documented; Sigil has no use for it.
    #[allow(dead_code)]
    #[serde(default, rename = "OTP")]
    pub otp: Option<String>,
    /// v2: authentication factors, `[{"id": "PIN", "value": "…"}]`.
    #[serde(default)]
    pub auth_data: Option<Vec<AuthDatum>>,
    /// Shown to the user.
    // Accepted (clients send it) and documented; Sigil has no use for it.
    #[allow(dead_code)]
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form client data.
    // Accepted (clients send it) and documented; Sigil has no use for it.
    #[allow(dead_code)]
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `credentials/authorize` response.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeResponse {
    /// Signature activation data for `signatures/signHash`.
    #[serde(rename = "SAD")]
    pub sad: String,
    /// Seconds until the SAD expires.
    pub expires_in: i64,
}

/// `signatures/signHash` request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignHashRequest {
    /// The credential.
    #[serde(default, rename = "credentialID")]
    pub credential_id: Option<String>,
    /// Signature activation data from `credentials/authorize`.
    #[serde(default, rename = "SAD")]
    pub sad: Option<String>,
    /// Base64 raw digests (`hash` in v1, `hashes` in v2), answered in order.
    #[serde(default, alias = "hashes")]
    pub hash: Option<Vec<String>>,
    /// Digest algorithm OID (`hashAlgo` in v1, `hashAlgorithmOID` in v2); needed when
    /// `signAlgo` implies none.
    #[serde(default, alias = "hashAlgorithmOID")]
    pub hash_algo: Option<String>,
    /// Signature algorithm OID, one of the credential's `key.algo`.
    #[serde(default)]
    pub sign_algo: Option<String>,
    /// Base64 DER parameters (RSASSA-PSS-params for 1.2.840.113549.1.1.10).
    #[serde(default)]
    pub sign_algo_params: Option<String>,
    /// v2: `S` (synchronous, the only mode served).
    #[serde(default)]
    pub operation_mode: Option<String>,
    /// Free-form client data.
    // Accepted (clients send it) and documented; Sigil has no use for it.
    #[allow(dead_code)]
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `signatures/signHash` response.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignHashResponse {
    /// Base64 signatures, one per hash, in the order given (ECDSA DER-encoded).
    pub signatures: Vec<String>,
}
