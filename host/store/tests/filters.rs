//! The store's SQL for each typed record filter selects exactly what core's in-memory meaning of
//! the filter (`Filter::matches`) selects, in key order, on SQLite and (with
//! SIGIL_TEST_DATABASE_URL) on PostgreSQL. Core's unit tests run on the in-memory meaning; this
//! holds the two together.

#![allow(clippy::unwrap_used)] // A test: a broken fixture should stop it loudly.

use serde_json::{Value, json};
use sigil_core::acme::model::{AccountStatus, AcmeAccount, AcmeAuthz, AcmeOrder, EabKey};
use sigil_core::audit::NewAuditEvent;
use sigil_core::cards::device::{Device, DeviceEvent, DeviceFilter, DeviceKind, DeviceStatus};
use sigil_core::cards::enrolment::{EnrolmentRequest, RequestFilter, RequestStatus};
use sigil_core::cards::unlock::DeviceSecret;
use sigil_core::org::{Division, Office, OrgFilter, Organization};
use sigil_core::people::{CustomField, Person, PersonFilter};
use sigil_core::ports::{Store, SystemClock};
use sigil_core::records::{Collection, Filter, Record, RecordQuery, RecordStore, Row};
use sigil_core::signing::credential::{
    CredentialStatus, CscProvider, CscToken, Signer, SigningCredential,
};
use sigil_store::testing::TestDb;
use uuid::Uuid;

fn from<R: Record>(v: Value) -> R {
    serde_json::from_value(v).unwrap()
}

const T0: &str = "2026-01-01T00:00:00Z";

fn at(day: u32) -> String {
    format!("2026-01-{day:02}T00:00:00Z")
}

fn base(id: Uuid, created: &str) -> Value {
    json!({"id": id, "created_at": created, "updated_at": created, "metadata": {}, "description": ""})
}

fn merge(mut a: Value, b: Value) -> Value {
    for (k, v) in b.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

/// Records of every collection, with values chosen so each filter field splits them.
struct Fixture {
    orgs: Vec<Organization>,
    divisions: Vec<Division>,
    offices: Vec<Office>,
    fields: Vec<CustomField>,
    people: Vec<Person>,
    requests: Vec<EnrolmentRequest>,
    devices: Vec<Device>,
    events: Vec<DeviceEvent>,
    signers: Vec<Signer>,
    credentials: Vec<SigningCredential>,
    tokens: Vec<CscToken>,
    secrets: Vec<DeviceSecret>,
    providers: Vec<CscProvider>,
    acme_accounts: Vec<AcmeAccount>,
    acme_orders: Vec<AcmeOrder>,
    acme_authzs: Vec<AcmeAuthz>,
    acme_eab_keys: Vec<EabKey>,
}

fn ids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::now_v7()).collect()
}

