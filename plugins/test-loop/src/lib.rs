//! Never returns: the host must stop it at its deadline.
wit_bindgen::generate!({ world: "validator", path: "../../wit" });
struct Spin;
impl Guest for Spin {
    fn validate(s: Subject) -> Result<Verdict, String> {
        let mut n: u64 = s.json.len() as u64;
        loop {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1);
            if n == 42 {
                return Ok(Verdict::Allow);
            }
        }
    }
}
export!(Spin);
