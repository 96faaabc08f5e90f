//! People and custom fields. Every write of a person validates its standard fields and its
//! extended attributes against the custom field definitions; validator plugins at the `person`
//! and `custom-field` hooks add rules (deny) or take over the built-in ones (override). Audit
//! events name the fields that changed, not their values: personal data stays out of the trail.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use uuid::Uuid;

use crate::access::authz::{Capability, Principal, perm};
use crate::audit::NewAuditEvent;
use crate::certs::NameAttribute;
use crate::error::{CoreError, Result};
use crate::page::{Page, lock_unchanged, record_page};
use crate::people::{
    CustomField, FieldError, FieldType, MAX_FIELDS, Person, PersonFilter, check_person,
    validate_attributes, validate_field_name,
};
use crate::ports::{Clock, PageRequest, ValidationInput, Validators};
use crate::records::{Collection, Filter, Record, Records, conflict_as, scope_offices, select};

type Attributes = serde_json::Map<String, serde_json::Value>;

/// A custom field as a caller defines it.
#[derive(Debug, Clone)]
pub struct FieldInput {
    /// Label.
    pub label: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Type.
    pub field_type: FieldType,
    /// Required.
    pub required: bool,
    /// Pattern (string fields).
    pub pattern: Option<String>,
    /// Allowed values.
    pub allowed_values: Vec<String>,
    /// Shortest value.
    pub min_length: Option<u32>,
    /// Longest value.
    pub max_length: Option<u32>,
}

/// A new person.
#[derive(Debug, Clone, Default)]
pub struct PersonInput {
    /// Office (required on create; moves the person on update).
    pub office_id: Option<Uuid>,
    /// Source-system id (`Some(None)` clears on update).
    pub external_id: Option<Option<String>>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// E-mail (`Some(None)` clears).
    pub email: Option<Option<String>>,
    /// Telephone (`Some(None)` clears).
    pub phone: Option<Option<String>>,
    /// Attributes: all of them on create; a merge patch (`null` removes) on update.
    pub attributes: Option<Attributes>,
}

/// People operations.
pub struct PeopleService {
    store: Arc<dyn Records>,
    clock: Arc<dyn Clock>,
    validators: Arc<dyn Validators>,
}

impl std::fmt::Debug for PeopleService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeopleService").finish_non_exhaustive()
    }
}

fn field_errors(errors: Vec<FieldError>) -> CoreError {
    let detail = errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ");
    CoreError::invalid(ErrorCode::InvalidAttributes, detail)
}

