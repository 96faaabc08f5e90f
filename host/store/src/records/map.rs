//! Where core's record collections live: each [`Collection`] is one table; each record's
//! indexed columns are read from its typed fields; each typed [`Filter`] becomes conditions on
//! those columns. Core's `Filter::matches` states what a filter means; the test at the bottom
//! holds this translation to it.

use sigil_core::StoreError;
use sigil_core::ports::StoreResult;
use sigil_core::records::{Collection, Filter, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Cond, RecordRow, SqlValue, Table};

/// Organizations.
static ORGANIZATIONS: Table = Table { name: "organizations", columns: &["name", "created_at"] };
/// Divisions.
static DIVISIONS: Table =
    Table { name: "divisions", columns: &["organization_id", "name", "created_at"] };
/// Registration offices.
static OFFICES: Table = Table {
    name: "offices",
    columns: &["organization_id", "division_id", "code", "name", "created_at"],
};
/// Custom field definitions.
static CUSTOM_FIELDS: Table = Table { name: "custom_fields", columns: &["name", "created_at"] };
/// People (family name and e-mail lowercased, for case-insensitive filters).
static PEOPLE: Table = Table {
    name: "people",
    columns: &["office_id", "external_id", "family_name", "email", "created_at"],
};
/// Enrolment requests.
static REQUESTS: Table = Table {
    name: "enrolment_requests",
    columns: &["office_id", "person_id", "status", "requested_by", "profile", "created_at"],
};
/// Devices.
static DEVICES: Table = Table {
    name: "devices",
    columns: &["office_id", "holder_id", "kind", "serial", "status", "batch", "created_at"],
};
/// Device history.
static DEVICE_EVENTS: Table =
    Table { name: "device_events", columns: &["device_id", "created_at"] };
/// Sealed card secrets.
static DEVICE_SECRETS: Table = Table { name: "device_secrets", columns: &["updated_at"] };
/// CSC signers.
static SIGNERS: Table =
    Table { name: "signers", columns: &["username", "person_id", "enabled", "created_at"] };
/// Signing credentials.
static CREDENTIALS: Table = Table {
    name: "signing_credentials",
    columns: &["signer_id", "certificate_id", "status", "created_at"],
};
/// CSC providers.
static PROVIDERS: Table = Table { name: "csc_providers", columns: &["name", "created_at"] };
/// CSC tokens.
static TOKENS: Table = Table { name: "csc_tokens", columns: &["signer_id", "kind", "expires_at"] };

/// ACME accounts (unique per profile and key thumbprint).
static ACME_ACCOUNTS: Table =
    Table { name: "acme_accounts", columns: &["profile", "thumbprint", "status", "created_at"] };
/// ACME orders.
static ACME_ORDERS: Table =
    Table { name: "acme_orders", columns: &["account_id", "status", "expires_at"] };
/// ACME authorizations.
static ACME_AUTHZS: Table =
    Table { name: "acme_authzs", columns: &["order_id", "account_id", "status", "expires_at"] };
/// External account binding keys.
static ACME_EAB_KEYS: Table =
    Table { name: "acme_eab_keys", columns: &["name", "account_id", "created_at"] };

/// The table of `c`.
pub(crate) fn table(c: Collection) -> &'static Table {
    match c {
        Collection::Organizations => &ORGANIZATIONS,
        Collection::Divisions => &DIVISIONS,
        Collection::Offices => &OFFICES,
        Collection::CustomFields => &CUSTOM_FIELDS,
        Collection::People => &PEOPLE,
        Collection::Requests => &REQUESTS,
        Collection::Devices => &DEVICES,
        Collection::DeviceEvents => &DEVICE_EVENTS,
        Collection::DeviceSecrets => &DEVICE_SECRETS,
        Collection::Signers => &SIGNERS,
        Collection::Credentials => &CREDENTIALS,
        Collection::Providers => &PROVIDERS,
        Collection::Tokens => &TOKENS,
        Collection::AcmeAccounts => &ACME_ACCOUNTS,
        Collection::AcmeOrders => &ACME_ORDERS,
        Collection::AcmeAuthzs => &ACME_AUTHZS,
        Collection::AcmeEabKeys => &ACME_EAB_KEYS,
    }
}

