//! Typed records over one generic storage port, for the card-management objects (organizations,
//! divisions, offices, people, requests, devices, signers, …).
//!
//! Core names what it stores ([`Collection`]), hands the store typed records ([`Row`]) and asks
//! for them with typed filters ([`Filter`]). It never names a table or a column and never builds
//! a condition: `sigil-store` maps each collection to its table, each record to its indexed
//! columns and each filter to SQL with bound values. The same filters are evaluated in memory by
//! [`Filter::matches`], which the fake store of the unit tests uses; a store test holds the SQL
//! translation to the same answers.

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::acme::model::{AccountStatus, AcmeAccount, AcmeAuthz, AcmeOrder, EabKey};
use crate::audit::{AuditEvent, NewAuditEvent};
use crate::cards::device::{Device, DeviceEvent, DeviceFilter};
use crate::cards::enrolment::{EnrolmentRequest, RequestFilter};
use crate::cards::unlock::DeviceSecret;
use crate::error::StoreResult;
use crate::error::{CoreError, Result, StoreError};
use crate::org::{Division, Office, OrgFilter, Organization};
use crate::people::{CustomField, Person, PersonFilter};
use crate::signing::credential::{
    CredentialStatus, CscProvider, CscToken, Signer, SigningCredential,
};

/// What kind of record: each is stored apart (one table in `sigil-store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    /// Organizations.
    Organizations,
    /// Divisions of organizations.
    Divisions,
    /// Registration offices.
    Offices,
    /// Definitions of people's extended attributes.
    CustomFields,
    /// People.
    People,
    /// Enrolment requests.
    Requests,
    /// Cards and tokens.
    Devices,
    /// Device history.
    DeviceEvents,
    /// Sealed card administration keys and unlock codes.
    DeviceSecrets,
    /// CSC signers.
    Signers,
    /// Signing credentials.
    Credentials,
    /// CSC provider configurations.
    Providers,
    /// CSC access and refresh tokens.
    Tokens,
    /// ACME accounts.
    AcmeAccounts,
    /// ACME orders.
    AcmeOrders,
    /// ACME authorizations (with their challenges).
    AcmeAuthzs,
    /// ACME external account binding keys.
    AcmeEabKeys,
}

impl Collection {
    /// Every collection.
    pub const ALL: [Self; 17] = [
        Self::Organizations,
        Self::Divisions,
        Self::Offices,
        Self::CustomFields,
        Self::People,
        Self::Requests,
        Self::Devices,
        Self::DeviceEvents,
        Self::DeviceSecrets,
        Self::Signers,
        Self::Credentials,
        Self::Providers,
        Self::Tokens,
        Self::AcmeAccounts,
        Self::AcmeOrders,
        Self::AcmeAuthzs,
        Self::AcmeEabKeys,
    ];

    /// What one record is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Organizations => "organization",
            Self::Divisions => "division",
            Self::Offices => "office",
            Self::CustomFields => "custom field",
            Self::People => "person",
            Self::Requests => "enrolment request",
            Self::Devices => "device",
            Self::DeviceEvents => "device event",
            Self::DeviceSecrets => "device secret",
            Self::Signers => "signer",
            Self::Credentials => "credential",
            Self::Providers => "CSC provider",
            Self::Tokens => "CSC token",
            Self::AcmeAccounts => "ACME account",
            Self::AcmeOrders => "ACME order",
            Self::AcmeAuthzs => "ACME authorization",
            Self::AcmeEabKeys => "external account binding key",
        }
    }
}

