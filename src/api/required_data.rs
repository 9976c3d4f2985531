//! Required data: the form the agency defines on a case and the client fills while the case is
//! `in_approval`. After `accept` or `reject` it is locked: every write answers 409.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, patch, put, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::api::case_access::{Viewer, find_visible, touch, wrong_state};
use crate::api::services::{FieldDefinition, check_fields};
use crate::api::{Asked, Asking};
use crate::app::AppState;
use crate::auth::Token;
use crate::db::{self, DbConnection};
use crate::domain::{CaseStatus, FieldType, Role};
use crate::errors::{ApiError, FieldError};
use crate::http::extract::{IfMatch, ValidJson, etag, pointer_token, versioned_response};
use crate::repo;
use crate::repo::attachments::AttachmentRow;
use crate::repo::audit::Change;
use crate::repo::cases::{CaseRow, FieldRow};

/// The one status in which the form changes.
const OPEN: [CaseStatus; 1] = [CaseStatus::InApproval];

/// Form rows for `definitions`, in order.
pub fn field_rows(case_id: &str, definitions: Vec<FieldDefinition>) -> Vec<FieldRow> {
    definitions
        .into_iter()
        .enumerate()
        .map(|(i, f)| FieldRow {
            case_id: case_id.to_owned(),
            key: f.key,
            position: i as i32,
            label: f.label,
            field_type: f.field_type.as_str().to_owned(),
            required: f.required,
            options: f.options.map(|o| serde_json::json!(o).to_string()),
            help: f.help,
            value: None,
        })
        .collect()
}

fn options_of(row: &FieldRow) -> Option<Vec<String>> {
    row.options
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
}

fn field_type_of(row: &FieldRow) -> FieldType {
    FieldType::from_code(&row.field_type).unwrap_or(FieldType::Text)
}

fn definition_of(row: &FieldRow) -> FieldDefinition {
    FieldDefinition {
        key: row.key.clone(),
        label: row.label.clone(),
        field_type: field_type_of(row),
        required: row.required,
        options: options_of(row),
        help: row.help.clone(),
    }
}

/// A field of the form with its value. The definition's members are written out, not
/// flattened in: `FieldDefinition` refuses unknown members, so a schema composed from it would
/// refuse `value` (tests/api/openapi.rs checks that no schema composes a closed one).
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldView {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub required: bool,
    /// The choices of a `choice` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub options: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub help: Option<String>,
    /// `null` while empty. Text, long text and choice: a string; number; boolean; date:
    /// `YYYY-MM-DD`; image and file: the id of an attachment of this case; location:
    /// `{"latitude", "longitude", "place_name"?}`.
    pub value: Value,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "fields": [{"key": "subject_name", "label": "Subject's full name", "type": "text", "required": true, "value": "Mario Rossi"},
               {"key": "last_seen", "label": "Last seen", "type": "location", "required": false,
                "value": {"latitude": 45.4642, "longitude": 9.19, "place_name": "Piazza del Duomo"}}],
    "locked": false,
    "editable": true
}))]
pub struct RequiredDataView {
    pub fields: Vec<FieldView>,
    /// The case was accepted or rejected (or went further): the form never changes again.
    pub locked: bool,
    /// The form changes now (`in_approval`).
    pub editable: bool,
}

fn view(case: &CaseRow, rows: Vec<FieldRow>) -> RequiredDataView {
    let status = case.status();
    RequiredDataView {
        locked: !matches!(
            status,
            CaseStatus::AwaitingPayment | CaseStatus::PaymentFailed | CaseStatus::InApproval
        ),
        editable: OPEN.contains(&status),
        fields: rows
            .iter()
            .map(|r| FieldView {
                key: r.key.clone(),
                label: r.label.clone(),
                field_type: field_type_of(r),
                required: r.required,
                options: options_of(r),
                help: r.help.clone(),
                value: r
                    .value
                    .as_deref()
                    .and_then(|v| serde_json::from_str(v).ok())
                    .unwrap_or(Value::Null),
            })
            .collect(),
    }
}