fn fixture() -> Fixture {
    let (o, d, f) = (ids(2), ids(3), ids(3));
    let orgs = vec![
        from(merge(base(o[0], T0), json!({"name": "Acme Corp"}))),
        from(merge(base(o[1], T0), json!({"name": "Beta"}))),
    ];
    let divisions = vec![
        from(merge(base(d[0], T0), json!({"organization_id": o[0], "name": "North"}))),
        from(merge(base(d[1], T0), json!({"organization_id": o[0], "name": "south"}))),
        from(merge(base(d[2], T0), json!({"organization_id": o[1], "name": "North-East"}))),
    ];
    let office = |i: usize, div: usize, org: usize, code: &str, name: &str| -> Office {
        from(merge(
            base(f[i], T0),
            json!({"organization_id": o[org], "division_id": d[div], "code": code, "name": name,
                   "address": null, "email": null, "phone": null}),
        ))
    };
    let offices = vec![
        office(0, 0, 0, "LJU-01", "Ljubljana Centre"),
        office(1, 1, 0, "MB-01", "Maribor"),
        office(2, 2, 1, "KP-01", "Koper centre"),
    ];
    let field = |name: &str| -> CustomField {
        from(merge(
            base(Uuid::now_v7(), T0),
            json!({"name": name, "label": name, "field_type": "string", "required": false,
                   "pattern": null, "allowed_values": [], "min_length": null, "max_length": null}),
        ))
    };
    let fields = vec![field("badge"), field("cost_centre")];
    let person = |office: usize, fam: &str, ext: Option<&str>, email: Option<&str>| -> Person {
        from(merge(
            base(Uuid::now_v7(), T0),
            json!({"office_id": f[office], "external_id": ext, "given_name": "Ana",
                   "family_name": fam, "email": email, "phone": null, "attributes": {}}),
        ))
    };
    let people = vec![
        person(0, "McDonald", Some("E-1"), Some("Ana@Example.org")),
        person(0, "Novak", None, Some("novak@example.org")),
        person(1, "macdonald", Some("E-2"), None),
        person(2, "Kranjc", Some("e-1x"), Some("ANA@example.org.si")),
    ];
    let request = |office: usize,
                   person: usize,
                   status: &str,
                   by: &str,
                   profile: Option<&str>,
                   day| {
        let certs: Vec<Value> =
            profile.map(|p| json!({"profile": p, "csr": "x"})).into_iter().collect();
        from::<EnrolmentRequest>(merge(
            base(Uuid::now_v7(), &at(day)),
            json!({"office_id": f[office], "person_id": people_id(&people, person),
                   "certificates": certs, "device": null, "status": status, "requested_by": by,
                   "approvals_required": 0, "requester_may_approve": false, "approvals": [],
                   "decision": null, "result": {"certificates": [], "device_id": null, "error": null}}),
        ))
    };
    let requests = vec![
        request(0, 0, "pending", "op:alice", Some("tls-client"), 2),
        request(0, 1, "completed", "op:bob", Some("smime"), 5),
        request(1, 2, "pending", "op:alice", None, 9),
        request(2, 3, "rejected", "key:k1", Some("tls-client"), 12),
    ];
    let device = |office: usize,
                  holder: Option<usize>,
                  kind: &str,
                  serial: &str,
                  status: &str,
                  batch: Option<&str>| {
        from::<Device>(merge(
            base(Uuid::now_v7(), T0),
            json!({"office_id": f[office], "holder_id": holder.map(|h| people_id(&people, h)),
                   "kind": kind, "serial": serial, "status": status, "certificates": [],
                   "production": {"batch": batch, "manufacturer": null, "model": null,
                                  "applet": null, "chip_serial": null, "disposal_status": null},
                   "pin_retries_left": 3, "status_changed_at": T0}),
        ))
    };
    let devices = vec![
        device(0, Some(0), "smart_card", "SC-1", "active", Some("B1")),
        device(0, None, "smart_card", "SC-2", "registered", Some("B1")),
        device(1, Some(2), "usb_token", "UT-1", "suspended", None),
        device(2, Some(3), "virtual_token", "VT-1", "active", Some("B2")),
    ];
    let event = |device: usize| -> DeviceEvent {
        from(json!({"id": Uuid::now_v7(), "device_id": devices[device].id, "kind": "status",
                    "from": null, "to": "active", "reason": null, "actor": "op:alice",
                    "certificates": [], "at": T0}))
    };
    let events = vec![event(0), event(0), event(2)];
    let signer = |name: &str, person: Option<usize>, enabled: bool| -> Signer {
        from(merge(
            base(Uuid::now_v7(), T0),
            json!({"username": name, "person_id": person.map(|p| people_id(&people, p)),
                   "password_hash": "h", "enabled": enabled}),
        ))
    };
    let signers = vec![
        signer("ana", Some(0), true),
        signer("bob", None, false),
        signer("eve", Some(0), true),
    ];
    let credential = |s: usize, status: &str| -> SigningCredential {
        from(merge(
            base(Uuid::now_v7(), T0),
            json!({"signer_id": signers[s].id, "certificate_id": Uuid::now_v7(),
                   "key_algorithm": "p256", "sealed_key": "k", "pin_hash": "h",
                   "pin_retries_left": 3, "scal": 2, "multisign": 1, "status": status}),
        ))
    };
    let credentials =
        vec![credential(0, "enabled"), credential(0, "disabled"), credential(2, "enabled")];
    let token = |s: usize, kind: &str| -> CscToken {
        from(json!({"id": format!("{:064x}", Uuid::now_v7().as_u128()), "signer_id": signers[s].id,
                    "kind": kind, "parent": null, "expires_at": T0}))
    };
    let tokens = vec![token(0, "access"), token(0, "refresh"), token(1, "access")];
    let secrets: Vec<DeviceSecret> = devices[..2]
        .iter()
        .map(|d| {
            from(json!({"id": d.id, "algorithm": null, "admin_key": null, "unlock_code": "u",
                        "updated_at": T0}))
        })
        .collect();
    let provider = |name: &str| -> CscProvider {
        from(merge(
            base(Uuid::now_v7(), T0),
            json!({"name": name, "region": "SI", "logo": "", "language": "en",
                   "auth_types": ["basic"], "default": name == "main"}),
        ))
    };
    let providers = vec![provider("main"), provider("backup")];
    let account = |profile: &str, thumb: &str, status: &str| -> AcmeAccount {
        from(json!({"id": Uuid::now_v7(), "profile": profile, "thumbprint": thumb,
                    "jwk": {"kty": "EC"}, "status": status, "created_at": T0, "updated_at": T0}))
    };
    let acme_accounts = vec![
        account("tls-server", "t1", "valid"),
        account("tls-server", "t2", "deactivated"),
        account("other", "t1", "valid"),
    ];
    let order = |a: usize| -> AcmeOrder {
        from(json!({"id": Uuid::now_v7(), "account_id": acme_accounts[a].id,
                    "profile": "tls-server", "status": "pending",
                    "identifiers": [{"type": "dns", "value": "a.test"}], "authorizations": [],
                    "expires": T0, "created_at": T0, "updated_at": T0}))
    };
    let acme_orders = vec![order(0), order(0), order(1)];
    let authz = |o: usize| -> AcmeAuthz {
        from(json!({"id": Uuid::now_v7(), "account_id": acme_orders[o].account_id,
                    "order_id": acme_orders[o].id,
                    "identifier": {"type": "dns", "value": "a.test"}, "status": "pending",
                    "expires": T0, "challenges": [], "updated_at": T0}))
    };
    let acme_authzs = vec![authz(0), authz(1), authz(2)];
    let eab = |name: &str| -> EabKey {
        from(json!({"id": Uuid::now_v7(), "name": name, "sealed_key": "k", "created_by": "x",
                    "created_at": T0}))
    };
    let acme_eab_keys = vec![eab("one"), eab("two")];
    Fixture {
        orgs,
        divisions,
        offices,
        fields,
        people,
        requests,
        devices,
        events,
        signers,
        credentials,
        tokens,
        secrets,
        providers,
        acme_accounts,
        acme_orders,
        acme_authzs,
        acme_eab_keys,
    }
}