fn clean(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The names of the fields that differ between two people (for the audit trail).
fn changed_fields(a: &Person, b: &Person) -> Vec<String> {
    let mut out = Vec::new();
    let pairs = [
        ("office_id", a.office_id != b.office_id),
        ("external_id", a.external_id != b.external_id),
        ("given_name", a.given_name != b.given_name),
        ("family_name", a.family_name != b.family_name),
        ("email", a.email != b.email),
        ("phone", a.phone != b.phone),
    ];
    out.extend(pairs.iter().filter(|p| p.1).map(|p| p.0.to_owned()));
    let keys: std::collections::BTreeSet<&String> =
        a.attributes.keys().chain(b.attributes.keys()).collect();
    out.extend(
        keys.into_iter()
            .filter(|k| a.attributes.get(*k) != b.attributes.get(*k))
            .map(|k| format!("attributes.{k}")),
    );
    out
}

impl PeopleService {
    /// Wires the service.
    pub fn new(
        store: Arc<dyn Records>,
        clock: Arc<dyn Clock>,
        validators: Arc<dyn Validators>,
    ) -> Self {
        Self { store, clock, validators }
    }

    /// Every custom field definition, by name.
    pub async fn fields(&self, _cap: &Capability<perm::PeopleRead>) -> Result<Vec<CustomField>> {
        self.all_fields().await
    }

    async fn all_fields(&self) -> Result<Vec<CustomField>> {
        let mut v: Vec<CustomField> =
            select(self.store.as_ref(), Filter::all(Collection::CustomFields)).await?;
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    async fn field_by_name(&self, name: &str) -> Result<Option<CustomField>> {
        let filter = Filter::CustomFields { name: Some(name.to_owned()) };
        Ok(select::<CustomField, _>(self.store.as_ref(), filter).await?.into_iter().next())
    }

    /// One definition.
    pub async fn field(
        &self,
        _cap: &Capability<perm::PeopleRead>,
        name: &str,
    ) -> Result<CustomField> {
        self.field_by_name(name).await?.ok_or_else(|| CoreError::not_found("custom_field", name))
    }

    /// Creates or replaces the definition `name` (PUT semantics); returns it and whether it is
    /// new. Existing values are checked against a changed definition at each person's next write.
    pub async fn put_field(
        &self,
        cap: &Capability<perm::CustomFieldsWrite>,
        name: &str,
        input: FieldInput,
    ) -> Result<(CustomField, bool)> {
        let name = validate_field_name(name)?;
        let now = self.clock.now();
        let existing = self.field_by_name(&name).await?;
        let f = CustomField {
            id: existing.as_ref().map_or_else(Uuid::now_v7, |e| e.id),
            label: clean(input.label).unwrap_or_else(|| name.clone()),
            name: name.clone(),
            description: input.description.unwrap_or_default(),
            field_type: input.field_type,
            required: input.required,
            pattern: clean(input.pattern),
            allowed_values: input.allowed_values,
            min_length: input.min_length,
            max_length: input.max_length,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        f.check()?;
        if f.label.chars().count() > 200 || f.description.chars().count() > 2000 {
            return Err(CoreError::invalid(
                ErrorCode::InvalidField,
                "label is at most 200 and description 2000 characters",
            ));
        }
        let mut tx = self.store.begin_records().await?;
        let ev =
            NewAuditEvent::new(cap.principal(), AuditAction::CustomFieldPut, "custom_field", &name)
                .details(serde_json::to_value(&f).unwrap_or_default());
        match &existing {
            Some(e) if *e == CustomField { updated_at: e.updated_at, ..f.clone() } => {
                return Ok((e.clone(), false));
            }
            Some(_) => tx.update_record(f.row()).await?,
            None => {
                if self.store.count_records(&Filter::all(Collection::CustomFields)).await?
                    >= MAX_FIELDS as i64
                {
                    return Err(CoreError::conflict(
                        ErrorCode::TooManyFields,
                        format!("at most {MAX_FIELDS} custom fields"),
                    ));
                }
                tx.insert_record(f.row()).await.map_err(conflict_as(
                    ErrorCode::NameTaken,
                    format!("custom field `{name}` exists"),
                ))?;
            }
        }
        tx.commit(vec![ev], now).await?;
        Ok((f, existing.is_none()))
    }

    /// Deletes a definition; values already stored stay until each person's next write, which
    /// then refuses them as unknown unless removed in the same write.
    pub async fn delete_field(
        &self,
        cap: &Capability<perm::CustomFieldsWrite>,
        name: &str,
    ) -> Result<()> {
        let f = self
            .field_by_name(name)
            .await?
            .ok_or_else(|| CoreError::not_found("custom_field", name))?;
        let now = self.clock.now();
        let mut tx = self.store.begin_records().await?;
        tx.delete_record(Collection::CustomFields, &f.id.to_string()).await?;
        let ev = NewAuditEvent::new(
            cap.principal(),
            AuditAction::CustomFieldDelete,
            "custom_field",
            name,
        );
        tx.commit(vec![ev], now).await?;
        Ok(())
    }

    /// Validates attributes without storing anything: the built-in rules and the
    /// `custom-field` plugins. Returns every problem found.
    pub async fn validate(
        &self,
        _cap: &Capability<perm::PeopleRead>,
        attrs: &Attributes,
    ) -> Result<Vec<FieldError>> {
        let (errors, _) = self.check_attributes(attrs).await?;
        Ok(errors)
    }

    /// Built-in and plugin checks of extended attributes; returns the errors and whether a
    /// plugin overrode the built-in rules.
    async fn check_attributes(&self, attrs: &Attributes) -> Result<(Vec<FieldError>, bool)> {
        let mut override_builtin = false;
        let mut errors = Vec::new();
        if self.validators.active("custom-field") {
            let input = ValidationInput {
                attributes: attrs
                    .iter()
                    .map(|(k, v)| NameAttribute {
                        attribute: k.clone(),
                        value: v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    })
                    .collect(),
                sans: vec![],
                key: None,
                context: "custom-field".into(),
                json: serde_json::Value::Object(attrs.clone()).to_string(),
            };
            match self.validators.validate("custom-field", &input).await {
                Ok(o) => override_builtin = o.override_builtin,
                Err(CoreError::Invalid { detail, .. }) => errors.push(FieldError {
                    field: String::new(),
                    code: "plugin".into(),
                    message: detail,
                }),
                Err(e) => return Err(e),
            }
        }
        if !override_builtin {
            errors.extend(validate_attributes(&self.all_fields().await?, attrs));
        }
        Ok((errors, override_builtin))
    }

    /// The person checks of a write: standard fields (unless a `person` plugin overrides them),
    /// then the attributes.
    async fn check(&self, p: &Person) -> Result<()> {
        let mut override_builtin = false;
        if self.validators.active("person") {
            let mut attributes = vec![
                NameAttribute { attribute: "given_name".into(), value: p.given_name.clone() },
                NameAttribute { attribute: "family_name".into(), value: p.family_name.clone() },
            ];
            for (k, v) in
                [("email", &p.email), ("external_id", &p.external_id), ("phone", &p.phone)]
            {
                if let Some(v) = v {
                    attributes.push(NameAttribute { attribute: k.into(), value: v.clone() });
                }
            }
            let input = ValidationInput {
                attributes,
                sans: vec![],
                key: None,
                context: "person".into(),
                json: serde_json::to_string(p).unwrap_or_default(),
            };
            override_builtin = self.validators.validate("person", &input).await?.override_builtin;
        }
        if !override_builtin {
            check_person(p)?;
        }
        let (errors, _) = self.check_attributes(&p.attributes).await?;
        if !errors.is_empty() {
            return Err(field_errors(errors));
        }
        Ok(())
    }

    async fn office_visible(&self, principal: &Principal, office: Uuid) -> Result<()> {
        let exists = self.store.record(Collection::Offices, &office.to_string()).await?.is_some();
        if !exists || !principal.scope.sees(Some(office)) {
            return Err(CoreError::invalid(
                ErrorCode::UnknownOffice,
                format!("no office {office}"),
            ));
        }
        Ok(())
    }

    /// Creates a person in an office the caller sees.
    pub async fn create(
        &self,
        cap: &Capability<perm::PeopleWrite>,
        input: PersonInput,
    ) -> Result<Person> {
        let office = input.office_id.ok_or_else(|| {
            CoreError::invalid(ErrorCode::MissingField, "`office_id` is required")
        })?;
        self.office_visible(cap.principal(), office).await?;
        let now = self.clock.now();
        let p = Person {
            id: Uuid::now_v7(),
            office_id: office,
            external_id: clean(input.external_id.flatten()),
            given_name: input.given_name.unwrap_or_default().trim().to_owned(),
            family_name: input.family_name.unwrap_or_default().trim().to_owned(),
            email: clean(input.email.flatten()),
            phone: clean(input.phone.flatten()),
            attributes: input.attributes.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        };
        self.check(&p).await?;
        let mut tx = self.store.begin_records().await?;
        tx.insert_record(p.row()).await.map_err(conflict_as(
            ErrorCode::ExternalIdTaken,
            "a person with this external_id exists in this office".into(),
        ))?;
        let empty = Person {
            external_id: None,
            given_name: String::new(),
            family_name: String::new(),
            email: None,
            phone: None,
            attributes: Attributes::new(),
            ..p.clone()
        };
        let ev = NewAuditEvent::new(cap.principal(), AuditAction::PersonCreate, "person", p.id)
            .details(
                serde_json::json!({"office_id": p.office_id, "fields": changed_fields(&empty, &p)}),
            );
        tx.commit(vec![ev], now).await?;
        Ok(p)
    }

    /// A person the caller sees, or 404.
    pub async fn get(&self, cap: &Capability<perm::PeopleRead>, id: Uuid) -> Result<Person> {
        self.visible(cap.principal(), id).await
    }

    /// A person `principal` sees, or 404 (for other services: requests, devices).
    pub async fn visible(&self, principal: &Principal, id: Uuid) -> Result<Person> {
        let body = self.store.record(Collection::People, &id.to_string()).await?;
        match body.map(|b| Person::from_body(&b)).transpose()? {
            Some(p) if principal.scope.sees(Some(p.office_id)) => Ok(p),
            _ => Err(CoreError::not_found("person", id.to_string())),
        }
    }

    /// A page of the people the caller sees.
    pub async fn list(
        &self,
        cap: &Capability<perm::PeopleRead>,
        f: PersonFilter,
        page: PageRequest,
    ) -> Result<Page<Person>> {
        let filter = Filter::People { f, offices: scope_offices(&cap.principal().scope) };
        record_page::<Person, _>(self.store.as_ref(), filter, page).await
    }

    /// Changes a person: standard fields, office (both in scope), attributes by merge patch.
    pub async fn update(
        &self,
        cap: &Capability<perm::PeopleWrite>,
        id: Uuid,
        input: PersonInput,
    ) -> Result<Person> {
        self.update_as(cap, id, input, AuditAction::PersonUpdate, serde_json::Map::new()).await
    }

    /// An extended attribute's value from text, typed as its custom field says (integers and
    /// booleans parsed; anything unparsable stays text for validation to refuse); `None` when
    /// no custom field has that name.
    pub(crate) async fn typed_attribute(
        &self,
        name: &str,
        text: &str,
    ) -> Result<Option<serde_json::Value>> {
        let Some(field) = self.field_by_name(name).await? else { return Ok(None) };
        Ok(Some(match field.field_type {
            FieldType::Integer => {
                text.trim().parse::<i64>().map_or_else(|_| text.into(), serde_json::Value::from)
            }
            FieldType::Boolean => match text.trim() {
                "true" => true.into(),
                "false" => false.into(),
                _ => text.into(),
            },
            _ => text.into(),
        }))
    }

    /// [`PeopleService::update`] audited as `action`, with `details` added to the event.
    pub(crate) async fn update_as(
        &self,
        cap: &Capability<perm::PeopleWrite>,
        id: Uuid,
        input: PersonInput,
        action: AuditAction,
        details: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Person> {
        let before = self.visible(cap.principal(), id).await?;
        let mut p = before.clone();
        if let Some(o) = input.office_id
            && o != p.office_id
        {
            self.office_visible(cap.principal(), o).await?;
            p.office_id = o;
        }
        if let Some(x) = input.external_id {
            p.external_id = clean(x);
        }
        if let Some(g) = input.given_name {
            p.given_name = g.trim().to_owned();
        }
        if let Some(g) = input.family_name {
            p.family_name = g.trim().to_owned();
        }
        if let Some(e) = input.email {
            p.email = clean(e);
        }
        if let Some(ph) = input.phone {
            p.phone = clean(ph);
        }
        if let Some(patch) = input.attributes {
            for (k, v) in patch {
                if v.is_null() {
                    p.attributes.remove(&k);
                } else {
                    p.attributes.insert(k, v);
                }
            }
        }
        if p == before {
            return Ok(before);
        }
        self.check(&p).await?;
        let now = self.clock.now();
        p.updated_at = now;
        let mut tx = self.store.begin_records().await?;
        lock_unchanged(tx.as_mut(), &before, "person").await?;
        tx.update_record(p.row()).await.map_err(conflict_as(
            ErrorCode::ExternalIdTaken,
            "a person with this external_id exists in this office".into(),
        ))?;
        let mut d = details;
        d.insert("fields".into(), changed_fields(&before, &p).into());
        d.insert("office_id".into(), p.office_id.to_string().into());
        let ev = NewAuditEvent::new(cap.principal(), action, "person", id)
            .details(serde_json::Value::Object(d));
        tx.commit(vec![ev], now).await?;
        Ok(p)
    }
}
