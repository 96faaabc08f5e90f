//! People (token holders and certificate subjects) with extended attributes, and the custom
//! field definitions those attributes are validated against on every write.

use crate::ErrorCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{CoreError, Result};

/// Most custom field definitions.
pub const MAX_FIELDS: usize = 200;
/// Longest attribute value, characters.
pub const MAX_VALUE: usize = 4096;

/// The type of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Text.
    String,
    /// Whole number.
    Integer,
    /// true or false.
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// An e-mail address.
    Email,
}

/// A custom field definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomField {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Attribute key: a lowercase letter, then letters, digits or `_` (at most 64).
    pub name: String,
    /// Label for forms.
    pub label: String,
    /// What it holds.
    pub description: String,
    /// Type.
    pub field_type: FieldType,
    /// Every person must have it.
    pub required: bool,
    /// Regular expression the whole value must match (string fields).
    pub pattern: Option<String>,
    /// The value must be one of these (compared as text).
    pub allowed_values: Vec<String>,
    /// Shortest value, characters (string fields).
    pub min_length: Option<u32>,
    /// Longest value, characters (string fields).
    pub max_length: Option<u32>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// The registration office the person belongs to.
    pub office_id: Uuid,
    /// Identifier in the source system (employee number, …); unique.
    pub external_id: Option<String>,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// Extended attributes, validated against the custom field definitions.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Why an attribute is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The attribute.
    pub field: String,
    /// Stable code: `unknown_attribute`, `required`, `wrong_type`, `too_short`, `too_long`,
    /// `pattern_mismatch`, `not_allowed`, or `plugin` for a validator plugin's reason.
    pub code: String,
    /// Explanation.
    pub message: String,
}

fn err(field: &str, code: &str, message: String) -> FieldError {
    FieldError { field: field.to_owned(), code: code.to_owned(), message }
}

/// Validates a custom field name.
pub fn validate_field_name(s: &str) -> Result<String> {
    let mut chars = s.chars();
    let ok = s.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(CoreError::invalid(
            ErrorCode::InvalidName,
            "a field name is a lowercase letter followed by lowercase letters, digits or `_` (at most 64)",
        ));
    }
    Ok(s.to_owned())
}

impl CustomField {
    /// Checks the definition itself (a pattern that compiles, sane lengths).
    pub fn check(&self) -> Result<()> {
        if let Some(p) = &self.pattern {
            if p.len() > 1000 {
                return Err(CoreError::invalid(
                    ErrorCode::InvalidPattern,
                    "a pattern is at most 1000 characters",
                ));
            }
            regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                CoreError::invalid(
                    ErrorCode::InvalidPattern,
                    format!("`{p}` is not a regular expression: {e}"),
                )
            })?;
            if self.field_type != FieldType::String {
                return Err(CoreError::invalid(
                    ErrorCode::InvalidPattern,
                    "only string fields take a pattern",
                ));
            }
        }
        if let (Some(a), Some(b)) = (self.min_length, self.max_length)
            && a > b
        {
            return Err(CoreError::invalid(
                ErrorCode::InvalidLength,
                "min_length is greater than max_length",
            ));
        }
        if self.max_length.is_some_and(|m| m as usize > MAX_VALUE) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidLength,
                format!("max_length is at most {MAX_VALUE}"),
            ));
        }
        if self.allowed_values.len() > 500 {
            return Err(CoreError::invalid(
                ErrorCode::InvalidAllowedValues,
                "at most 500 allowed values",
            ));
        }
        Ok(())
    }

    /// The errors of one value of this field.
    pub fn value_errors(&self, v: &serde_json::Value) -> Vec<FieldError> {
        use serde_json::Value;
        let f = self.name.as_str();
        let text = match (self.field_type, v) {
            (FieldType::String, Value::String(s)) => s.clone(),
            (FieldType::Integer, Value::Number(n)) if n.is_i64() => n.to_string(),
            (FieldType::Boolean, Value::Bool(b)) => b.to_string(),
            (FieldType::Date, Value::String(s)) => {
                let fmt = time::macros::format_description!("[year]-[month]-[day]");
                if time::Date::parse(s, &fmt).is_err() {
                    return vec![err(f, "wrong_type", format!("`{f}` must be a date YYYY-MM-DD"))];
                }
                s.clone()
            }
            (FieldType::Email, Value::String(s)) => {
                if crate::access::operator::validate_email(s).is_err() {
                    return vec![err(f, "wrong_type", format!("`{f}` must be an e-mail address"))];
                }
                s.clone()
            }
            (t, _) => {
                let t = serde_json::to_value(t).unwrap_or_default();
                return vec![err(
                    f,
                    "wrong_type",
                    format!("`{f}` must be of type {}", t.as_str().unwrap_or("?")),
                )];
            }
        };
        let mut out = Vec::new();
        let n = text.chars().count();
        if n > MAX_VALUE {
            out.push(err(f, "too_long", format!("`{f}` is longer than {MAX_VALUE} characters")));
        }
        if let Some(min) = self.min_length
            && n < min as usize
        {
            out.push(err(f, "too_short", format!("`{f}` needs at least {min} characters")));
        }
        if let Some(max) = self.max_length
            && n > max as usize
        {
            out.push(err(f, "too_long", format!("`{f}` takes at most {max} characters")));
        }
        if let Some(p) = &self.pattern
            && let Ok(re) = regex::Regex::new(&format!("^(?:{p})$"))
            && !re.is_match(&text)
        {
            out.push(err(f, "pattern_mismatch", format!("`{f}` must match `{p}`")));
        }
        if !self.allowed_values.is_empty() && !self.allowed_values.contains(&text) {
            out.push(err(
                f,
                "not_allowed",
                format!("`{f}` must be one of {}", self.allowed_values.join(", ")),
            ));
        }
        out
    }
}