fn people_id(people: &[Person], i: usize) -> Uuid {
    people[i].id
}

impl Fixture {
    fn rows(&self) -> Vec<Row<'_>> {
        let mut v: Vec<Row<'_>> = Vec::new();
        v.extend(self.orgs.iter().map(Record::row));
        v.extend(self.divisions.iter().map(Record::row));
        v.extend(self.offices.iter().map(Record::row));
        v.extend(self.fields.iter().map(Record::row));
        v.extend(self.people.iter().map(Record::row));
        v.extend(self.requests.iter().map(Record::row));
        v.extend(self.devices.iter().map(Record::row));
        v.extend(self.events.iter().map(Record::row));
        v.extend(self.signers.iter().map(Record::row));
        v.extend(self.credentials.iter().map(Record::row));
        v.extend(self.tokens.iter().map(Record::row));
        v.extend(self.secrets.iter().map(Record::row));
        v.extend(self.providers.iter().map(Record::row));
        v.extend(self.acme_accounts.iter().map(Record::row));
        v.extend(self.acme_orders.iter().map(Record::row));
        v.extend(self.acme_authzs.iter().map(Record::row));
        v.extend(self.acme_eab_keys.iter().map(Record::row));
        v
    }

    /// Filters that each split their collection, plus every collection unfiltered.
    fn filters(&self) -> Vec<Filter> {
        let (o, d, f) = (&self.orgs, &self.divisions, &self.offices);
        let micros = |day: u32| {
            let t = time::OffsetDateTime::parse(
                &at(day),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            sigil_core::audit::unix_micros(t)
        };
        let mut v: Vec<Filter> = Collection::ALL.into_iter().map(Filter::all).collect();
        v.extend([
            Filter::Organizations { name_contains: Some("ACME".into()), ids: None },
            Filter::Organizations { name_contains: None, ids: Some(vec![o[1].id]) },
            Filter::Organizations { name_contains: None, ids: Some(vec![]) },
            Filter::Divisions {
                f: OrgFilter { organization_id: Some(o[0].id), ..OrgFilter::default() },
                ids: None,
            },
            Filter::Divisions {
                f: OrgFilter { q: Some("north".into()), ..Default::default() },
                ids: None,
            },
            Filter::Divisions { f: OrgFilter::default(), ids: Some(vec![d[1].id, d[2].id]) },
            Filter::Offices {
                f: OrgFilter { division_id: Some(d[0].id), ..OrgFilter::default() },
                ids: None,
                divisions: None,
            },
            Filter::Offices {
                f: OrgFilter { q: Some("CENTRE".into()), ..OrgFilter::default() },
                ids: Some(vec![f[0].id, f[1].id]),
                divisions: None,
            },
            Filter::Offices {
                f: OrgFilter::default(),
                ids: None,
                divisions: Some(vec![d[1].id, d[2].id]),
            },
            Filter::CustomFields { name: Some("badge".into()) },
            Filter::CustomFields { name: Some("BADGE".into()) },
            Filter::People {
                f: PersonFilter { q: Some("DONALD".into()), ..Default::default() },
                offices: None,
            },
            Filter::People {
                f: PersonFilter { email: Some("ana@EXAMPLE.org".into()), ..Default::default() },
                offices: None,
            },
            Filter::People {
                f: PersonFilter { external_id: Some("E-1".into()), ..Default::default() },
                offices: None,
            },
            Filter::People {
                f: PersonFilter { office_id: Some(f[0].id), ..Default::default() },
                offices: Some(vec![f[0].id, f[2].id]),
            },
            Filter::People { f: PersonFilter::default(), offices: Some(vec![]) },
            Filter::Requests {
                f: RequestFilter { status: Some(RequestStatus::Pending), ..Default::default() },
                offices: None,
            },
            Filter::Requests {
                f: RequestFilter {
                    requested_by: Some("op:alice".into()),
                    office_id: Some(f[0].id),
                    ..Default::default()
                },
                offices: None,
            },
            Filter::Requests {
                f: RequestFilter { profile: Some("tls-client".into()), ..Default::default() },
                offices: Some(vec![f[2].id]),
            },
            Filter::Requests {
                f: RequestFilter { person_id: Some(self.people[1].id), ..Default::default() },
                offices: None,
            },
            Filter::Requests {
                f: RequestFilter {
                    from_us: Some(micros(5)),
                    until_us: Some(micros(12)),
                    ..Default::default()
                },
                offices: None,
            },
            Filter::Devices {
                f: DeviceFilter { status: Some(DeviceStatus::Active), ..Default::default() },
                offices: None,
            },
            Filter::Devices {
                f: DeviceFilter {
                    kind: Some(DeviceKind::SmartCard),
                    batch: Some("B1".into()),
                    ..Default::default()
                },
                offices: None,
            },
            Filter::Devices {
                f: DeviceFilter { holder_id: Some(self.people[0].id), ..Default::default() },
                offices: None,
            },
            Filter::Devices {
                f: DeviceFilter { serial: Some("UT-1".into()), ..Default::default() },
                offices: Some(vec![f[0].id]),
            },
            Filter::Devices { f: DeviceFilter::default(), offices: Some(vec![f[1].id, f[2].id]) },
            Filter::DeviceEvents { device_id: Some(self.devices[0].id) },
            Filter::Signers { username: Some("ana".into()), enabled: None, person_id: None },
            Filter::Signers {
                username: None,
                enabled: Some(true),
                person_id: Some(self.people[0].id),
            },
            Filter::Signers { username: None, enabled: Some(false), person_id: None },
            Filter::Credentials { signer_id: Some(self.signers[0].id), status: None },
            Filter::Credentials { signer_id: None, status: Some(CredentialStatus::Enabled) },
            Filter::Tokens { signer_id: Some(self.signers[0].id) },
            Filter::AcmeAccounts {
                profile: Some("tls-server".into()),
                thumbprint: Some("t1".into()),
                status: None,
            },
            Filter::AcmeAccounts {
                profile: None,
                thumbprint: None,
                status: Some(AccountStatus::Deactivated),
            },
            Filter::AcmeOrders { account_id: Some(self.acme_accounts[0].id) },
            Filter::AcmeAuthzs { order_id: Some(self.acme_orders[1].id), account_id: None },
            Filter::AcmeAuthzs { order_id: None, account_id: Some(self.acme_accounts[0].id) },
            Filter::Offices {
                f: OrgFilter { organization_id: Some(o[1].id), ..OrgFilter::default() },
                ids: None,
                divisions: None,
            },
            Filter::Devices {
                f: DeviceFilter { office_id: Some(f[0].id), ..Default::default() },
                offices: None,
            },
            // LIKE wildcards in search text are literal characters.
            Filter::Organizations { name_contains: Some("%".into()), ids: None },
            Filter::Divisions {
                f: OrgFilter { q: Some("h_e".into()), ..Default::default() },
                ids: None,
            },
            Filter::Divisions {
                f: OrgFilter { q: Some("h-e".into()), ..Default::default() },
                ids: None,
            },
        ]);
        v
    }
}

