//! Audit export files (JSON, CSV, XML) and their detached signatures.
//!
//! Every format carries every stored field, hashes included, so an unfiltered export can be
//! re-verified as a chain offline. The detached signature covers the exact bytes of the file.

use crate::ErrorCode;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::audit::{AuditCrypto, AuditEvent, SignatureCheck, from_unix_micros, unix_micros};
use crate::error::{CoreError, Result};

/// Format identifier written into JSON and XML exports.
pub const EXPORT_FORMAT_ID: &str = "sigil-audit-export-v1";

/// Export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// CSV with a header row.
    Csv,
    /// JSON document.
    Json,
    /// XML document.
    Xml,
}

impl ExportFormat {
    /// Parses `csv`, `json` or `xml`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            "xml" => Ok(Self::Xml),
            _ => Err(CoreError::invalid(
                ErrorCode::InvalidFormat,
                format!("format must be csv, json or xml, got `{s}`"),
            )),
        }
    }

    /// Media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::Xml => "application/xml",
        }
    }
}

const COLUMNS: [&str; 17] = [
    "seq",
    "id",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_name",
    "api_key_id",
    "operator_id",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "request_id",
    "client_ip",
    "details",
    "prev_hash",
    "hash",
];

fn rfc3339(us: i64) -> String {
    from_unix_micros(us).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn row(e: &AuditEvent) -> [String; 17] {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        e.seq.to_string(),
        e.id.to_string(),
        rfc3339(e.occurred_at_us),
        e.actor_kind.clone(),
        e.actor_id.clone(),
        e.actor_name.clone(),
        o(&e.api_key_id),
        o(&e.operator_id),
        e.action.clone(),
        e.object_type.clone(),
        e.object_id.clone(),
        e.outcome.clone(),
        o(&e.request_id),
        o(&e.client_ip),
        e.details.clone(),
        e.prev_hash.clone(),
        e.hash.clone(),
    ]
}

/// A CSV cell a spreadsheet will not run: a value that begins like a formula (`=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading `'` (OWASP's advice). The JSON export, which
/// verification reads, keeps every value as recorded.
fn csv_cell(v: &str) -> std::borrow::Cow<'_, str> {
    match v.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{v}").into(),
        _ => v.into(),
    }
}

/// Text XML 1.0 can carry: the markup characters as entities, and control characters other than
/// tab, newline and carriage return (which no parser accepts, even escaped) as `\u{…}`.
fn xml_text(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// The JSON export document.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct JsonExport {
    /// Always [`EXPORT_FORMAT_ID`].
    pub format: String,
    /// Export time, RFC 3339.
    pub exported_at: String,
    /// The events, as stored.
    pub events: Vec<AuditEvent>,
}

/// Encodes `events` in `format`.
pub fn encode(format: ExportFormat, events: &[AuditEvent], now: OffsetDateTime) -> Result<Vec<u8>> {
    let exported_at = rfc3339(unix_micros(now));
    match format {
        ExportFormat::Json => serde_json::to_vec_pretty(&JsonExport {
            format: EXPORT_FORMAT_ID.into(),
            exported_at,
            events: events.to_vec(),
        })
        .map_err(|e| CoreError::Internal(e.to_string())),
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let io = |e: csv::Error| CoreError::Internal(e.to_string());
            w.write_record(COLUMNS).map_err(io)?;
            for e in events {
                w.write_record(row(e).iter().map(|c| csv_cell(c).into_owned())).map_err(io)?;
            }
            w.into_inner().map_err(|e| CoreError::Internal(e.to_string()))
        }
        ExportFormat::Xml => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            let _ = writeln!(
                s,
                "<audit-export format=\"{EXPORT_FORMAT_ID}\" exported-at=\"{exported_at}\" count=\"{}\">",
                events.len()
            );
            for e in events {
                let _ = writeln!(s, "  <event seq=\"{}\">", e.seq);
                for (name, value) in COLUMNS.iter().zip(row(e)).skip(1) {
                    let _ = writeln!(s, "    <{name}>{}</{name}>", xml_text(&value));
                }
                s.push_str("  </event>\n");
            }
            s.push_str("</audit-export>\n");
            Ok(s.into_bytes())
        }
    }
}

/// Parses a JSON export back into events.
pub fn decode_json(bytes: &[u8]) -> Result<Vec<AuditEvent>> {
    let doc: JsonExport = serde_json::from_slice(bytes).map_err(|e| {
        CoreError::invalid(ErrorCode::InvalidExport, format!("not a Sigil JSON export: {e}"))
    })?;
    if doc.format != EXPORT_FORMAT_ID {
        return Err(CoreError::invalid(
            ErrorCode::InvalidExport,
            format!("unknown format `{}`", doc.format),
        ));
    }
    Ok(doc.events)
}

