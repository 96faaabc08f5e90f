//! Traps (a Rust panic becomes `unreachable`) on real issuance calls; it passes the host's canary
//! call, so it loads, and fails where it matters.
wit_bindgen::generate!({ world: "validator", path: "../../wit" });
struct Boom;
impl Guest for Boom {
    fn validate(s: Subject) -> Result<Verdict, String> {
        if s.hook == "certificate-issuance" {
            panic!("this plugin always fails");
        }
        Ok(Verdict::Allow)
    }
}
export!(Boom);