/// The form's submitted data as JSON text, for the storyline entry written on accept/reject.
pub fn snapshot(conn: &mut DbConnection, case: &CaseRow) -> Result<String, ApiError> {
    let rows = repo::cases::fields(conn, &case.id)?;
    serde_json::to_string(&view(case, rows).fields).map_err(ApiError::internal)
}

/// Read the required data
///
/// Fields with their values, `locked` and `editable`. Its `ETag` is the case's version, which
/// the form's writes take in `If-Match`; 304 when `If-None-Match` names it. Roles: anyone who
/// can see the case.
#[utoipa::path(
    tag = "required-data",
    operation_id = "get_required_data",
    params(("id" = Uuid, Path, description = "Case id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The form", body = RequiredDataView,
            headers(("ETag" = String, description = "The case's version"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/required-data")]
pub async fn get_required_data(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let (version, view) = db::read(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        let case = find_visible(conn, &viewer, &id)?;
        let rows = repo::cases::fields(conn, &id)?;
        Ok((case.version, view(&case, rows)))
    })
    .await?;
    Ok(versioned_response(&req, version, &view))
}

/// The case, visible, with `role` the only one allowed, open for the form; 404/403/412/409.
fn open_case(
    conn: &mut DbConnection,
    viewer: &Viewer,
    id: &str,
    role: Role,
    if_match: &IfMatch,
) -> Result<CaseRow, ApiError> {
    let case = find_visible(conn, viewer, id)?;
    if viewer.role != role {
        return Err(ApiError::Forbidden(match role {
            Role::Agency => "Only the agency defines the required data.".into(),
            _ => "Only the client fills the required data.".into(),
        }));
    }
    if_match.check(case.version)?;
    let status = case.status();
    if !OPEN.contains(&status) {
        return Err(wrong_state(
            viewer,
            &case,
            format!(
                "The required data changes only while the case is in approval, not `{status}`."
            ),
        ));
    }
    Ok(case)
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"fields": [{"key": "subject_name", "label": "Subject's full name", "type": "text", "required": true}]}))]
pub struct DefineFields {
    /// The whole form, in order. Values of fields that keep their key and type (and, for a
    /// choice, whose value is still an option) are kept; the others are cleared. At most 100.
    #[schema(max_items = 100)]
    pub fields: Vec<FieldDefinition>,
}

/// Define the required-data fields
///
/// Replaces the form while the case is `in_approval` (409 otherwise). Honours `If-Match` on the
/// case version, which it bumps. Roles: agency.
#[utoipa::path(
    tag = "required-data",
    operation_id = "define_required_fields",
    params(
        ("id" = Uuid, Path, description = "Case id"),
        IfMatch,
    ),
    request_body = DefineFields,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new form", body = RequiredDataView, headers(("ETag" = String, description = "The case's new version"))),
        (status = 403, description = "Only agency staff define fields"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The case is not in approval (`wrong_state`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A definition breaks a rule"),
    )
)]
#[put("/v1/cases/{id}/required-data/fields")]
pub async fn define_fields(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<DefineFields>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let definitions = body.0.fields;
    let (view, version) = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let case = open_case(conn, &viewer, &id, Role::Agency, &if_match)?;
        let errors = check_fields("/fields", &definitions);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let before = repo::cases::fields(conn, &id)?;
        let old_definitions: Vec<FieldDefinition> = before.iter().map(definition_of).collect();
        let mut rows = field_rows(&id, definitions.clone());
        let mut audit = Vec::new();
        let change = Change::entity("required_data", &id, Some(&id), "define_fields");
        for old in &before {
            let kept = rows.iter_mut().find(|r| {
                r.key == old.key
                    && r.field_type == old.field_type
                    && old.value.as_deref().is_some_and(|v| {
                        r.field_type != FieldType::Choice.as_str()
                            || serde_json::from_str::<String>(v)
                                .is_ok_and(|s| options_of(r).unwrap_or_default().contains(&s))
                    })
            });
            match kept {
                Some(row) => row.value = old.value.clone(),
                None if old.value.is_some() => {
                    audit.push(change.clone().field(&old.key, old.value.clone(), None));
                }
                None => {}
            }
        }
        if old_definitions != definitions {
            audit.insert(
                0,
                change.clone().field(
                    "fields",
                    Some(serde_json::to_string(&old_definitions).map_err(ApiError::internal)?),
                    Some(serde_json::to_string(&definitions).map_err(ApiError::internal)?),
                ),
            );
        }
        let version = touch(conn, &viewer, &case, &if_match)?;
        repo::cases::replace_fields(conn, &id, &rows)?;
        repo::audit::append(conn, &actor, audit)?;
        Ok((view(&case, rows), version))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(version)))
        .json(view))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"values": {"subject_name": "Mario Rossi", "last_seen": {"latitude": 45.4642, "longitude": 9.19}, "car_colour": null}}))]
