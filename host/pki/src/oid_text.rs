//! Dotted text of the OIDs every issuance reads (name attributes, extensions, curves, usages),
//! found by their DER bytes in a table. asn1-rs formats each arc of an OID through big-number
//! arithmetic: about 2% of an issuance's CPU went to the dozen OIDs of a request and the
//! certificate read back from it.

use std::sync::LazyLock;

use x509_parser::der_parser::oid::Oid;

/// The name attributes Sigil knows: (dotted OID, short name).
pub(crate) const NAME_ATTRIBUTES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.8", "ST"),
    ("2.5.4.7", "L"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.4", "SN"),
    ("2.5.4.42", "GN"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The OIDs looked up rather than formatted, besides the name attributes
/// ([`NAME_ATTRIBUTES`]): every one Sigil's own profiles put in a request or a
/// certificate.
const KNOWN: &[&str] = &[
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

/// Every OID looked up: the name attributes', then [`KNOWN`].
fn known() -> impl Iterator<Item = &'static str> {
    NAME_ATTRIBUTES.iter().map(|(dotted, _)| *dotted).chain(KNOWN.iter().copied())
}

/// (DER content bytes, dotted text) of every OID of [`known`], made once from the text itself
/// so the two cannot disagree.
static TABLE: LazyLock<Vec<(Vec<u8>, &'static str)>> = LazyLock::new(|| {
    known()
        .filter_map(|text| {
            let oid: Oid<'static> = text.parse().ok()?;
            Some((oid.as_bytes().to_vec(), text))
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
        assert_eq!(TABLE.len(), known().count(), "a known OID does not parse as an OID");
        for text in known() {
            let oid: Oid<'static> = text.parse().unwrap();
            assert_eq!(dotted(&oid), oid.to_id_string());
            assert_eq!(dotted(&oid), text);
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