fn micros(t: OffsetDateTime) -> SqlValue {
    SqlValue::Int(sigil_core::audit::unix_micros(t))
}

/// The values of `row`'s columns, in its table's order.
fn columns(row: Row<'_>) -> Vec<SqlValue> {
    match row {
        Row::Organization(o) => vec![o.name.as_str().into(), micros(o.created_at)],
        Row::Division(d) => {
            vec![d.organization_id.into(), d.name.as_str().into(), micros(d.created_at)]
        }
        Row::Office(o) => vec![
            o.organization_id.into(),
            o.division_id.into(),
            o.code.as_str().into(),
            o.name.as_str().into(),
            micros(o.created_at),
        ],
        Row::CustomField(f) => vec![f.name.as_str().into(), micros(f.created_at)],
        Row::Person(p) => vec![
            p.office_id.into(),
            p.external_id.clone().into(),
            p.family_name.to_lowercase().into(),
            p.email.as_ref().map(|e| e.to_lowercase()).into(),
            micros(p.created_at),
        ],
        Row::Request(r) => vec![
            r.office_id.into(),
            r.person_id.into(),
            r.status.as_str().into(),
            r.requested_by.as_str().into(),
            r.profile().map(str::to_owned).into(),
            micros(r.created_at),
        ],
        Row::Device(d) => vec![
            d.office_id.into(),
            d.holder_id.into(),
            d.kind.as_str().into(),
            d.serial.as_str().into(),
            d.status.as_str().into(),
            d.production.batch.clone().into(),
            micros(d.created_at),
        ],
        Row::DeviceEvent(e) => vec![e.device_id.into(), micros(e.at)],
        Row::DeviceSecret(s) => vec![micros(s.updated_at)],
        Row::Signer(s) => vec![
            s.username.as_str().into(),
            s.person_id.into(),
            s.enabled.into(),
            micros(s.created_at),
        ],
        Row::Credential(c) => vec![
            c.signer_id.into(),
            c.certificate_id.into(),
            c.status.as_str().into(),
            micros(c.created_at),
        ],
        Row::Provider(p) => vec![p.name.as_str().into(), micros(p.created_at)],
        Row::Token(t) => vec![t.signer_id.into(), t.kind.as_str().into(), micros(t.expires_at)],
        Row::AcmeAccount(a) => vec![
            a.profile.as_str().into(),
            a.thumbprint.as_str().into(),
            a.status.as_str().into(),
            micros(a.created_at),
        ],
        Row::AcmeOrder(o) => {
            vec![o.account_id.into(), o.status.as_str().into(), micros(o.expires)]
        }
        Row::AcmeAuthz(a) => vec![
            a.order_id.into(),
            a.account_id.into(),
            a.status.as_str().into(),
            micros(a.expires),
        ],
        Row::AcmeEabKey(k) => {
            vec![k.name.as_str().into(), k.account_id.into(), micros(k.created_at)]
        }
    }
}

/// The stored form of `row`, and its table.
pub(crate) fn stored(row: Row<'_>) -> StoreResult<(&'static Table, RecordRow)> {
    let body = row.body().map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok((table(row.collection()), RecordRow { id: row.key(), body, columns: columns(row) }))
}

fn ids(column: &'static str, set: &[Uuid]) -> Cond {
    Cond::In(column, set.iter().map(|u| SqlValue::from(*u)).collect())
}

/// Adds `column = v` when `v` is set.
fn eq<V: Into<SqlValue>>(out: &mut Vec<Cond>, column: &'static str, v: Option<V>) {
    if let Some(v) = v {
        out.push(Cond::Eq(column, v.into()));
    }
}

