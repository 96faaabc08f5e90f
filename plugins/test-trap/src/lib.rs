//! Traps (a Rust panic becomes `unreachable`).
wit_bindgen::generate!({ world: "validator", path: "../../wit" });
struct Boom;
impl Guest for Boom {
    fn validate(s: Subject) -> Result<Verdict, String> {
        if s.hook != "never" {
            panic!("this plugin always fails");
        }
        Ok(Verdict::Allow)
    }
}
export!(Boom);
