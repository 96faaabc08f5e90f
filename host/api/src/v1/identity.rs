//! External identity sources (identity-source plugins): which are in service, asking one about
//! someone (to pre-fill an enrolment), and completing a person record from one.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use sigil_core::access::authz::perm;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::people::PersonView;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json, optional_body};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources))
        .routes(routes!(lookup))
        .routes(routes!(complete))
}

/// An identity source in service.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SourceView {
    /// The plugin id, named as `source` in lookups and completions.
    id: String,
}

/// Body of `POST /api/v1/identity-sources/lookup`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    /// The source (may be left out when exactly one is in service).
    #[serde(default)]
    source: Option<String>,
    /// What is known of the person: `external_id`, `given_name`, `family_name`, `email`,
    /// `phone`, `attributes.<name>`.
    known: BTreeMap<String, String>,
}

/// What a source knows of someone.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LookupView {
    /// The source asked.
    source: String,
    /// Whether it knows the person.
    found: bool,
    /// The fields it returned.
    fields: BTreeMap<String, String>,
}

/// Body of `POST /api/v1/people/{id}/complete` (optional).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The source (may be left out when exactly one is in service).
    #[serde(default)]
    source: Option<String>,
    /// Also replace fields whose value differs from the source's (default: fill only the
    /// missing ones).
    #[serde(default)]
    overwrite: bool,
    /// Report what would change without writing.
    #[serde(default)]
    dry_run: bool,
}

/// The outcome of a completion.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CompletionView {
    /// The person after the completion.
    person: PersonView,
    /// The source asked.
    source: String,
    /// Whether the source knew the person.
    found: bool,
    /// Fields set (or, for a dry run, that would be set).
    completed: Vec<String>,
    /// Fields the source returned that are not person fields (nor defined custom fields).
    ignored: Vec<String>,
    /// Whether this was a dry run.
    dry_run: bool,
}

/// The identity sources in service.
#[utoipa::path(get, path = "/api/v1/identity-sources", tag = "people",
    responses((status = 200, body = Vec<SourceView>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_sources(
    State(st): State<AppState>,
    Authorized(_cap): Authorized<perm::PeopleRead>,
) -> axum::Json<Vec<SourceView>> {
    axum::Json(st.identity.sources().into_iter().map(|id| SourceView { id }).collect())
}

/// Ask an identity source about someone (for example to pre-fill an enrolment form).
#[utoipa::path(post, path = "/api/v1/identity-sources/lookup", tag = "people",
    request_body = LookupBody,
    responses((status = 200, body = LookupView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 502, body = Problem), (status = 504, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn lookup(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::PeopleWrite>,
    Json(b): Json<LookupBody>,
) -> Result<axum::Json<LookupView>, ApiError> {
    let (source, found) = st.identity.lookup(&cap, b.source, b.known.into_iter().collect()).await?;
    Ok(axum::Json(LookupView {
        source,
        found: found.is_some(),
        fields: found.unwrap_or_default().into_iter().collect(),
    }))
}

/// Complete a person record from an identity source: missing fields are filled (all differing
/// ones with `overwrite`), through the usual validation, audited as `person.complete`.
#[utoipa::path(post, path = "/api/v1/people/{id}/complete", tag = "people",
    params(("id" = String, Path)), request_body(content = Option<CompleteBody>),
    responses((status = 200, body = CompletionView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 502, body = Problem), (status = 504, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn complete(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::PeopleWrite>,
    Path(i): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<CompletionView>, ApiError> {
    let b: CompleteBody = optional_body(&body)?;
    let id = Uuid::parse_str(&i).map_err(|_| ApiError::not_found())?;
    let c = st.identity.complete(&cap, id, b.source, b.overwrite, b.dry_run).await?;
    Ok(axum::Json(CompletionView {
        person: c.person.into(),
        source: c.source,
        found: c.found,
        completed: c.completed,
        ignored: c.ignored,
        dry_run: b.dry_run,
    }))
}