/// Adds `column IN set` when `set` is set.
fn within(out: &mut Vec<Cond>, column: &'static str, set: &Option<Vec<Uuid>>) {
    if let Some(s) = set {
        out.push(ids(column, s));
    }
}

/// Adds a case-insensitive substring match when `text` is set.
fn contains(out: &mut Vec<Cond>, column: &'static str, text: &Option<String>) {
    if let Some(t) = text {
        out.push(Cond::Contains(column, t.clone()));
    }
}

/// The conditions `f` stands for, on its collection's table.
pub(crate) fn conds(f: &Filter) -> Vec<Cond> {
    let mut c = Vec::new();
    match f {
        Filter::Organizations { name_contains, ids } => {
            contains(&mut c, "name", name_contains);
            within(&mut c, "id", ids);
        }
        Filter::Divisions { f, ids } => {
            eq(&mut c, "organization_id", f.organization_id);
            contains(&mut c, "name", &f.q);
            within(&mut c, "id", ids);
        }
        Filter::Offices { f, ids, divisions } => {
            eq(&mut c, "organization_id", f.organization_id);
            eq(&mut c, "division_id", f.division_id);
            contains(&mut c, "name", &f.q);
            within(&mut c, "id", ids);
            within(&mut c, "division_id", divisions);
        }
        Filter::CustomFields { name } => eq(&mut c, "name", name.clone()),
        Filter::People { f, offices } => {
            eq(&mut c, "office_id", f.office_id);
            contains(&mut c, "family_name", &f.q);
            eq(&mut c, "external_id", f.external_id.clone());
            eq(&mut c, "email", f.email.as_ref().map(|e| e.to_lowercase()));
            within(&mut c, "office_id", offices);
        }
        Filter::Requests { f, offices } => {
            eq(&mut c, "status", f.status.map(|s| s.as_str()));
            eq(&mut c, "office_id", f.office_id);
            eq(&mut c, "requested_by", f.requested_by.clone());
            eq(&mut c, "profile", f.profile.clone());
            eq(&mut c, "person_id", f.person_id);
            if let Some(t) = f.from_us {
                c.push(Cond::Gte("created_at", t));
            }
            if let Some(t) = f.until_us {
                c.push(Cond::Lt("created_at", t));
            }
            within(&mut c, "office_id", offices);
        }
        Filter::Devices { f, offices } => {
            eq(&mut c, "status", f.status.map(|s| s.as_str()));
            eq(&mut c, "kind", f.kind.map(|k| k.as_str()));
            eq(&mut c, "office_id", f.office_id);
            eq(&mut c, "holder_id", f.holder_id);
            eq(&mut c, "batch", f.batch.clone());
            eq(&mut c, "serial", f.serial.clone());
            within(&mut c, "office_id", offices);
        }
        Filter::DeviceEvents { device_id } => eq(&mut c, "device_id", *device_id),
        Filter::DeviceSecrets | Filter::Providers => {}
        Filter::Signers { username, enabled, person_id } => {
            eq(&mut c, "username", username.clone());
            eq(&mut c, "enabled", *enabled);
            eq(&mut c, "person_id", *person_id);
        }
        Filter::Credentials { signer_id, status } => {
            eq(&mut c, "signer_id", *signer_id);
            eq(&mut c, "status", status.map(|s| s.as_str()));
        }
        Filter::Tokens { signer_id } => eq(&mut c, "signer_id", *signer_id),
        Filter::AcmeAccounts { profile, thumbprint, status } => {
            eq(&mut c, "profile", profile.clone());
            eq(&mut c, "thumbprint", thumbprint.clone());
            eq(&mut c, "status", status.map(|s| s.as_str()));
        }
        Filter::AcmeOrders { account_id } => eq(&mut c, "account_id", *account_id),
        Filter::AcmeAuthzs { order_id, account_id } => {
            eq(&mut c, "order_id", *order_id);
            eq(&mut c, "account_id", *account_id);
        }
        Filter::AcmeEabKeys => {}
    }
    c
}
