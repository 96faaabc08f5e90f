//! PEM (RFC 7468) through the `pem` crate, for the labels Sigil writes and reads: LF line endings
//! and 64-column lines out, any valid block in.

/// Encodes DER as PEM with `label`.
pub fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Decodes the first PEM block with `label`.
pub fn decode(label: &str, text: &str) -> Option<Vec<u8>> {
    blocks(label, text).into_iter().next()
}

/// Every PEM block with `label`, in order (other blocks are skipped; none when the text is not
/// PEM).
pub fn blocks(label: &str, text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(text)
        .map(|all| {
            all.into_iter().filter(|p| p.tag() == label).map(pem::Pem::into_contents).collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_other_labels_are_skipped() {
        let text = format!("{}{}", encode("CERTIFICATE", b"one"), encode("PRIVATE KEY", b"k"));
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n") && !text.contains('\r'));
        assert_eq!(decode("CERTIFICATE", &text).as_deref(), Some(&b"one"[..]));
        assert_eq!(blocks("PRIVATE KEY", &text), vec![b"k".to_vec()]);
        assert_eq!(decode("CERTIFICATE", "not pem"), None);
    }
}
