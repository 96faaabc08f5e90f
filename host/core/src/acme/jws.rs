//! The JWS every ACME request is (RFC 8555 §6.2, RFC 7515 flattened JSON): its parsing, the
//! rules of its protected header, and the RFC 7638 thumbprint of a JWK. The signature itself
//! is checked by a [`JwsVerifier`] (implemented in `sigil-pki`): core holds no cryptography.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::error::AcmeError;

/// The signature algorithms accepted for account keys (announced in `badSignatureAlgorithm`).
pub const ALGORITHMS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];

/// Checks JWS signatures; implemented with ring in `sigil-pki`.
pub trait JwsVerifier: Send + Sync {
    /// Whether `signature` is `jwk`'s signature of `input` under `alg` (one of
    /// [`ALGORITHMS`]). A key that does not fit the algorithm, or is malformed, is an error.
    fn verify(
        &self,
        alg: &str,
        jwk: &Value,
        input: &[u8],
        signature: &[u8],
    ) -> Result<(), AcmeError>;
    /// HMAC-SHA-256 of `input` under `key` (external account binding, HS256).
    fn hmac_sha256(&self, key: &[u8], input: &[u8]) -> Vec<u8>;
    /// The SubjectPublicKeyInfo (DER) of `jwk` (revocation signed with a certificate's key).
    fn jwk_spki(&self, jwk: &Value) -> Result<Vec<u8>, AcmeError>;
    /// The serial (lowercase hex of its DER content bytes) and SubjectPublicKeyInfo (DER) of
    /// a certificate, or None when it does not parse.
    fn certificate_identity(&self, der: &[u8]) -> Option<(String, Vec<u8>)>;
    /// The keyIdentifier of a certificate's authorityKeyIdentifier, when it has one.
    fn authority_key_id(&self, der: &[u8]) -> Option<Vec<u8>>;
}

/// A parsed (not yet verified) JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    /// The protected header as sent (base64url), part of the signing input.
    pub protected_b64: String,
    /// The payload as sent (base64url; empty for POST-as-GET).
    pub payload_b64: String,
    /// The decoded header.
    pub header: Protected,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
}

/// The protected header's fields ACME uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Protected {
    /// Algorithm.
    pub alg: String,
    /// Anti-replay nonce (absent only in inner JWS: key change, EAB).
    #[serde(default)]
    pub nonce: Option<String>,
    /// The URL the request was sent to.
    #[serde(default)]
    pub url: Option<String>,
    /// The signing key, for new accounts and certificate-key revocation.
    #[serde(default)]
    pub jwk: Option<Value>,
    /// The account URL, for everything else.
    #[serde(default)]
    pub kid: Option<String>,
}

/// Decodes base64url without padding (as JWS requires), refusing anything else.
pub fn b64(s: &str, what: &str) -> Result<Vec<u8>, AcmeError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AcmeError::malformed(format!("{what} is not base64url without padding")))
}

/// base64url without padding.
pub fn b64e(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Jws {
    /// Parses a flattened JSON JWS (the only serialization ACME allows): exactly `protected`,
    /// `payload` and `signature`, no unprotected header.
    pub fn parse(body: &[u8]) -> Result<Self, AcmeError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| AcmeError::malformed("the request body is not a JSON object"))?;
        let Value::Object(m) = v else {
            return Err(AcmeError::malformed("the request body is not a JSON object"));
        };
        if let Some(k) =
            m.keys().find(|k| !["protected", "payload", "signature"].contains(&k.as_str()))
        {
            return Err(AcmeError::malformed(format!(
                "a JWS for ACME has only protected, payload and signature (not `{k}`)"
            )));
        }
        let field = |k: &str| -> Result<String, AcmeError> {
            match m.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(AcmeError::malformed(format!("the JWS has no `{k}` string"))),
            }
        };
        let protected_b64 = field("protected")?;
        let payload_b64 = field("payload")?;
        let signature = b64(&field("signature")?, "signature")?;
        let raw: Value = serde_json::from_slice(&b64(&protected_b64, "protected")?)
            .map_err(|e| AcmeError::malformed(format!("the protected header: {e}")))?;
        // Extensions this server does not implement must not be ignored (RFC 7515 §4.1.11).
        if raw.get("crit").is_some() || raw.get("b64").is_some() {
            return Err(AcmeError::malformed(
                "the protected header uses crit or b64, not supported",
            ));
        }
        let header: Protected = serde_json::from_value(raw)
            .map_err(|e| AcmeError::malformed(format!("the protected header: {e}")))?;
        let payload = b64(&payload_b64, "payload")?;
        Ok(Self { protected_b64, payload_b64, header, payload, signature })
    }

    /// The signing input: `protected.payload`.
    pub fn signing_input(&self) -> Vec<u8> {
        format!("{}.{}", self.protected_b64, self.payload_b64).into_bytes()
    }

    /// Whether this is a POST-as-GET (empty payload).
    pub fn is_post_as_get(&self) -> bool {
        self.payload_b64.is_empty()
    }

    /// The payload as a JSON value of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, AcmeError> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| AcmeError::malformed(format!("the payload: {e}")))
    }

    /// Checks the algorithm (an accepted asymmetric one) and that exactly one of `jwk` and
    /// `kid` is present.
    pub fn check_outer_header(&self) -> Result<(), AcmeError> {
        if !ALGORITHMS.contains(&self.header.alg.as_str()) {
            return Err(AcmeError::bad_signature_algorithm(&self.header.alg));
        }
        match (&self.header.jwk, &self.header.kid) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(AcmeError::malformed("the protected header has exactly one of jwk and kid")),
        }
    }

    /// Verifies the signature with `jwk`.
    pub fn verify_with(&self, v: &dyn JwsVerifier, jwk: &Value) -> Result<(), AcmeError> {
        v.verify(&self.header.alg, jwk, &self.signing_input(), &self.signature)
    }
}

