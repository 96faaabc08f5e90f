//! `/api/v1/devices`: smart cards, USB tokens and virtual tokens, their state machine (one
//! endpoint per transition, so that exposure and permissions can be set per operation), their
//! history and production metadata.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::ErrorCode;
use sigil_core::access::authz::perm;
use sigil_core::cards::device::DeviceFilter;
use sigil_core::cards::device::{Device, DeviceEvent, DeviceKind, DeviceStatus, Production};
use sigil_core::cards::devices::{RegisterDevice, UpdateDevice};
use sigil_core::certs::RevocationReason;
use sigil_core::page::page_size;
use sigil_core::ports::PageRequest;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{double_option, rfc3339};
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json, Query, optional_body};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices, register_device))
        .routes(routes!(show_device, update_device))
        .routes(routes!(device_state))
        .routes(routes!(device_history))
        .routes(routes!(link_certificate))
        .routes(routes!(activate))
        .routes(routes!(suspend))
        .routes(routes!(reactivate))
        .routes(routes!(report_lost))
        .routes(routes!(report_damaged))
        .routes(routes!(revoke))
        .routes(routes!(expire))
        .routes(routes!(terminate))
}

/// A device.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeviceView {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: DeviceKind,
    /// Serial number.
    pub serial: String,
    /// State.
    pub status: DeviceStatus,
    /// States it may move to.
    pub allowed_transitions: Vec<DeviceStatus>,
    /// Registration office.
    pub office_id: String,
    /// Holder (a person).
    pub holder_id: Option<String>,
    /// Certificates on the device.
    pub certificates: Vec<String>,
    /// Who placed the current suspension or loss report (`holder:<person id>` when the token
    /// holder did, through self-service; a holder lifts only its own suspensions).
    pub suspended_by: Option<String>,
    /// Production metadata.
    pub production: Production,
    /// Free-form attributes.
    pub metadata: serde_json::Value,
    /// PIN retries left.
    pub pin_retries_left: u8,
    /// Which PIN reset methods are set up.
    pub pin_reset: sigil_core::cards::unlock::PinResetSetup,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Last state change.
    pub status_changed_at: String,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        Self {
            id: d.id.to_string(),
            kind: d.kind,
            serial: d.serial,
            status: d.status,
            allowed_transitions: d.status.next().to_vec(),
            office_id: d.office_id.to_string(),
            holder_id: d.holder_id.map(|h| h.to_string()),
            certificates: d.certificates.iter().map(Uuid::to_string).collect(),
            suspended_by: d.suspended_by,
            production: d.production,
            metadata: d.metadata,
            pin_retries_left: d.pin_retries_left,
            pin_reset: d.pin_reset,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            status_changed_at: rfc3339(d.status_changed_at),
        }
    }
}

/// A page of devices.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DevicePage {
    /// Oldest first.
    pub items: Vec<DeviceView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// A device's state.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StateView {
    /// State.
    pub status: DeviceStatus,
    /// Since when.
    pub status_changed_at: String,
    /// States it may move to.
    pub allowed_transitions: Vec<DeviceStatus>,
}

/// One entry of a device's history.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HistoryView {
    /// Id.
    pub id: String,
    /// `registered`, `transition`, `updated`, `certificate_linked`, `pin_reset`.
    pub kind: String,
    /// State before.
    pub from: Option<DeviceStatus>,
    /// State after.
    pub to: Option<DeviceStatus>,
    /// Reason given.
    pub reason: Option<String>,
    /// Who (`kind:id`).
    pub actor: String,
    /// Certificates affected.
    pub certificates: Vec<String>,
    /// When.
    pub at: String,
}

impl From<DeviceEvent> for HistoryView {
    fn from(e: DeviceEvent) -> Self {
        Self {
            id: e.id.to_string(),
            kind: e.kind,
            from: e.from,
            to: e.to,
            reason: e.reason,
            actor: e.actor,
            certificates: e.certificates.iter().map(Uuid::to_string).collect(),
            at: rfc3339(e.at),
        }
    }
}