/// One table of the record kinds: each becomes a [`Row`] variant (with its collection, key
/// and body) and a [`Record`] impl.
macro_rules! records {
    ($($(#[doc = $doc:literal])* $variant:ident($ty:ty) in $coll:ident;)*) => {
        /// One record to write, by kind.
        #[derive(Debug, Clone, Copy)]
        pub enum Row<'a> {
            $($(#[doc = $doc])* $variant(&'a $ty),)*
        }

        impl Row<'_> {
            /// Its collection.
            pub fn collection(&self) -> Collection {
                match self {
                    $(Self::$variant(_) => Collection::$coll,)*
                }
            }

            /// Its key (a UUID, or a token's digest).
            pub fn key(&self) -> String {
                match self {
                    $(Self::$variant(r) => r.id.to_string(),)*
                }
            }

            /// The stored body: the record as JSON, the source of truth.
            pub fn body(&self) -> Result<String> {
                let encoded = match self {
                    $(Self::$variant(r) => serde_json::to_string(r),)*
                };
                encoded.map_err(|e| {
                    CoreError::Internal(format!("encoding a {}: {e}", self.collection().noun()))
                })
            }
        }

        $(impl Record for $ty {
            const COLLECTION: Collection = Collection::$coll;
            fn row(&self) -> Row<'_> {
                Row::$variant(self)
            }
        })*
    };
}

records! {
    /// An organization.
    Organization(Organization) in Organizations;
    /// A division.
    Division(Division) in Divisions;
    /// An office.
    Office(Office) in Offices;
    /// A custom field definition.
    CustomField(CustomField) in CustomFields;
    /// A person.
    Person(Person) in People;
    /// An enrolment request.
    Request(EnrolmentRequest) in Requests;
    /// A device.
    Device(Device) in Devices;
    /// A history entry.
    DeviceEvent(DeviceEvent) in DeviceEvents;
    /// A device's sealed secrets.
    DeviceSecret(DeviceSecret) in DeviceSecrets;
    /// A signer.
    Signer(Signer) in Signers;
    /// A signing credential.
    Credential(SigningCredential) in Credentials;
    /// A CSC provider.
    Provider(CscProvider) in Providers;
    /// A CSC token.
    Token(CscToken) in Tokens;
    /// An ACME account.
    AcmeAccount(AcmeAccount) in AcmeAccounts;
    /// An ACME order.
    AcmeOrder(AcmeOrder) in AcmeOrders;
    /// An ACME authorization.
    AcmeAuthz(AcmeAuthz) in AcmeAuthzs;
    /// An external account binding key.
    AcmeEabKey(EabKey) in AcmeEabKeys;
}

/// Which records of one collection: every field set must hold. `offices` (and `ids`) restrict
/// to a set, usually the caller's scope; an empty set matches nothing.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Organizations.
    Organizations {
        /// Name contains this (case-insensitive).
        name_contains: Option<String>,
        /// Only these.
        ids: Option<Vec<Uuid>>,
    },
    /// Divisions.
    Divisions {
        /// Organization and name.
        f: OrgFilter,
        /// Only these.
        ids: Option<Vec<Uuid>>,
    },
    /// Offices.
    Offices {
        /// Organization, division and name.
        f: OrgFilter,
        /// Only these.
        ids: Option<Vec<Uuid>>,
        /// Only offices of these divisions.
        divisions: Option<Vec<Uuid>>,
    },
    /// Custom field definitions.
    CustomFields {
        /// Exactly this name.
        name: Option<String>,
    },
    /// People.
    People {
        /// The list's filters.
        f: PersonFilter,
        /// Only people of these offices.
        offices: Option<Vec<Uuid>>,
    },
    /// Enrolment requests.
    Requests {
        /// The list's filters.
        f: RequestFilter,
        /// Only requests of these offices.
        offices: Option<Vec<Uuid>>,
    },
    /// Devices.
    Devices {
        /// The list's filters.
        f: DeviceFilter,
        /// Only devices of these offices.
        offices: Option<Vec<Uuid>>,
    },
    /// Device history.
    DeviceEvents {
        /// Of this device.
        device_id: Option<Uuid>,
    },
    /// Every device's secrets.
    DeviceSecrets,
    /// Signers.
    Signers {
        /// Exactly this (lowercased) username.
        username: Option<String>,
        /// Enabled or not.
        enabled: Option<bool>,
        /// Bound to this person.
        person_id: Option<Uuid>,
    },
    /// Signing credentials.
    Credentials {
        /// Of this signer.
        signer_id: Option<Uuid>,
        /// In this state.
        status: Option<CredentialStatus>,
    },
    /// Every CSC provider.
    Providers,
    /// CSC tokens.
    Tokens {
        /// Of this signer.
        signer_id: Option<Uuid>,
    },
    /// ACME accounts.
    AcmeAccounts {
        /// Of this profile.
        profile: Option<String>,
        /// With this key (RFC 7638 thumbprint).
        thumbprint: Option<String>,
        /// In this state.
        status: Option<AccountStatus>,
    },
    /// ACME orders.
    AcmeOrders {
        /// Of this account.
        account_id: Option<Uuid>,
    },
    /// ACME authorizations.
    AcmeAuthzs {
        /// Of this order.
        order_id: Option<Uuid>,
        /// Of this account.
        account_id: Option<Uuid>,
    },
    /// Every external account binding key.
    AcmeEabKeys,
}

