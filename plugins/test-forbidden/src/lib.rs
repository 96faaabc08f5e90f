//! Reads the clock, a capability its configuration does not grant: the host must refuse it at
//! load and say which interface was missing.
wit_bindgen::generate!({ world: "validator", path: "../../wit" });
use sigil::plugin::clock;
struct Peek;
impl Guest for Peek {
    fn validate(_s: Subject) -> Result<Verdict, String> {
        if clock::now_ms() == 0 {
            return Err("time stopped".into());
        }
        Ok(Verdict::Allow)
    }
}
export!(Peek);
