//! `/api/v1` resources.

pub mod acme;
pub mod apikeys;
pub mod audit;
pub mod certificates;
pub mod csc_providers;
pub mod devices;
pub mod ext;
pub mod identity;
pub mod meta;
pub mod operators;
pub mod org;
pub mod people;
pub mod pin_reset;
pub mod plugins;
pub mod profiles;
pub mod reports;
pub mod requests;
pub mod selfservice;
pub mod signers;
pub mod stream;
pub mod x509;

use sigil_core::ErrorCode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 text of an instant.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses an RFC 3339 query value.
pub(crate) fn parse_time(field: &str, s: &str) -> Result<OffsetDateTime, crate::error::ApiError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        crate::error::ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("{field} must be an RFC 3339 date-time, got `{s}`"),
        )
    })
}

/// A permission pattern, documented with the catalogue as its enumeration.
pub(crate) struct PermissionName;

impl utoipa::PartialSchema for PermissionName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut names: Vec<String> = vec!["*".into()];
        for p in sigil_core::access::authz::CATALOGUE {
            let wildcard = format!("{}:*", p.name.split(':').next().unwrap_or(""));
            if !names.contains(&wildcard) {
                names.push(wildcard);
            }
            names.push(p.name.to_owned());
        }
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .description(Some("A permission from GET /api/v1/permissions, `resource:*`, or `*`"))
            .into()
    }
}

impl utoipa::ToSchema for PermissionName {}

/// Serde helper: distinguishes an absent field (`None`) from `null` (`Some(None)`).
pub(crate) fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