pub struct FillValues {
    /// Field key → value; `null` clears one. Keys not sent are left alone.
    pub values: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Location {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    place_name: Option<String>,
}

/// The file an image or file value names, if it is one of the case's that the client sees (only
/// the client fills values), locked against a racing deletion.
fn named_file(
    conn: &mut DbConnection,
    case_id: &str,
    field: &FieldRow,
    value: &Value,
) -> Result<Option<AttachmentRow>, ApiError> {
    let kind = FieldType::from_code(&field.field_type).unwrap_or(FieldType::Text);
    let id = value.as_str().filter(|s| Uuid::parse_str(s).is_ok());
    let (FieldType::Image | FieldType::File, Some(id)) = (kind, id) else {
        return Ok(None);
    };
    repo::attachments::lock_for_citing(conn, case_id, &[id.to_owned()])?;
    Ok(repo::attachments::find(conn, id, false)?.filter(|a| a.case_id == case_id))
}

/// Checks one value against its field (and the file it names, from [`named_file`]); the
/// normalized JSON to store, or the reason it fails.
fn check_value(
    field: &FieldRow,
    value: Value,
    file: Option<AttachmentRow>,
) -> Result<Value, (&'static str, String)> {
    let kind = FieldType::from_code(&field.field_type).unwrap_or(FieldType::Text);
    let text = |max: usize| -> Result<Value, (&'static str, String)> {
        match &value {
            Value::String(s) if !s.trim().is_empty() && s.trim().chars().count() <= max => {
                Ok(Value::String(s.trim().to_owned()))
            }
            _ => Err((
                "invalid_value",
                format!("a non-empty string of at most {max} characters"),
            )),
        }
    };
    match kind {
        FieldType::Text => text(1000),
        FieldType::LongText => text(10_000),
        FieldType::Number => match &value {
            Value::Number(_) => Ok(value),
            _ => Err(("invalid_value", "a number".into())),
        },
        FieldType::Boolean => match &value {
            Value::Bool(_) => Ok(value),
            _ => Err(("invalid_value", "`true` or `false`".into())),
        },
        FieldType::Date => match value.as_str().and_then(crate::api::plain_date) {
            Some(date) => Ok(Value::String(date.format("%Y-%m-%d").to_string())),
            _ => Err(("invalid_value", "a date as YYYY-MM-DD".into())),
        },
        FieldType::Choice => {
            let options = options_of(field).unwrap_or_default();
            match value.as_str() {
                Some(s) if options.iter().any(|o| o == s) => Ok(value),
                _ => Err(("invalid_choice", format!("one of: {}", options.join(", ")))),
            }
        }
        FieldType::Image | FieldType::File => match file {
            Some(a) if kind == FieldType::File || a.content_type.starts_with("image/") => Ok(value),
            Some(_) => Err((
                "invalid_attachment",
                "an image attached to this case".into(),
            )),
            None => Err((
                "invalid_attachment",
                "the id of an attachment of this case".into(),
            )),
        },
        FieldType::Location => {
            let location: Location = serde_json::from_value(value).map_err(|_| {
                (
                    "invalid_location",
                    "`{\"latitude\", \"longitude\", \"place_name\"?}`".to_owned(),
                )
            })?;
            let place_ok = location
                .place_name
                .as_ref()
                .is_none_or(|p| p.chars().count() <= 200);
            if (-90.0..=90.0).contains(&location.latitude)
                && (-180.0..=180.0).contains(&location.longitude)
                && place_ok
            {
                let mut out = serde_json::json!({"latitude": location.latitude, "longitude": location.longitude});
                if let Some(place) = location.place_name {
                    out["place_name"] = Value::String(place);
                }
                Ok(out)
            } else {
                Err((
                    "invalid_location",
                    "latitude −90…90, longitude −180…180, place name at most 200 characters".into(),
                ))
            }
        }
    }
}

/// Fill required-data values
///
/// Sets (or, with `null`, clears) values while the case is `in_approval` (409 otherwise). Each
/// value is checked against its field's type: a choice among its options, a location with valid
/// coordinates, an image or file that is an attachment of this case… Unknown keys and bad values
/// are 422 with one error per key; nothing is written then. Honours `If-Match` on the case
/// version, which it bumps. Roles: client.
#[utoipa::path(
    tag = "required-data",
    operation_id = "fill_required_values",
    params(
        ("id" = Uuid, Path, description = "Case id"),
        IfMatch,
    ),
    request_body = FillValues,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The form with its values", body = RequiredDataView, headers(("ETag" = String, description = "The case's new version"))),
        (status = 403, description = "Only the client fills values"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The case is not in approval (`wrong_state`)"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "An unknown key or a value of the wrong type"),
    )
)]
#[patch("/v1/cases/{id}/required-data/values")]
pub async fn fill_values(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<FillValues>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let values = body.0.values;
    let (view, version) = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let case = open_case(conn, &viewer, &id, Role::Client, &if_match)?;
        let mut rows = repo::cases::fields(conn, &id)?;
        let mut errors = Vec::new();
        let mut updates = Vec::new();
        for (key, value) in values {
            let pointer = format!("/values/{}", pointer_token(&key));
            let Some(row) = rows.iter().find(|r| r.key == key) else {
                errors.push(FieldError::new(
                    pointer,
                    "unknown_field",
                    "no field has this key",
                ));
                continue;
            };
            let stored = if value.is_null() {
                None
            } else {
                let file = named_file(conn, &id, row, &value)?;
                match check_value(row, value, file) {
                    Ok(v) => Some(v.to_string()),
                    Err((code, detail)) => {
                        errors.push(FieldError::new(pointer, code, format!("expected {detail}")));
                        continue;
                    }
                }
            };
            updates.push((key, stored));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let change = Change::entity("required_data", &id, Some(&id), "fill");
        let changed: Vec<_> = updates
            .into_iter()
            .filter(|(key, stored)| rows.iter().any(|r| &r.key == key && &r.value != stored))
            .collect();
        let version = if changed.is_empty() {
            case.version
        } else {
            // The case row before the fields, as redefining the form takes them: the opposite
            // order deadlocked the two on PostgreSQL.
            let version = touch(conn, &viewer, &case, &if_match)?;
            let mut audit = Vec::new();
            for (key, stored) in changed {
                let row = rows
                    .iter_mut()
                    .find(|r| r.key == key)
                    .expect("checked above");
                audit.push(
                    change
                        .clone()
                        .field(&key, row.value.clone(), stored.clone()),
                );
                repo::cases::set_field_value(conn, &id, &key, stored.clone())?;
                row.value = stored;
            }
            repo::audit::append(conn, &actor, audit)?;
            version
        };
        Ok((view(&case, rows), version))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(version)))
        .json(view))
}
