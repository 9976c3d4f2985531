//! Surveys: the client rates a closed case (1 to 5, with an optional comment), with
//! `confirm_completion` or afterwards; the card shows the newest rating.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::api::case_access::{Viewer, create_on_case, read_on_case, touch, wrong_state};
use crate::api::{Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db::{self, DbConnection};
use crate::domain::{CaseStatus, Role};
use crate::errors::ApiError;
use crate::http::extract::{IfMatch, ValidJson};
use crate::http::idempotency::{Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::{Actor, Change};
use crate::repo::cases::CaseRow;
use crate::repo::surveys::SurveyRow;

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rating": 5, "comment": "Quick and thorough."}))]
pub struct PostSurvey {
    #[serde(deserialize_with = "crate::api::whole_number")]
    #[validate(range(min = 1, max = 5))]
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i64,
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6fb-cccc-7c2d-8e3f-405162738495",
    "rating": 5,
    "comment": "Quick and thorough.",
    "created_at": "2026-11-28T09:00:00Z"
}))]
pub struct SurveyView {
    #[schema(format = "uuid")]
    pub id: String,
    /// From 1 (poor) to 5 (excellent).
    pub rating: i32,
    pub comment: Option<String>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<SurveyRow> for SurveyView {
    fn from(r: SurveyRow) -> Self {
        SurveyView {
            id: r.id,
            rating: r.rating,
            comment: r.comment,
            created_at: timestamp(r.created_at),
        }
    }
}

/// Stores the client's rating of `case`, with an audit row. The caller moves the case's
/// version: the card shows the newest survey.
pub fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    case: &CaseRow,
    rating: i64,
    comment: Option<String>,
) -> Result<SurveyView, ApiError> {
    // Validated from 1 to 5 where it was read.
    let rating = i32::try_from(rating).map_err(ApiError::internal)?;
    let row = SurveyRow {
        id: repo::new_id(),
        case_id: case.id.clone(),
        client_id: actor.user_id.clone(),
        rating,
        comment,
        created_at: db::now(),
    };
    repo::surveys::insert(conn, &row)?;
    let change = Change::entity("survey", &row.id, Some(&case.id), "create");
    repo::audit::append(
        conn,
        actor,
        change.fields(vec![
            ("rating", None, Some(rating.to_string())),
            ("comment", None, row.comment.clone()),
        ]),
    )?;
    Ok(SurveyView::from(row))
}

/// A rating's URL, the `Location` of its creation.
fn survey_url(case_id: &str, id: &str) -> String {
    format!("/v1/cases/{case_id}/survey/{id}")
}

/// Get a case's rating
///
/// The client's newest rating of the closed case, as the card's `last_survey` shows it; 404
/// while there is none. Roles: anyone who can see the case.
#[utoipa::path(
    tag = "cases",
    operation_id = "get_survey",
    params(("id" = Uuid, Path, description = "Case id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The newest rating", body = SurveyView),
        (status = 404, description = "No such case, not one the caller can see, or not rated"),
    )
)]
#[get("/v1/cases/{id}/survey")]
pub async fn get_survey(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let survey = read_on_case(&state, &req, token, id.into_inner(), |conn, _, case| {
        repo::surveys::last(conn, &case.id)?
            .ok_or_else(|| ApiError::NotFound("The client has not rated this case.".into()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(SurveyView::from(survey)))
}

/// Get one rating of a case
///
/// Each rating is kept; the newest is the card's `last_survey`. Roles: anyone who can see the
/// case.
#[utoipa::path(
    tag = "cases",
    operation_id = "get_survey_by_id",
    params(("id" = Uuid, Path, description = "Case id"), ("survey_id" = Uuid, Path, description = "Rating id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The rating", body = SurveyView),
        (status = 404, description = "No such case or rating, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/survey/{survey_id}")]
pub async fn get_survey_by_id(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (case_id, survey_id) = path.into_inner();
    let survey_id = survey_id.to_string();
    let survey = read_on_case(&state, &req, token, case_id, move |conn, _, case| {
        repo::surveys::find(conn, &case.id, &survey_id)?
            .ok_or_else(|| ApiError::NotFound("No such rating of this case.".into()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(SurveyView::from(survey)))
}

/// Rate a closed case
///
/// The client rates their case once it is `closed` (409 otherwise), from 1 to 5, with an
/// optional comment; `confirm_completion` takes the same two inputs. A later rating replaces
/// the one the card shows (each is kept, with an audit row), and moves the case's version.
/// Accepts `Idempotency-Key`, as buying a service does. Roles: client (own case).
#[utoipa::path(
    tag = "cases",
    operation_id = "create_survey",
    params(("id" = Uuid, Path, description = "Case id"), IdempotencyKey),
    request_body = PostSurvey,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Rated", body = SurveyView,
            headers(("Location" = String, description = "The rating's URL"))),
        (status = 403, description = "Only the client rates their case"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The case is not closed (`wrong_state`), or another change to the case committed first (`concurrent_update`)"),
    )
)]
#[post("/v1/cases/{id}/survey")]
pub async fn create_survey(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidJson<PostSurvey>,
) -> Result<HttpResponse, ApiError> {
    create_on_case(
        &state,
        &req,
        key,
        body.0,
        Asking::new(token, &req),
        id.into_inner().to_string(),
        |conn, viewer, actor, case, input| rate(conn, viewer, actor, &case, input),
    )
    .await
}

/// The rating itself, once the caller may see the case and is not replayed an earlier answer.
fn rate(
    conn: &mut DbConnection,
    viewer: &Viewer,
    actor: &Actor,
    case: &CaseRow,
    input: PostSurvey,
) -> Result<Created<SurveyView>, ApiError> {
    if viewer.role != Role::Client {
        return Err(ApiError::Forbidden(
            "Only the client rates their case.".into(),
        ));
    }
    let status = case.status();
    if status != CaseStatus::Closed {
        return Err(wrong_state(
            viewer,
            case,
            format!("A case is rated once it is closed; this one is `{status}`."),
        ));
    }
    touch(conn, viewer, case, &IfMatch::default())?;
    let survey = record(conn, actor, case, input.rating, input.comment)?;
    Ok(Created {
        location: Some(survey_url(&case.id, &survey.id)),
        version: None,
        body: survey,
    })
}
