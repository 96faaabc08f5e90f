//! PEM (RFC 7468) for the labels Sigil writes and reads: LF line endings and 64-column lines
//! out (sigil-core's encoder), any valid block in (the `pem` crate), with a faster road for the
//! plain form of one block ([`plain_block`]).

use base64::Engine as _;

pub use sigil_core::pem::encode;

/// The label and DER of `text` when it is one block in the plain form: `-----BEGIN label-----`,
/// lines of base64 (LF or CRLF endings, no blank line, no header), `-----END label-----`, with
/// only whitespace around. `None` for anything else, for the caller to give to the `pem` crate.
///
/// Every issuance request carries its CSR as PEM, and the `pem` crate's reading (a byte-wise
/// scan, then the base64 gathered a character at a time) was about 1.5% of the request threads'
/// time. This is a shorter road to the same answer, not another reading of PEM: where it answers,
/// the `pem` crate answers the same (a test holds the two together over mutated inputs), and
/// where the crate would read the text differently (headers, several blocks, spaces in the
/// base64) it declines.
pub fn plain_block(text: &str) -> Option<(&str, Vec<u8>)> {
    let t = text.trim_matches([' ', '\t', '\r', '\n']);
    let (label, rest) = t.strip_prefix("-----BEGIN ")?.split_once("-----")?;
    // RFC 7468 labels Sigil reads are capitals, digits and spaces: no hyphen, so the first
    // `-----` ends the label, as it does for the crate.
    if label.is_empty()
        || !label.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
    {
        return None;
    }
    let (body, end) = rest.split_once("-----END ")?;
    if end.strip_suffix("-----")? != label {
        return None;
    }
    // Lines of base64 gathered whole; a blank line inside (the crate would read what precedes
    // it as headers): declined. Any other character (a space, a lone CR) is left in for the
    // decoder, which refuses every byte outside the alphabet, and so declined too.
    let body = body.trim_start_matches([' ', '\t', '\r', '\n']);
    let mut b64 = Vec::with_capacity(body.len());
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let last = lines.peek().is_none();
        if line.is_empty() && !last {
            return None;
        }
        b64.extend_from_slice(line.as_bytes());
    }
    let der = base64::engine::general_purpose::STANDARD.decode(&b64).ok()?;
    Some((label, der))
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

    #[test]
    fn the_plain_road_reads_a_block_as_the_pem_crate_does_or_declines() {
        let der: Vec<u8> = (0..700u32).map(|i| (i * 31 + 7) as u8).collect();
        let lf = encode("CERTIFICATE REQUEST", &der);
        let crlf = lf.replace('\n', "\r\n");
        let wide = format!(
            "-----BEGIN NEW CERTIFICATE REQUEST-----\n{}\n-----END NEW CERTIFICATE REQUEST-----",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        for (text, label) in [
            (lf.as_str(), "CERTIFICATE REQUEST"),
            (crlf.as_str(), "CERTIFICATE REQUEST"),
            (wide.as_str(), "NEW CERTIFICATE REQUEST"),
        ] {
            let padded = format!("\n  {text}\r\n\n");
            for t in [text, padded.as_str()] {
                assert_eq!(plain_block(t), Some((label, der.clone())));
                let theirs = pem::parse(t).unwrap();
                assert_eq!((theirs.tag(), theirs.contents()), (label, der.as_slice()));
            }
        }
        // Forms the crate reads otherwise, or not at all: declined, for the crate to decide.
        let headers = lf.replacen("-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1);
        let spaced = lf.replacen('\n', "\n ", 2);
        let two = format!("{lf}{lf}");
        let other_end = lf.replace("END CERTIFICATE REQUEST", "END CERTIFICATE");
        let blank_before_end = lf.replace("\n-----END", "\n\n-----END");
        let bad_b64 = lf.replacen("-----\n", "-----\n=", 1);
        for t in [&headers, &spaced, &two, &other_end, &blank_before_end, &bad_b64] {
            assert_eq!(plain_block(t), None, "{t}");
        }
        assert!(pem::parse(&headers).is_ok() && pem::parse(&spaced).is_ok());
        assert!(pem::parse(&other_end).is_err() && pem::parse(&blank_before_end).is_err());

        // Mutations of a valid block (a character put in, taken out or changed): wherever the
        // plain road answers, the crate gives the same label and bytes.
        let alphabet = b"-\r\n \tAZaz09+/=:BEGINDX";
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut answered, mut declined) = (0, 0);
        for _ in 0..20_000 {
            let mut b = crlf.as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(b.len());
                match next(3) {
                    0 => b.insert(at, alphabet[next(alphabet.len())]),
                    1 => drop(b.remove(at)),
                    _ => b[at] = alphabet[next(alphabet.len())],
                }
            }
            let t = String::from_utf8(b).unwrap();
            match plain_block(&t) {
                Some((label, got)) => {
                    answered += 1;
                    let theirs = pem::parse(&t).unwrap_or_else(|e| panic!("{e}: {t}"));
                    assert_eq!((theirs.tag(), theirs.contents()), (label, got.as_slice()), "{t}");
                }
                None => declined += 1,
            }
        }
        // Both ways were taken: the test is not vacuous.
        assert!(answered > 1_000 && declined > 1_000, "{answered} answered, {declined} declined");
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
