//! The authorityInfoAccess extension (RFC 5280 §4.2.2.1): where a relying party finds the OCSP
//! responder (id-ad-ocsp) and the issuer's certificate (id-ad-caIssuers). rcgen has no field for
//! it, so its DER is written here.

/// id-ad-ocsp, 1.3.6.1.5.5.7.48.1.
const OCSP: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
/// id-ad-caIssuers, 1.3.6.1.5.5.7.48.2.
const CA_ISSUERS: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
/// The extension's OID arcs.
pub const OID: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 1];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(u8::try_from(n).unwrap_or(0));
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn access(method: &[u8], uri: &str) -> Vec<u8> {
    let mut body = tlv(0x06, method);
    // GeneralName uniformResourceIdentifier: [6] IMPLICIT IA5String.
    body.extend(tlv(0x86, uri.as_bytes()));
    tlv(0x30, &body)
}

/// The extension value: an OCSP responder URL and a caIssuers URL, each when given.
pub fn value(ocsp: Option<&str>, ca_issuers: Option<&str>) -> Option<Vec<u8>> {
    let mut items = Vec::new();
    if let Some(u) = ocsp {
        items.extend(access(&OCSP, u));
    }
    if let Some(u) = ca_issuers {
        items.extend(access(&CA_ISSUERS, u));
    }
    (!items.is_empty()).then(|| tlv(0x30, &items))
}

#[cfg(test)]
mod tests {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;

    #[test]
    fn the_extension_parses_back_with_both_urls_even_when_long() {
        let long = format!("http://pki.example.org/{}", "x".repeat(300));
        let v = super::value(Some("http://pki.example.org/ocsp"), Some(&long)).unwrap();
        let (rest, aia) =
            x509_parser::extensions::AuthorityInfoAccess::from_der(&v).expect("parses");
        assert!(rest.is_empty());
        let uris: Vec<(String, String)> = aia
            .accessdescs
            .iter()
            .map(|d| match d.access_location {
                GeneralName::URI(u) => (d.access_method.to_id_string(), u.to_owned()),
                _ => panic!("not a URI"),
            })
            .collect();
        assert_eq!(
            uris,
            [
                ("1.3.6.1.5.5.7.48.1".to_owned(), "http://pki.example.org/ocsp".to_owned()),
                ("1.3.6.1.5.5.7.48.2".to_owned(), long)
            ]
        );
    }
}
