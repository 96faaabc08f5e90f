//! Allocates without bound: the host must stop it at its memory limit.
wit_bindgen::generate!({ world: "validator", path: "../../wit" });
struct Bomb;
impl Guest for Bomb {
    fn validate(_s: Subject) -> Result<Verdict, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            if hoard.len() == usize::MAX {
                return Ok(Verdict::Allow);
            }
        }
    }
}
export!(Bomb);