/// A detached signature over an export file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ExportSignature {
    /// `ecdsa-p256-sha256`.
    pub algorithm: String,
    /// Audit key id.
    pub key_id: String,
    /// The audit public key (SubjectPublicKeyInfo PEM), for convenience; trust it only if it
    /// matches a key you already trust.
    pub public_key_pem: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Signing time, RFC 3339.
    pub signed_at: String,
    /// Base64 DER signature over [`ExportSignature::message`].
    pub signature: String,
}

impl ExportSignature {
    /// The signed bytes.
    pub fn message(sha256: &str, signed_at: &str, key_id: &str) -> Vec<u8> {
        format!("{EXPORT_FORMAT_ID}\n{sha256}\n{signed_at}\n{key_id}\n").into_bytes()
    }

    /// Signs `body`.
    pub fn sign(body: &[u8], now: OffsetDateTime, crypto: &dyn AuditCrypto) -> Result<Self> {
        let sha256 = hex::encode(Sha256::digest(body));
        let signed_at = rfc3339(unix_micros(now));
        let key_id = crypto.key_id().to_owned();
        let signature = crypto.sign(&Self::message(&sha256, &signed_at, &key_id))?;
        Ok(Self {
            algorithm: "ecdsa-p256-sha256".into(),
            key_id,
            public_key_pem: crypto.public_key_pem().to_owned(),
            sha256,
            signed_at,
            signature,
        })
    }

    /// Checks the signature against `body` with `keys`. Returns a description of the failure.
    pub fn verify(
        &self,
        body: &[u8],
        keys: &dyn SignatureCheck,
    ) -> std::result::Result<(), String> {
        let digest = hex::encode(Sha256::digest(body));
        if digest != self.sha256 {
            return Err("the file does not match the signed digest".into());
        }
        let msg = Self::message(&self.sha256, &self.signed_at, &self.key_id);
        if !keys.verify(&self.key_id, &msg, &self.signature) {
            return Err(format!("the signature does not verify with audit key {}", self.key_id));
        }
        Ok(())
    }

    /// The signature bytes, decoded.
    pub fn signature_der(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.signature).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::authz::Principal;
    use crate::audit::{AuditAction, GENESIS_HASH, NewAuditEvent};

    fn events() -> Vec<AuditEvent> {
        let e = NewAuditEvent::new(&Principal::system(), AuditAction::PersonCreate, "t", "x<&>\"y")
            .details(serde_json::json!({"k": "v,\n"}))
            .seal(1, OffsetDateTime::UNIX_EPOCH, GENESIS_HASH);
        vec![e]
    }

    #[test]
    fn json_exports_round_trip_exactly() {
        let ev = events();
        let body = encode(ExportFormat::Json, &ev, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(decode_json(&body).unwrap(), ev);
    }

    #[test]
    fn csv_and_xml_escape_their_special_characters() {
        let ev = events();
        let csv =
            String::from_utf8(encode(ExportFormat::Csv, &ev, OffsetDateTime::UNIX_EPOCH).unwrap())
                .unwrap();
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(&rec[10], "x<&>\"y");
        assert_eq!(&rec[16], ev[0].hash);
        let xml =
            String::from_utf8(encode(ExportFormat::Xml, &ev, OffsetDateTime::UNIX_EPOCH).unwrap())
                .unwrap();
        assert!(xml.contains("<object_id>x&lt;&amp;&gt;&quot;y</object_id>"), "{xml}");
    }

    #[test]
    fn exports_neutralise_formulas_and_control_characters_from_anonymous_input() {
        let mut ev = events();
        ev[0].actor_name = "=HYPERLINK(\"http://evil\")".into();
        ev[0].object_id = "bad\u{1b}[31m\u{0}name".into();
        let csv =
            String::from_utf8(encode(ExportFormat::Csv, &ev, OffsetDateTime::UNIX_EPOCH).unwrap())
                .unwrap();
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(&rec[5], "'=HYPERLINK(\"http://evil\")");
        let xml =
            String::from_utf8(encode(ExportFormat::Xml, &ev, OffsetDateTime::UNIX_EPOCH).unwrap())
                .unwrap();
        assert!(!xml.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')));
        assert!(xml.contains("bad\\u{001b}[31m\\u{0000}name"), "{xml}");
        // Still well-formed XML.
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed: {e}"),
            }
        }
    }
}