fn key_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_typed_filter_selects_in_sql_what_it_matches_in_memory() {
    let fx = fixture();
    let rows = fx.rows();
    for db in TestDb::all().await {
        let store = db.store().await;
        let mut tx = store.begin().await.unwrap();
        for r in &rows {
            tx.insert_record(*r).await.unwrap();
        }
        let ev = NewAuditEvent::new(
            &sigil_core::access::authz::Principal::system(),
            sigil_core::audit::AuditAction::OrganizationCreate,
            "fixture",
            "all",
        );
        tx.commit(vec![ev], sigil_core::ports::Clock::now(&SystemClock)).await.unwrap();
        for f in fx.filters() {
            let mut want: Vec<String> = rows
                .iter()
                .filter(|r| r.collection() == f.collection() && f.matches(**r))
                .map(Row::key)
                .collect();
            want.sort();
            let got: Vec<String> = store
                .records(&RecordQuery::all(f.clone()))
                .await
                .unwrap()
                .iter()
                .map(|b| key_of(b))
                .collect();
            assert_eq!(got, want, "{}: {f:?}", db.backend);
            assert_eq!(store.count_records(&f).await.unwrap(), want.len() as i64, "{f:?}");
            // Paged one at a time, the same keys in the same order.
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let q = RecordQuery { filter: f.clone(), after: after.clone(), limit: 1 };
                let Some(b) = store.records(&q).await.unwrap().pop() else { break };
                after = Some(key_of(&b));
                paged.push(key_of(&b));
            }
            assert_eq!(paged, want, "paged {}: {f:?}", db.backend);
        }
        // The filters are not vacuous: between them they split every collection.
        let filters = fx.filters();
        let splitting = filters
            .iter()
            .filter(|f| {
                let n = rows.iter().filter(|r| f.matches(**r)).count();
                let all = rows.iter().filter(|r| r.collection() == f.collection()).count();
                n > 0 && n < all
            })
            .count();
        assert!(splitting >= 31, "only {splitting} filters split their collection");
        // Every collection has rows, so the unfiltered reads are not empty against empty.
        for c in Collection::ALL {
            assert!(rows.iter().any(|r| r.collection() == c), "no {} in the fixture", c.noun());
        }
        store.close().await;
        db.cleanup().await;
    }
}
