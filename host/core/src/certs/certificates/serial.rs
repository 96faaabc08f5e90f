//! Serial numbers of the certificates Sigil issues.

use crate::error::{CoreError, Result};

/// Fills `out` with bytes from the operating system's random source, drawn from a per-thread
/// block of 4 KiB fetched at once: one `getrandom` call per serial number was about 0.4% of an
/// issuance's CPU. The bytes are the kernel's CSPRNG output as they come, each handed out once
/// and zeroed as it is taken; a failed fetch is an error, never weaker randomness.
fn random_bytes(out: &mut [u8]) -> Result<()> {
    const BLOCK: usize = 4096;
    thread_local! {
        // (bytes, how many are already handed out)
        static POOL: std::cell::RefCell<(Box<[u8; BLOCK]>, usize)> =
            std::cell::RefCell::new((Box::new([0; BLOCK]), BLOCK));
    }
    POOL.with_borrow_mut(|(block, used)| {
        let mut filled = 0;
        while filled < out.len() {
            if *used == BLOCK {
                getrandom::fill(&mut block[..])
                    .map_err(|e| CoreError::Internal(format!("random source failed: {e}")))?;
                *used = 0;
            }
            let n = (out.len() - filled).min(BLOCK - *used);
            let taken = &mut block[*used..*used + n];
            out[filled..filled + n].copy_from_slice(taken);
            taken.fill(0);
            *used += n;
            filled += n;
        }
        Ok(())
    })
}

/// A new certificate's serial number: 16 bytes, `0x40`, the issue time in milliseconds since the
/// Unix epoch (48 bits, big-endian), then 72 bits of CSPRNG output.
///
/// CA/B Forum BR 7.1 asks for at least 64 unpredictable bits (what defeats chosen-prefix
/// collisions), not for a serial that is random throughout. The time prefix keeps the serial
/// indexes append-only: random serials put every issuance on a different index page, and those
/// pages were about a third of what each group commit wrote to the WAL and checkpointed.
/// The first byte keeps the number positive and without a leading zero, so hex and DER agree.
pub(super) fn new_serial(now: time::OffsetDateTime) -> Result<Vec<u8>> {
    let mut s = [0u8; 16];
    random_bytes(&mut s[7..])?;
    let ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    s[0] = 0x40;
    s[1..7].copy_from_slice(&ms.to_be_bytes()[2..]);
    Ok(s.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn serials_follow_issue_time_and_keep_72_unpredictable_bits() {
        let t = time::macros::datetime!(2026-12-05 10:00:00 UTC);
        let a = new_serial(t).unwrap();
        let b = new_serial(t).unwrap();
        let later = new_serial(t + Duration::milliseconds(1)).unwrap();
        assert_eq!(a.len(), 16);
        assert_eq!(a[0], 0x40, "positive, no leading zero: hex and DER agree");
        // Same millisecond: same prefix, different random tail.
        assert_eq!(a[..7], b[..7]);
        assert_ne!(a[7..], b[7..]);
        let ms = u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap();
        assert_eq!(a[1..7], ms.to_be_bytes()[2..]);
        // Hex order is issue order across milliseconds (what keeps the indexes append-only).
        assert!(hex::encode(&later) > hex::encode(&a).max(hex::encode(&b)));
    }

    #[test]
    fn random_bytes_are_handed_out_once_across_blocks() {
        // 1,000 serials' worth crosses two 4 KiB blocks: no two alike, none left zeroed.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1_000 {
            let mut b = [0u8; 9];
            random_bytes(&mut b).unwrap();
            assert_ne!(b, [0; 9]);
            assert!(seen.insert(b), "a random tail came twice");
        }
        // A request larger than a block is served across refills.
        let mut big = vec![0u8; 10_000];
        random_bytes(&mut big).unwrap();
        assert!(big.chunks(16).all(|c| c.iter().any(|&x| x != 0)));
    }
}
