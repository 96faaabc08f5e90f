//! Completion of person records from external identity sources (HR systems, directories)
//! through identity-source plugins.
//!
//! Sigil sends what it knows of a person; the source answers what it knows. Completion fills
//! the fields the record lacks (or, asked to, replaces those that differ) and writes them
//! through the ordinary person update, so custom-field and validator rules apply and the change
//! is audited as `person.complete` with the source named.

use crate::ErrorCode;
use std::sync::Arc;

use crate::access::authz::{Capability, perm};
use crate::error::{CoreError, Result};
use crate::people::Person;
use crate::people::directory::{PeopleService, PersonInput};
use crate::ports::IdentitySources;
use uuid::Uuid;

/// Standard person fields a source may fill.
const STANDARD: [&str; 5] = ["external_id", "given_name", "family_name", "email", "phone"];
/// Most fields taken from one answer.
const MAX_FIELDS: usize = 200;

/// What a completion did.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The person, as stored after the completion (unchanged for a dry run).
    pub person: Person,
    /// The source asked.
    pub source: String,
    /// Whether the source knew the person.
    pub found: bool,
    /// Fields set (or, for a dry run, that would be set).
    pub completed: Vec<String>,
    /// Fields the source returned that are not person fields (nor defined custom fields).
    pub ignored: Vec<String>,
}

/// Identity source operations.
pub struct IdentityService {
    people: Arc<PeopleService>,
    sources: Arc<dyn IdentitySources>,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService").finish_non_exhaustive()
    }
}

/// What Sigil knows of `p`, as the pairs a source receives.
fn known(p: &Person) -> Vec<(String, String)> {
    let mut out = vec![
        ("given_name".to_owned(), p.given_name.clone()),
        ("family_name".to_owned(), p.family_name.clone()),
    ];
    for (k, v) in [("external_id", &p.external_id), ("email", &p.email), ("phone", &p.phone)] {
        if let Some(v) = v {
            out.push((k.to_owned(), v.clone()));
        }
    }
    for (k, v) in &p.attributes {
        let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        out.push((format!("attributes.{k}"), text));
    }
    out.retain(|(_, v)| !v.is_empty());
    out
}

impl IdentityService {
    /// Wires the service.
    pub fn new(people: Arc<PeopleService>, sources: Arc<dyn IdentitySources>) -> Self {
        Self { people, sources }
    }

    /// Ids of the identity sources in service.
    pub fn sources(&self) -> Vec<String> {
        self.sources.sources()
    }

    /// `source`, or the only source when none is named.
    fn pick(&self, source: Option<String>) -> Result<String> {
        if let Some(s) = source {
            return Ok(s);
        }
        match self.sources.sources().as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(CoreError::invalid(
                ErrorCode::UnknownSource,
                "no identity source is configured",
            )),
            many => Err(CoreError::invalid(
                ErrorCode::SourceRequired,
                format!("name the `source`: one of {}", many.join(", ")),
            )),
        }
    }

    /// Asks a source about someone not (yet) in Sigil, e.g. to pre-fill an enrolment form.
    pub async fn lookup(
        &self,
        _cap: &Capability<perm::PeopleWrite>,
        source: Option<String>,
        known: Vec<(String, String)>,
    ) -> Result<(String, Option<Vec<(String, String)>>)> {
        let source = self.pick(source)?;
        if known.is_empty() || known.len() > MAX_FIELDS {
            return Err(CoreError::invalid(
                ErrorCode::InvalidField,
                format!("`known` holds 1 to {MAX_FIELDS} fields"),
            ));
        }
        let found = self.sources.lookup(&source, &known).await?;
        Ok((source, found.map(|f| f.into_iter().take(MAX_FIELDS).collect())))
    }

    /// Completes person `id` from `source`: fills missing fields, or with `overwrite` also
    /// replaces differing ones; `dry_run` reports without writing.
    pub async fn complete(
        &self,
        cap: &Capability<perm::PeopleWrite>,
        id: Uuid,
        source: Option<String>,
        overwrite: bool,
        dry_run: bool,
    ) -> Result<Completion> {
        // The person first: someone outside the caller's scope is not found, whatever else.
        let before = self.people.visible(cap.principal(), id).await?;
        let source = self.pick(source)?;
        let answer = self.sources.lookup(&source, &known(&before)).await?;
        let Some(fields) = answer else {
            return Ok(Completion {
                person: before,
                source,
                found: false,
                completed: vec![],
                ignored: vec![],
            });
        };
        let mut input = PersonInput::default();
        let (mut completed, mut ignored) = (Vec::new(), Vec::new());
        let mut attrs = serde_json::Map::new();
        for (name, value) in fields.into_iter().take(MAX_FIELDS) {
            let value = value.trim().to_owned();
            if value.is_empty() {
                continue;
            }
            if let Some(attr) = name.strip_prefix("attributes.") {
                let current = before.attributes.get(attr);
                let Some(typed) = self.people.typed_attribute(attr, &value).await? else {
                    ignored.push(name);
                    continue;
                };
                if current == Some(&typed) || (current.is_some() && !overwrite) {
                    continue;
                }
                attrs.insert(attr.to_owned(), typed);
                completed.push(name);
                continue;
            }
            if !STANDARD.contains(&name.as_str()) {
                ignored.push(name);
                continue;
            }
            let current = match name.as_str() {
                "given_name" => Some(before.given_name.clone()).filter(|s| !s.is_empty()),
                "family_name" => Some(before.family_name.clone()).filter(|s| !s.is_empty()),
                "external_id" => before.external_id.clone(),
                "email" => before.email.clone(),
                _ => before.phone.clone(),
            };
            if current.as_deref() == Some(value.as_str()) || (current.is_some() && !overwrite) {
                continue;
            }
            match name.as_str() {
                "given_name" => input.given_name = Some(value),
                "family_name" => input.family_name = Some(value),
                "external_id" => input.external_id = Some(Some(value)),
                "email" => input.email = Some(Some(value)),
                _ => input.phone = Some(Some(value)),
            }
            completed.push(name);
        }
        if !attrs.is_empty() {
            input.attributes = Some(attrs);
        }
        let person = if dry_run || completed.is_empty() {
            before
        } else {
            let mut details = serde_json::Map::new();
            details.insert("source".into(), source.clone().into());
            self.people
                .update_as(cap, id, input, crate::audit::AuditAction::PersonComplete, details)
                .await?
        };
        Ok(Completion { person, source, found: true, completed, ignored })
    }
}