/// Whether `have` is in `set` (no set: yes).
fn within(set: &Option<Vec<Uuid>>, have: Uuid) -> bool {
    set.as_ref().is_none_or(|s| s.contains(&have))
}

/// Whether `want` (when set) equals `have`.
fn same<T: PartialEq>(want: &Option<T>, have: &T) -> bool {
    want.as_ref().is_none_or(|w| w == have)
}

/// Whether `have` contains `want` (when set), ignoring case.
fn contains(want: &Option<String>, have: &str) -> bool {
    want.as_ref().is_none_or(|w| have.to_lowercase().contains(&w.to_lowercase()))
}

fn micros(t: OffsetDateTime) -> i64 {
    crate::audit::unix_micros(t)
}

impl Filter {
    /// Everything in `c`.
    pub fn all(c: Collection) -> Self {
        match c {
            Collection::Organizations => Self::Organizations { name_contains: None, ids: None },
            Collection::Divisions => Self::Divisions { f: OrgFilter::default(), ids: None },
            Collection::Offices => {
                Self::Offices { f: OrgFilter::default(), ids: None, divisions: None }
            }
            Collection::CustomFields => Self::CustomFields { name: None },
            Collection::People => Self::People { f: PersonFilter::default(), offices: None },
            Collection::Requests => Self::Requests { f: RequestFilter::default(), offices: None },
            Collection::Devices => Self::Devices { f: DeviceFilter::default(), offices: None },
            Collection::DeviceEvents => Self::DeviceEvents { device_id: None },
            Collection::DeviceSecrets => Self::DeviceSecrets,
            Collection::Signers => Self::Signers { username: None, enabled: None, person_id: None },
            Collection::Credentials => Self::Credentials { signer_id: None, status: None },
            Collection::Providers => Self::Providers,
            Collection::Tokens => Self::Tokens { signer_id: None },
            Collection::AcmeAccounts => {
                Self::AcmeAccounts { profile: None, thumbprint: None, status: None }
            }
            Collection::AcmeOrders => Self::AcmeOrders { account_id: None },
            Collection::AcmeAuthzs => Self::AcmeAuthzs { order_id: None, account_id: None },
            Collection::AcmeEabKeys => Self::AcmeEabKeys,
        }
    }

    /// The collection it selects from.
    pub fn collection(&self) -> Collection {
        match self {
            Self::Organizations { .. } => Collection::Organizations,
            Self::Divisions { .. } => Collection::Divisions,
            Self::Offices { .. } => Collection::Offices,
            Self::CustomFields { .. } => Collection::CustomFields,
            Self::People { .. } => Collection::People,
            Self::Requests { .. } => Collection::Requests,
            Self::Devices { .. } => Collection::Devices,
            Self::DeviceEvents { .. } => Collection::DeviceEvents,
            Self::DeviceSecrets => Collection::DeviceSecrets,
            Self::Signers { .. } => Collection::Signers,
            Self::Credentials { .. } => Collection::Credentials,
            Self::Providers => Collection::Providers,
            Self::Tokens { .. } => Collection::Tokens,
            Self::AcmeAccounts { .. } => Collection::AcmeAccounts,
            Self::AcmeOrders { .. } => Collection::AcmeOrders,
            Self::AcmeAuthzs { .. } => Collection::AcmeAuthzs,
            Self::AcmeEabKeys => Collection::AcmeEabKeys,
        }
    }

