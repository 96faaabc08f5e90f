//! PEM (RFC 7468) for the labels Sigil writes and reads: LF line endings and 64-column lines
//! out (sigil-core's encoder), any valid block in (the `pem` crate).

pub use sigil_core::pem::encode;

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

    #[test]
    fn the_encoding_is_the_pem_crates_byte_for_byte() {
        for n in [0, 1, 2, 3, 47, 48, 49, 95, 96, 97, 600, 1234] {
            let der: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let theirs = pem::encode_config(
                &pem::Pem::new("CERTIFICATE", der.clone()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            );
            assert_eq!(encode("CERTIFICATE", &der), theirs, "{n} bytes");
            assert_eq!(decode("CERTIFICATE", &theirs), Some(der));
        }
    }
}
