//! A test double of an external CA (no real CA runs behind it): `info` returns config `ca_pem`,
//! `issue` returns config `leaf_pem` whatever was asked, so tests can hand the host a
//! certificate for the wrong key or from the wrong CA. With `suspension = "yes"` it claims to
//! support holds and accepts them; `revoke` fails when `refuse = "yes"`.

use sigil_plugin_sdk::connector::{
    CaConnector, CertificateRef, ConnectorInfo, IssueRequest, Issued,
};
use sigil_plugin_sdk::{config, pem};

fn cert(key: &str) -> Result<Vec<u8>, String> {
    pem::decode("CERTIFICATE", &config::get(key).ok_or(format!("config `{key}` is missing"))?)
}

struct Double;

impl CaConnector for Double {
    fn info() -> Result<ConnectorInfo, String> {
        Ok(ConnectorInfo {
            name: "test double".into(),
            ca_certificate: cert("ca_pem")?,
            chain: Vec::new(),
            supports_suspension: config::get("suspension").as_deref() == Some("yes"),
        })
    }

    fn issue(_request: IssueRequest) -> Result<Issued, String> {
        Ok(Issued { certificate: cert("leaf_pem")?, chain: Vec::new() })
    }

    fn revoke(_certificate: CertificateRef, _reason: String) -> Result<(), String> {
        match config::get("refuse").as_deref() {
            Some("yes") => Err("refused by configuration".into()),
            _ => Ok(()),
        }
    }

    fn suspend(_certificate: CertificateRef) -> Result<(), String> {
        Ok(())
    }

    fn reactivate(_certificate: CertificateRef) -> Result<(), String> {
        Ok(())
    }
}

sigil_plugin_sdk::export_ca_connector!(Double);