/// A page of history.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HistoryPage {
    /// Oldest first.
    pub items: Vec<HistoryView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/v1/devices`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Kind.
    kind: DeviceKind,
    /// Serial number (unique within the office).
    #[schema(min_length = 1, max_length = 128)]
    serial: String,
    /// Registration office.
    office_id: Uuid,
    /// Holder.
    #[serde(default)]
    holder_id: Option<Uuid>,
    /// Production metadata.
    #[serde(default)]
    production: Production,
    /// Free-form attributes (a JSON object).
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Body of `PATCH /api/v1/devices/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// New holder (`null` removes it).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    holder_id: Option<Option<Uuid>>,
    /// Merge patch into the metadata.
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    /// Production fields to set; `extra` is merged.
    #[serde(default)]
    production: Option<Production>,
    /// PIN retries left, as the card middleware reports them (0 = blocked).
    #[serde(default)]
    #[schema(maximum = 15)]
    pin_retries_left: Option<u8>,
}

/// Body of `POST /api/v1/devices/{id}/certificates`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The certificate on the device.
    certificate_id: Uuid,
}

/// Body of a transition (optional).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// Why (kept in the history and the audit trail).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub(crate) reason: Option<String>,
    /// RFC 5280 reason for the certificates a revocation cascades to (revoke, damaged,
    /// terminate); default unspecified, or cessationOfOperation for damaged and terminated.
    #[serde(default)]
    revocation_reason: Option<String>,
}

/// Query of `GET /api/v1/devices`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// In this state.
    #[param(value_type = Option<DeviceStatus>)]
    status: Option<String>,
    /// Of this kind.
    #[param(value_type = Option<DeviceKind>)]
    kind: Option<String>,
    /// In this office.
    office_id: Option<Uuid>,
    /// Held by this person.
    holder_id: Option<Uuid>,
    /// From this production batch.
    batch: Option<String>,
    /// This serial.
    serial: Option<String>,
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

/// Query of the history.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

fn id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found())
}

fn kind(s: &str) -> Result<DeviceKind, ApiError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidFilter,
            format!("kind must be smart_card, usb_token or virtual_token, got `{s}`"),
        )
    })
}