/// Validates a whole attribute set against `defs`: unknown keys, missing required fields, and
/// each value's type and rules.
pub fn validate_attributes(
    defs: &[CustomField],
    attrs: &serde_json::Map<String, serde_json::Value>,
) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        match defs.iter().find(|d| &d.name == k) {
            None => out.push(err(
                k,
                "unknown_attribute",
                format!("`{k}` is not a custom field (see GET /api/v1/custom-fields)"),
            )),
            Some(d) => out.extend(d.value_errors(v)),
        }
    }
    for d in defs.iter().filter(|d| d.required) {
        if !attrs.contains_key(&d.name) {
            out.push(err(&d.name, "required", format!("`{}` is required", d.name)));
        }
    }
    out
}

/// Checks a person's standard fields.
pub fn check_person(p: &Person) -> Result<()> {
    let name_ok = |s: &str| {
        !s.trim().is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control)
    };
    if !name_ok(&p.given_name) || !name_ok(&p.family_name) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidName,
            "given_name and family_name are 1 to 200 characters without control characters",
        ));
    }
    if let Some(e) = &p.email {
        crate::access::operator::validate_email(e)?;
    }
    if let Some(x) = &p.external_id
        && (x.is_empty() || x.len() > 128 || x.chars().any(char::is_control))
    {
        return Err(CoreError::invalid(
            ErrorCode::InvalidExternalId,
            "external_id is 1 to 128 characters",
        ));
    }
    if let Some(ph) = &p.phone
        && (ph.len() > 50 || !ph.chars().all(|c| c.is_ascii_digit() || " +-()./".contains(c)))
    {
        return Err(CoreError::invalid(
            ErrorCode::InvalidPhone,
            "phone is digits, spaces and + - ( ) . /",
        ));
    }
    Ok(())
}

/// Filters of the people list.
#[derive(Debug, Clone, Default)]
pub struct PersonFilter {
    /// In this office.
    pub office_id: Option<Uuid>,
    /// Family name contains this.
    pub q: Option<String>,
    /// Exactly this source-system id.
    pub external_id: Option<String>,
    /// Exactly this e-mail (case-insensitive).
    pub email: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, t: FieldType) -> CustomField {
        CustomField {
            id: Uuid::nil(),
            name: name.into(),
            label: name.into(),
            description: String::new(),
            field_type: t,
            required: false,
            pattern: None,
            allowed_values: vec![],
            min_length: None,
            max_length: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn attributes_are_checked_for_type_rules_presence_and_known_names() {
        let mut badge = field("badge", FieldType::String);
        badge.pattern = Some("[A-Z]{2}[0-9]{4}".into());
        badge.required = true;
        let mut level = field("level", FieldType::String);
        level.allowed_values = vec!["low".into(), "high".into()];
        let born = field("born", FieldType::Date);
        let floor = field("floor", FieldType::Integer);
        let defs = vec![badge, level, born, floor];
        let ok = serde_json::json!({"badge": "AB1234", "level": "high", "born": "1990-02-28", "floor": 3});
        assert!(validate_attributes(&defs, ok.as_object().unwrap()).is_empty());
        let bad = serde_json::json!({"badge": "ab12", "level": "mid", "born": "1990-02-30", "floor": "3", "x": 1});
        let codes: Vec<String> = validate_attributes(&defs, bad.as_object().unwrap())
            .into_iter()
            .map(|e| format!("{}:{}", e.field, e.code))
            .collect();
        assert_eq!(
            codes,
            [
                "badge:pattern_mismatch",
                "born:wrong_type",
                "floor:wrong_type",
                "level:not_allowed",
                "x:unknown_attribute"
            ]
        );
        let missing = serde_json::json!({});
        assert_eq!(validate_attributes(&defs, missing.as_object().unwrap())[0].code, "required");
    }

    #[test]
    fn a_definition_with_a_broken_pattern_is_refused() {
        let mut f = field("x", FieldType::String);
        f.pattern = Some("(".into());
        assert_eq!(f.check().unwrap_err().code(), "invalid_pattern");
        assert!(validate_field_name("employee_no").is_ok());
        assert!(validate_field_name("Employee").is_err());
    }
}
