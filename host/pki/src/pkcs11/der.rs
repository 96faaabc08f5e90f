//! The DER a token needs or gives: RSA sizes, curve OIDs, DigestInfo prefixes, r‖s ECDSA
//! signatures turned into DER, and public keys read back as SubjectPublicKeyInfo.

use cryptoki::object::{Attribute, AttributeType};
use sigil_core::certs::KeyType;
use sigil_core::signing::credential::HashAlgo;

pub(super) fn rsa_bits(k: KeyType) -> u32 {
    match k {
        KeyType::Rsa3072 => 3072,
        KeyType::Rsa4096 => 4096,
        _ => 2048,
    }
}

/// The DER OID of a named curve (CKA_EC_PARAMS).
pub(super) fn curve_oid_der(k: KeyType) -> &'static [u8] {
    match k {
        KeyType::P384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
        _ => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    }
}

/// The DER DigestInfo prefix of `hash` (RFC 8017 §9.2 note 1).
pub(super) fn digest_info_prefix(hash: HashAlgo) -> &'static [u8] {
    match hash {
        HashAlgo::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlgo::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlgo::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// r‖s (each half the length) as an ECDSA-Sig-Value DER.
pub(super) fn ecdsa_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let r = openssl::bn::BigNum::from_slice(r).ok()?;
    let s = openssl::bn::BigNum::from_slice(s).ok()?;
    openssl::ecdsa::EcdsaSig::from_private_components(r, s).ok()?.to_der().ok()
}

/// The SPKI DER of a public key read from the token.
pub(super) fn spki_of(k: KeyType, attrs: &[Attribute]) -> Result<Vec<u8>, String> {
    use openssl::bn::BigNum;
    use openssl::pkey::PKey;
    let bytes = |t: AttributeType| {
        attrs.iter().find_map(|a| match (a, t) {
            (Attribute::EcPoint(v), AttributeType::EcPoint)
            | (Attribute::Modulus(v), AttributeType::Modulus)
            | (Attribute::PublicExponent(v), AttributeType::PublicExponent) => Some(v.clone()),
            _ => None,
        })
    };
    let bad = |e: openssl::error::ErrorStack| e.to_string();
    let pkey = match k {
        KeyType::P256 | KeyType::P384 => {
            let point = bytes(AttributeType::EcPoint).ok_or("no CKA_EC_POINT")?;
            // CKA_EC_POINT is a DER OCTET STRING around the uncompressed point.
            let point = match point.as_slice() {
                [0x04, len, rest @ ..] if usize::from(*len) == rest.len() => rest.to_vec(),
                [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => rest.to_vec(),
                _ => point,
            };
            let nid = if k == KeyType::P384 {
                openssl::nid::Nid::SECP384R1
            } else {
                openssl::nid::Nid::X9_62_PRIME256V1
            };
            let group = openssl::ec::EcGroup::from_curve_name(nid).map_err(bad)?;
            let mut ctx = openssl::bn::BigNumContext::new().map_err(bad)?;
            let p = openssl::ec::EcPoint::from_bytes(&group, &point, &mut ctx).map_err(bad)?;
            PKey::from_ec_key(openssl::ec::EcKey::from_public_key(&group, &p).map_err(bad)?)
                .map_err(bad)?
        }
        _ => {
            let n = BigNum::from_slice(&bytes(AttributeType::Modulus).ok_or("no CKA_MODULUS")?)
                .map_err(bad)?;
            let e = BigNum::from_slice(
                &bytes(AttributeType::PublicExponent).ok_or("no CKA_PUBLIC_EXPONENT")?,
            )
            .map_err(bad)?;
            PKey::from_rsa(openssl::rsa::Rsa::from_public_components(n, e).map_err(bad)?)
                .map_err(bad)?
        }
    };
    pkey.public_key_to_der().map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_ecdsa_signature_becomes_der_and_malformed_ones_are_refused() {
        let mut raw = vec![0u8; 31];
        raw.insert(0, 0x80); // r with its high bit set needs a leading zero in DER
        raw.extend([0x01; 32]);
        let der = ecdsa_der(&raw).unwrap();
        let back = openssl::ecdsa::EcdsaSig::from_der(&der).unwrap();
        assert_eq!(back.r().to_vec_padded(32).unwrap(), raw[..32]);
        assert_eq!(back.s().to_vec_padded(32).unwrap(), raw[32..]);
        assert!(ecdsa_der(&[]).is_none() && ecdsa_der(&[1, 2, 3]).is_none());
    }

    #[test]
    fn digest_info_prefixes_announce_their_hash_and_length() {
        for (h, oid_last, len) in [
            (HashAlgo::Sha256, 0x01, 32),
            (HashAlgo::Sha384, 0x02, 48),
            (HashAlgo::Sha512, 0x03, 64),
        ] {
            let p = digest_info_prefix(h);
            // SEQUENCE length covers the prefix's rest and the digest; the OCTET STRING the digest.
            assert_eq!(usize::from(p[1]), p.len() - 2 + len);
            assert_eq!((p[14], p[p.len() - 1]), (oid_last, u8::try_from(len).unwrap()));
        }
    }
}