/// List devices in the caller's scope.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceQuery),
    responses((status = 200, body = DevicePage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_devices(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::DevicesRead>,
    Query(q): Query<DeviceQuery>,
) -> Result<axum::Json<DevicePage>, ApiError> {
    let f = DeviceFilter {
        status: q.status.as_deref().map(DeviceStatus::parse).transpose()?,
        kind: q.kind.as_deref().map(kind).transpose()?,
        office_id: q.office_id,
        holder_id: q.holder_id,
        batch: q.batch,
        serial: q.serial,
    };
    let p = st
        .devices
        .list(&cap, f, PageRequest { after: q.cursor, limit: page_size(q.limit)? })
        .await?;
    Ok(axum::Json(DevicePage {
        items: p.items.into_iter().map(Into::into).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Register a device (state `registered`).
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", request_body = RegisterBody,
    responses((status = 201, body = DeviceView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn register_device(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::DevicesWrite>,
    Json(b): Json<RegisterBody>,
) -> Result<impl IntoResponse, ApiError> {
    let r = RegisterDevice {
        kind: b.kind,
        serial: b.serial,
        office_id: b.office_id,
        holder_id: b.holder_id,
        production: b.production,
        metadata: b.metadata,
    };
    Ok((StatusCode::CREATED, axum::Json(DeviceView::from(st.devices.register(&cap, r).await?))))
}

/// A device with its production metadata.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = DeviceView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_device(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::DevicesRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<DeviceView>, ApiError> {
    Ok(axum::Json(st.devices.get(&cap, id(&i)?).await?.into()))
}

/// Change a device's holder, metadata or production data.
#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", params(("id" = String, Path)),
    request_body = UpdateBody,
    responses((status = 200, body = DeviceView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_device(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::DevicesWrite>,
    Path(i): Path<String>,
    Json(b): Json<UpdateBody>,
) -> Result<axum::Json<DeviceView>, ApiError> {
    let u = UpdateDevice {
        holder_id: b.holder_id,
        metadata: b.metadata,
        production: b.production,
        pin_retries_left: b.pin_retries_left,
    };
    Ok(axum::Json(st.devices.update(&cap, id(&i)?, u).await?.into()))
}

/// A device's state and the transitions it allows.
#[utoipa::path(get, path = "/api/v1/devices/{id}/state", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = StateView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn device_state(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::DevicesRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<StateView>, ApiError> {
    let d = st.devices.get(&cap, id(&i)?).await?;
    Ok(axum::Json(StateView {
        status: d.status,
        status_changed_at: rfc3339(d.status_changed_at),
        allowed_transitions: d.status.next().to_vec(),
    }))
}

/// A device's lifecycle history, oldest first.
#[utoipa::path(get, path = "/api/v1/devices/{id}/history", tag = "devices", params(("id" = String, Path), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn device_history(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::DevicesRead>,
    Path(i): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<HistoryPage>, ApiError> {
    let p = st
        .devices
        .history(&cap, id(&i)?, PageRequest { after: q.cursor, limit: page_size(q.limit)? })
        .await?;
    Ok(axum::Json(HistoryPage {
        items: p.items.into_iter().map(Into::into).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Record a certificate as being on the device: it then follows the device's lifecycle.
#[utoipa::path(post, path = "/api/v1/devices/{id}/certificates", tag = "devices", params(("id" = String, Path)),
    request_body = LinkBody,
    responses((status = 200, body = DeviceView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn link_certificate(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::DevicesWrite>,
    Path(i): Path<String>,
    Json(b): Json<LinkBody>,
) -> Result<axum::Json<DeviceView>, ApiError> {
    Ok(axum::Json(st.devices.link_certificate(&cap, id(&i)?, b.certificate_id).await?.into()))
}

fn transition_body(bytes: &[u8]) -> Result<(Option<String>, Option<RevocationReason>), ApiError> {
    let b: TransitionBody = optional_body(bytes)?;
    let rr = b.revocation_reason.as_deref().map(RevocationReason::parse).transpose()?;
    Ok((b.reason, rr))
}

/// One handler per transition: the permission is in its type, the target state in its body.
macro_rules! transition {
    ($name:ident, $path:literal, $perm:ty, $to:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "devices", params(("id" = String, Path)),
            request_body(content = Option<TransitionBody>),
            responses((status = 200, body = DeviceView), (status = 400, body = Problem), (status = 401, body = Problem),
                (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
                (status = 502, body = Problem)),
            security(("bearer" = []), ("api_key" = [])))]
        async fn $name(
            State(st): State<AppState>,
            Authorized(cap): Authorized<$perm>,
            Path(i): Path<String>,
            body: axum::body::Bytes,
        ) -> Result<axum::Json<DeviceView>, ApiError> {
            let (reason, rr) = transition_body(&body)?;
            Ok(axum::Json(st.devices.transition(&cap, id(&i)?, $to, reason, rr).await?.into()))
        }
    };
}

transition!(
    activate,
    "/api/v1/devices/{id}/activate",
    perm::DeviceActivate,
    DeviceStatus::Active,
    "Activate a registered device (hand it out)."
);
transition!(
    suspend,
    "/api/v1/devices/{id}/suspend",
    perm::DeviceSuspend,
    DeviceStatus::Suspended,
    "Suspend a device: its active certificates go on hold (visible in CRL and OCSP)."
);
transition!(
    reactivate,
    "/api/v1/devices/{id}/reactivate",
    perm::DeviceReactivate,
    DeviceStatus::Active,
    "Reactivate a suspended or found device: the holds its suspension placed are released."
);
transition!(
    report_lost,
    "/api/v1/devices/{id}/lost",
    perm::DeviceSuspend,
    DeviceStatus::Lost,
    "Report a device lost: its certificates go on hold until it is found (reactivate) or revoked."
);
transition!(
    report_damaged,
    "/api/v1/devices/{id}/damaged",
    perm::DeviceRevoke,
    DeviceStatus::Damaged,
    "Report a device damaged: its certificates are revoked."
);
transition!(
    revoke,
    "/api/v1/devices/{id}/revoke",
    perm::DeviceRevoke,
    DeviceStatus::Revoked,
    "Revoke a device: its certificates are revoked."
);
transition!(
    expire,
    "/api/v1/devices/{id}/expire",
    perm::DeviceRevoke,
    DeviceStatus::Expired,
    "Mark a device expired (end of life)."
);
transition!(
    terminate,
    "/api/v1/devices/{id}/terminate",
    perm::DeviceRevoke,
    DeviceStatus::Terminated,
    "Terminate a device for good: its certificates are revoked."
);