    /// Whether `row` is selected. The in-memory meaning of the filter, which the SQL
    /// translation in `sigil-store` must agree with.
    pub fn matches(&self, row: Row<'_>) -> bool {
        match (self, row) {
            (Self::Organizations { name_contains, ids }, Row::Organization(o)) => {
                contains(name_contains, &o.name) && within(ids, o.id)
            }
            (Self::Divisions { f, ids }, Row::Division(d)) => {
                same(&f.organization_id, &d.organization_id)
                    && contains(&f.q, &d.name)
                    && within(ids, d.id)
            }
            (Self::Offices { f, ids, divisions }, Row::Office(o)) => {
                same(&f.organization_id, &o.organization_id)
                    && same(&f.division_id, &o.division_id)
                    && contains(&f.q, &o.name)
                    && within(ids, o.id)
                    && within(divisions, o.division_id)
            }
            (Self::CustomFields { name }, Row::CustomField(c)) => same(name, &c.name),
            (Self::People { f, offices }, Row::Person(p)) => {
                same(&f.office_id, &p.office_id)
                    && contains(&f.q, &p.family_name)
                    && f.external_id.as_ref().is_none_or(|x| p.external_id.as_ref() == Some(x))
                    && f.email.as_ref().is_none_or(|e| {
                        p.email.as_ref().map(|m| m.to_lowercase()) == Some(e.to_lowercase())
                    })
                    && within(offices, p.office_id)
            }
            (Self::Requests { f, offices }, Row::Request(r)) => {
                let at = micros(r.created_at);
                same(&f.status, &r.status)
                    && same(&f.office_id, &r.office_id)
                    && same(&f.requested_by, &r.requested_by)
                    && f.profile.as_deref().is_none_or(|p| r.profile() == Some(p))
                    && same(&f.person_id, &r.person_id)
                    && f.from_us.is_none_or(|t| at >= t)
                    && f.until_us.is_none_or(|t| at < t)
                    && within(offices, r.office_id)
            }
            (Self::Devices { f, offices }, Row::Device(d)) => {
                same(&f.status, &d.status)
                    && same(&f.kind, &d.kind)
                    && same(&f.office_id, &d.office_id)
                    && f.holder_id.is_none_or(|h| d.holder_id == Some(h))
                    && f.batch.as_ref().is_none_or(|b| d.production.batch.as_ref() == Some(b))
                    && same(&f.serial, &d.serial)
                    && within(offices, d.office_id)
            }
            (Self::DeviceEvents { device_id }, Row::DeviceEvent(e)) => {
                same(device_id, &e.device_id)
            }
            (Self::DeviceSecrets, Row::DeviceSecret(_)) | (Self::Providers, Row::Provider(_)) => {
                true
            }
            (Self::Signers { username, enabled, person_id }, Row::Signer(s)) => {
                same(username, &s.username)
                    && same(enabled, &s.enabled)
                    && person_id.is_none_or(|p| s.person_id == Some(p))
            }
            (Self::Credentials { signer_id, status }, Row::Credential(c)) => {
                same(signer_id, &c.signer_id) && same(status, &c.status)
            }
            (Self::Tokens { signer_id }, Row::Token(t)) => same(signer_id, &t.signer_id),
            (Self::AcmeAccounts { profile, thumbprint, status }, Row::AcmeAccount(a)) => {
                same(profile, &a.profile)
                    && same(thumbprint, &a.thumbprint)
                    && same(status, &a.status)
            }
            (Self::AcmeOrders { account_id }, Row::AcmeOrder(o)) => same(account_id, &o.account_id),
            (Self::AcmeAuthzs { order_id, account_id }, Row::AcmeAuthz(a)) => {
                same(order_id, &a.order_id) && same(account_id, &a.account_id)
            }
            (Self::AcmeEabKeys, Row::AcmeEabKey(_)) => true,
            _ => false,
        }
    }
}

/// A page query: a filter, then `key > after` in key order (UUIDv7 keys are time-ordered).
#[derive(Debug, Clone)]
pub struct RecordQuery {
    /// Which records.
    pub filter: Filter,
    /// Continue after this key.
    pub after: Option<String>,
    /// Most rows (0: no limit, for internal reads of bounded sets).
    pub limit: u32,
}

impl RecordQuery {
    /// Every record `filter` selects, unpaged.
    pub fn all(filter: Filter) -> Self {
        Self { filter, after: None, limit: 0 }
    }
}

/// Reads of records.
#[async_trait]
pub trait RecordStore {
    /// The body of record `key` of `c`.
    async fn record(&self, c: Collection, key: &str) -> StoreResult<Option<String>>;
    /// Bodies matching `q`, in key order.
    async fn records(&self, q: &RecordQuery) -> StoreResult<Vec<String>>;
    /// How many records `filter` selects.
    async fn count_records(&self, filter: &Filter) -> StoreResult<i64>;
}

