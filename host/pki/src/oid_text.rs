//! Dotted text of the OIDs every issuance reads (name attributes, extensions, curves, usages),
//! found by their DER bytes in a table. asn1-rs formats each arc of an OID through big-number
//! arithmetic: about 2% of an issuance's CPU went to the dozen OIDs of a request and the
//! certificate read back from it.

use std::sync::LazyLock;

use x509_parser::der_parser::oid::Oid;

/// The OIDs looked up rather than formatted: every one Sigil's own profiles put in a request or
/// a certificate.
const KNOWN: &[&str] = &[
    // Name attributes.
    "2.5.4.3",
    "2.5.4.10",
    "2.5.4.11",
    "2.5.4.6",
    "2.5.4.8",
    "2.5.4.7",
    "2.5.4.5",
    "2.5.4.4",
    "2.5.4.42",
    "1.2.840.113549.1.9.1",
    "0.9.2342.19200300.100.1.25",
    "0.9.2342.19200300.100.1.1",
    // Extensions.
    "2.5.29.14",
    "2.5.29.15",
    "2.5.29.17",
    "2.5.29.19",
    "2.5.29.31",
    "2.5.29.32",
    "2.5.29.35",
    "2.5.29.37",
    "1.3.6.1.5.5.7.1.1",
    // Curves.
    "1.2.840.10045.3.1.7",
    "1.3.132.0.34",
];

/// (DER content bytes, dotted text) of [`KNOWN`], made once from the text itself so the two
/// cannot disagree.
static TABLE: LazyLock<Vec<(Vec<u8>, &'static str)>> = LazyLock::new(|| {
    KNOWN
        .iter()
        .filter_map(|text| {
            let oid: Oid<'static> = text.parse().ok()?;
            Some((oid.as_bytes().to_vec(), *text))
        })
        .collect()
});

/// `oid` as dotted decimal text, as `Oid::to_id_string` writes it.
pub fn dotted(oid: &Oid<'_>) -> String {
    let der = oid.as_bytes();
    match TABLE.iter().find(|(bytes, _)| bytes.as_slice() == der) {
        Some((_, text)) => (*text).to_owned(),
        None => oid.to_id_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_oid_is_in_the_table_and_reads_as_asn1_rs_writes_it() {
        assert_eq!(TABLE.len(), KNOWN.len(), "an entry of KNOWN does not parse as an OID");
        for text in KNOWN {
            let oid: Oid<'static> = text.parse().unwrap();
            assert_eq!(dotted(&oid), oid.to_id_string());
            assert_eq!(dotted(&oid), *text);
        }
    }

    #[test]
    fn an_oid_outside_the_table_is_formatted() {
        for text in ["1.2.3.4.5", "2.5.29.9999", "1.3.6.1.4.1.311.20.2.3"] {
            let oid: Oid<'static> = text.parse().unwrap();
            assert_eq!(dotted(&oid), text);
        }
    }
}