/// The RFC 7638 thumbprint of `jwk`: base64url SHA-256 of its required members in
/// lexicographic order. Only the key types ACME accepts (EC, RSA, OKP).
pub fn thumbprint(jwk: &Value) -> Result<String, AcmeError> {
    let s = |k: &str| -> Result<&str, AcmeError> {
        jwk.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| AcmeError::bad_public_key(format!("the JWK has no `{k}`")))
    };
    let members: &[&str] = match s("kty")? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        other => {
            return Err(AcmeError::bad_public_key(format!("key type `{other}` is not accepted")));
        }
    };
    let mut canonical = String::from("{");
    for (i, k) in members.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        let v = serde_json::to_string(s(k)?)
            .map_err(|e| AcmeError::bad_public_key(format!("the JWK: {e}")))?;
        canonical.push_str(&format!("\"{k}\":{v}"));
    }
    canonical.push('}');
    Ok(b64e(&Sha256::digest(canonical.as_bytes())))
}

/// `jwk` reduced to its public, required members (what is stored of an account key): extra
/// members, including a private `d`, are dropped.
pub fn public_jwk(jwk: &Value) -> Result<Value, AcmeError> {
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["kty", "crv", "x", "y"],
        Some("RSA") => &["kty", "n", "e"],
        Some("OKP") => &["kty", "crv", "x"],
        _ => return Err(AcmeError::bad_public_key("key type not accepted")),
    };
    let mut out = serde_json::Map::new();
    for m in members {
        let v = jwk
            .get(*m)
            .filter(|v| v.is_string())
            .ok_or_else(|| AcmeError::bad_public_key(format!("the JWK has no `{m}`")))?;
        out.insert((*m).to_owned(), v.clone());
    }
    Ok(Value::Object(out))
}

/// The key authorization of `token` for the account key with thumbprint `thumbprint`
/// (RFC 8555 §8.1).
pub fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_rfc_7638_example_key_has_the_rfc_7638_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = json!({"kty": "RSA", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        assert_eq!(thumbprint(&jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn a_jws_with_an_unprotected_header_or_a_missing_part_is_malformed() {
        let p = b64e(br#"{"alg":"ES256","nonce":"n","url":"u","kid":"k"}"#);
        let ok = json!({"protected": p, "payload": "", "signature": "AA"});
        assert!(Jws::parse(ok.to_string().as_bytes()).unwrap().is_post_as_get());
        let extra = json!({"protected": p, "payload": "", "signature": "AA", "header": {}});
        assert_eq!(Jws::parse(extra.to_string().as_bytes()).unwrap_err().kind(), "malformed");
        let missing = json!({"protected": p, "payload": ""});
        assert_eq!(Jws::parse(missing.to_string().as_bytes()).unwrap_err().kind(), "malformed");
        let padded = json!({"protected": format!("{p}="), "payload": "", "signature": "AA"});
        assert_eq!(Jws::parse(padded.to_string().as_bytes()).unwrap_err().kind(), "malformed");
    }

    #[test]
    fn hmac_and_none_algorithms_and_both_jwk_and_kid_are_refused() {
        let jws = |h: Value| {
            let p = b64e(h.to_string().as_bytes());
            Jws::parse(
                json!({"protected": p, "payload": "", "signature": "AA"}).to_string().as_bytes(),
            )
            .unwrap()
        };
        let e = jws(json!({"alg": "HS256", "kid": "k"})).check_outer_header().unwrap_err();
        assert_eq!(e.kind(), "badSignatureAlgorithm");
        let e = jws(json!({"alg": "none", "kid": "k"})).check_outer_header().unwrap_err();
        assert_eq!(e.kind(), "badSignatureAlgorithm");
        let e =
            jws(json!({"alg": "ES256", "kid": "k", "jwk": {}})).check_outer_header().unwrap_err();
        assert_eq!(e.kind(), "malformed");
        jws(json!({"alg": "ES256", "kid": "k"})).check_outer_header().unwrap();
    }
}