/// Writes of records, inside a transaction of the storage port (`Tx`).
#[async_trait]
pub trait RecordTx {
    /// Inserts a record; a clash on a unique field is [`StoreError::Conflict`].
    async fn insert_record(&mut self, row: Row<'_>) -> StoreResult<()>;
    /// Replaces a record.
    async fn update_record(&mut self, row: Row<'_>) -> StoreResult<()>;
    /// Deletes a record.
    async fn delete_record(&mut self, c: Collection, key: &str) -> StoreResult<()>;
    /// Reads a record and locks it until commit.
    async fn record_for_update(&mut self, c: Collection, key: &str) -> StoreResult<Option<String>>;
    /// Bodies matching `q`, as this transaction sees them.
    async fn records_in_tx(&mut self, q: &RecordQuery) -> StoreResult<Vec<String>>;
}

/// A unit of work over records: the writes of [`RecordTx`], committed with their audit events
/// (the only way to commit, as for the full `Tx`).
#[async_trait]
pub trait RecordUnit: RecordTx + Send {
    /// Commits the writes and appends `events` to the audit chain, atomically.
    async fn commit(
        self: Box<Self>,
        events: Vec<NewAuditEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>>;
}

/// The records port: what a use case that keeps only records needs (organizations, people).
/// `sigil-store` implements it over SQL; `MemoryRecords` (the `testing` module) in memory.
#[async_trait]
pub trait Records: RecordStore + Send + Sync {
    /// Starts a unit of work.
    async fn begin_records(&self) -> StoreResult<Box<dyn RecordUnit>>;
}

/// A typed record.
pub trait Record: Serialize + DeserializeOwned + Send + Sync {
    /// Where it is stored.
    const COLLECTION: Collection;
    /// It, as a row to write.
    fn row(&self) -> Row<'_>;
    /// Its key.
    fn key(&self) -> String {
        self.row().key()
    }

    /// Decodes a stored body.
    fn from_body(body: &str) -> Result<Self> {
        serde_json::from_str(body).map_err(|e| {
            CoreError::Storage(format!("corrupt {} record: {e}", Self::COLLECTION.noun()))
        })
    }
}

/// Refuses a filter over another collection than `R`'s: a body of one kind may decode as
/// another (serde ignores unknown fields), so the mix-up would go unnoticed.
pub fn same_collection<R: Record>(filter: &Filter) -> Result<()> {
    if filter.collection() == R::COLLECTION {
        Ok(())
    } else {
        Err(CoreError::Internal(format!(
            "a {} filter used to read {} records",
            filter.collection().noun(),
            R::COLLECTION.noun()
        )))
    }
}

/// Decodes many bodies.
pub fn decode_all<R: Record>(bodies: Vec<String>) -> Result<Vec<R>> {
    bodies.iter().map(|b| R::from_body(b)).collect()
}

/// Record `key` of `R`'s collection, decoded.
pub async fn get<R: Record, S: RecordStore + Sync + ?Sized>(
    store: &S,
    key: &str,
) -> Result<Option<R>> {
    store.record(R::COLLECTION, key).await?.map(|b| R::from_body(&b)).transpose()
}

/// Every record `filter` selects, decoded, in key order.
pub async fn select<R: Record, S: RecordStore + Sync + ?Sized>(
    store: &S,
    filter: Filter,
) -> Result<Vec<R>> {
    same_collection::<R>(&filter)?;
    decode_all(store.records(&RecordQuery::all(filter)).await?)
}

/// Turns a unique-constraint clash into a conflict with a stable `code` and a clear message.
pub fn conflict_as(code: crate::ErrorCode, detail: String) -> impl FnOnce(StoreError) -> CoreError {
    move |e| match e {
        StoreError::Conflict { .. } => CoreError::conflict(code, detail),
        other => other.into(),
    }
}

/// The offices `scope` restricts a list to (None: no restriction).
pub fn scope_offices(scope: &crate::access::scope::Scope) -> Option<Vec<Uuid>> {
    scope.office_set().map(|offices| offices.iter().copied().collect())
}
