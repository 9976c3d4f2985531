//! Agencies' own triggers (`crate::triggers`): their admins write them; platform admins read,
//! pause and remove any agency's.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::{AuthUser, Token};
use crate::db::{self, DbConnection};
use crate::domain::Role;
use crate::errors::ApiError;
use crate::events::Event;
use crate::http::extract::{
    IfMatch, Page, PageRequest, Query, ValidJson, etag, page_response, versioned_response,
};
use crate::http::idempotency::{self, Authorized, Created, IdempotencyKey};
use crate::repo;
use crate::repo::audit::Change;
use crate::repo::triggers::TriggerRow;
use crate::triggers::{Action, Condition};

/// Triggers an agency may have: each runs its query on every event on the agency's cases.
const MAX_PER_AGENCY: i64 = 50;

/// A trigger as its agency's admins see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f4-8888-7c2d-8e3f-405162738495",
    "agency_id": "0193a6f4-0000-7c2d-8e3f-405162738495",
    "name": "Urgent cases to Anna",
    "event": "status_changed",
    "conditions": [{"field": "status", "op": "in", "values": ["in_approval"]},
                   {"field": "priority", "op": "in", "values": ["urgent"]}],
    "actions": [{"type": "assign", "user_id": "0193a6f4-1111-7c2d-8e3f-405162738495"},
                {"type": "add_tag", "tag": "urgent-intake"}],
    "active": true,
    "version": 1,
    "created_at": "2026-12-06T09:30:00Z",
    "updated_at": "2026-12-06T09:30:00Z"
}))]
pub struct TriggerView {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub agency_id: String,
    pub name: String,
    pub event: Event,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// Taken in this order.
    pub actions: Vec<Action>,
    pub active: bool,
    /// The `ETag`.
    pub version: i64,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<TriggerRow> for TriggerView {
    type Error = ApiError;

    fn try_from(row: TriggerRow) -> Result<Self, ApiError> {
        Ok(TriggerView {
            event: Event::from_code(&row.event)
                .ok_or_else(|| ApiError::internal("stored trigger event unknown"))?,
            conditions: serde_json::from_str(&row.conditions).map_err(ApiError::internal)?,
            actions: serde_json::from_str(&row.actions).map_err(ApiError::internal)?,
            id: row.id,
            agency_id: row.agency_id,
            name: row.name,
            active: row.active,
            version: row.version,
            created_at: timestamp(row.created_at),
            updated_at: timestamp(row.updated_at),
        })
    }
}

/// The spec's `event` of a trigger written: the events one runs on (others are 422).
fn trigger_event() -> Object {
    let events = Event::ALL
        .iter()
        .copied()
        .filter(|e| crate::triggers::runs_on(*e));
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(events.map(Event::as_str)))
        .description(Some(
            "The event on a case it runs on: any notification event but `ticket_opened` and \
             `mentioned`.",
        ))
        .build()
}

/// [`trigger_event`] in a change, where `null` leaves the event as it is.
fn trigger_event_or_null() -> Object {
    let mut schema = trigger_event();
    schema.schema_type = utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]);
    if let Some(values) = schema.enum_values.as_mut() {
        values.push(serde_json::Value::Null);
    }
    schema
}

#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Urgent cases to Anna",
    "event": "status_changed",
    "conditions": [{"field": "status", "op": "in", "values": ["in_approval"]},
                   {"field": "priority", "op": "in", "values": ["urgent"]}],
    "actions": [{"type": "assign", "user_id": "0193a6f4-1111-7c2d-8e3f-405162738495"},
                {"type": "add_tag", "tag": "urgent-intake"}]
}))]
pub struct CreateTrigger {
    #[serde(deserialize_with = "crate::api::trimmed")]
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(schema_with = trigger_event)]
    pub event: Event,
    /// 0 to 10, all of which must hold; none: every such event.
    #[serde(default)]
    #[validate(length(max = 10))]
    #[schema(max_items = 10)]
    pub conditions: Vec<Condition>,
    /// 1 to 10, taken in order.
    #[validate(length(min = 1, max = 10))]
    #[schema(min_items = 1, max_items = 10)]
    pub actions: Vec<Action>,
    /// `false` keeps it without running it.
    #[serde(default = "crate::api::yes")]
    #[schema(default = true)]
    pub active: bool,
}

/// The agency whose triggers an agency admin writes; 403 for everyone else.
fn own_agency(caller: &AuthUser) -> Result<String, ApiError> {
    match (caller.role, &caller.agency_id) {
        (Role::Agency, Some(agency)) if caller.admin => Ok(agency.clone()),
        _ => Err(ApiError::Forbidden(
            "Only an agency's admins write its triggers.".into(),
        )),
    }
}

/// Whose triggers the caller reads and manages: `Some(agency)` for an agency admin, `None`
/// (every agency's) for a platform admin; 403 for everyone else.
fn reach(caller: &AuthUser) -> Result<Option<String>, ApiError> {
    match (caller.role, &caller.agency_id) {
        (Role::Platform, _) if caller.admin => Ok(None),
        (Role::Agency, Some(agency)) if caller.admin => Ok(Some(agency.clone())),
        _ => Err(ApiError::Forbidden(
            "Only agency and platform admins manage triggers.".into(),
        )),
    }
}

/// The trigger the caller manages; 404 for another agency's.
fn managed(conn: &mut DbConnection, caller: &AuthUser, id: &str) -> Result<TriggerRow, ApiError> {
    let agency = reach(caller)?;
    repo::triggers::find(conn, agency.as_deref(), id)?
        .ok_or_else(|| ApiError::NotFound("No such trigger of yours.".into()))
}

/// 422 with every problem of the trigger, or nothing.
fn check(
    conn: &mut DbConnection,
    agency: &str,
    event: Event,
    conditions: &[Condition],
    actions: &[Action],
) -> Result<(), ApiError> {
    let errors = crate::triggers::problems(conn, agency, event, conditions, actions)?;
    match errors.is_empty() {
        true => Ok(()),
        false => Err(ApiError::validation(errors)),
    }
}

fn json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(ApiError::internal)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTriggersQuery {
    /// Platform admins: this agency's triggers only.
    pub agency_id: Option<Uuid>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List triggers
///
/// In the order they run (oldest first): an agency admin's agency's, a platform admin's every
/// agency's (or one's with `agency_id`). Roles: agency and platform admins.
#[utoipa::path(
    tag = "triggers",
    operation_id = "list_triggers",
    params(ListTriggersQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of triggers", body = Page<TriggerView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Only agency and platform admins; `agency_id` is for platform admins"),
    )
)]
#[get("/v1/triggers")]
pub async fn list_triggers(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<ListTriggersQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let asked = query.agency_id.map(|a| a.to_string());
    let (rows, page) = db::read(&state.pool, move |conn| {
        let agency = match (reach(&token.user(conn)?)?, asked) {
            (Some(_), Some(_)) => {
                return Err(ApiError::Forbidden(
                    "`agency_id` is for platform admins; you see your agency's triggers.".into(),
                ));
            }
            (own, asked) => own.or(asked),
        };
        let rows =
            repo::triggers::list(conn, agency.as_deref(), page.after.as_deref(), page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    let page = page.try_page::<_, TriggerView>(rows, |r| &r.id)?;
    Ok(page_response(&req, page))
}

/// Create a trigger
///
/// On every `event` on one of the agency's cases, once the event's own changes are made and in
/// the same transaction, each active trigger for it (oldest first) whose `conditions` the case
/// meets takes its `actions` in order; a later trigger sees what an earlier one changed. What
/// a trigger does fires no trigger. Each trigger that ran is in the rule log (`rule`
/// `trigger`, with each action's outcome); its changes are audited by the rule and move the
/// case's version on. Actions: `notify` (the event's notification also goes to that operator),
/// `set_priority` (the SLA targets follow), `assign` (to an active operator, not on a closed
/// case; capacity is not checked), `add_tag`, `send_webhook` (a delivery of the event to that
/// webhook of the agency, with `trigger` {`id`, `name`, `rule_log_id`} in its payload). At most
/// 50 per agency. Accepts `Idempotency-Key`. Roles: agency admins.
#[utoipa::path(
    tag = "triggers",
    operation_id = "create_trigger",
    request_body = CreateTrigger,
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = TriggerView,
            headers(("Location" = String, description = "The new trigger's URL"), ("ETag" = String, description = "Its version"))),
        (status = 403, description = "Only agency admins"),
        (status = 422, description = "A member breaks a rule (`not_a_case_event`, `not_a_trigger_event`, `invalid_value`, `invalid_op`, `too_many_triggers`…), or the `Idempotency-Key` was used with another body"),
    )
)]
#[post("/v1/triggers")]
pub async fn create_trigger(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    key: IdempotencyKey,
    body: ValidJson<CreateTrigger>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    idempotency::create(&state, &req, key, body.0, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let agency_id = own_agency(&caller)?;
        let user_id = caller.id.clone();
        let create = move |conn: &mut DbConnection, input: CreateTrigger| {
            check(
                conn,
                &agency_id,
                input.event,
                &input.conditions,
                &input.actions,
            )?;
            // Two creations at once each count before the other inserts (PostgreSQL): one waits.
            db::lock_key(conn, &format!("triggers:{agency_id}"))?;
            if repo::triggers::count(conn, &agency_id)? >= MAX_PER_AGENCY {
                return Err(ApiError::invalid_field(
                    "",
                    "too_many_triggers",
                    format!("at most {MAX_PER_AGENCY} triggers per agency"),
                ));
            }
            let now = db::now();
            let row = TriggerRow {
                id: repo::new_id(),
                agency_id,
                name: input.name,
                event: input.event.as_str().to_owned(),
                conditions: json(&input.conditions)?,
                actions: json(&input.actions)?,
                active: input.active,
                version: 1,
                created_by: caller.id.clone(),
                created_at: now,
                updated_at: now,
            };
            repo::triggers::insert(conn, &row)?;
            let change = Change::outside_cases("trigger", &row.id, Some(&row.agency_id), "create");
            repo::audit::append(conn, &actor, change.fields(audited(None, &row)))?;
            let view = TriggerView::try_from(row)?;
            Ok(Created {
                location: Some(format!("/v1/triggers/{}", view.id)),
                version: Some(view.version),
                body: view,
            })
        };
        Ok(Authorized { user_id, create })
    })
    .await
}

/// The audited members of a trigger, from `before` (none: created) to `after`.
fn audited(
    before: Option<&TriggerRow>,
    after: &TriggerRow,
) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let old = |f: fn(&TriggerRow) -> String| before.map(f);
    vec![
        ("name", old(|t| t.name.clone()), Some(after.name.clone())),
        ("event", old(|t| t.event.clone()), Some(after.event.clone())),
        (
            "conditions",
            old(|t| t.conditions.clone()),
            Some(after.conditions.clone()),
        ),
        (
            "actions",
            old(|t| t.actions.clone()),
            Some(after.actions.clone()),
        ),
        (
            "active",
            old(|t| t.active.to_string()),
            Some(after.active.to_string()),
        ),
    ]
}

/// Get a trigger
///
/// Answers 304 when `If-None-Match` names the current version. Roles: agency admins of its
/// agency, platform admins; 404 for anyone else's.
#[utoipa::path(
    tag = "triggers",
    operation_id = "get_trigger",
    params(("id" = Uuid, Path, description = "The trigger")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The trigger", body = TriggerView, headers(("ETag" = String, description = "Its version"))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 403, description = "Only agency and platform admins"),
        (status = 404, description = "No such trigger, or not the caller's agency's"),
    )
)]
#[get("/v1/triggers/{id}")]
pub async fn get_trigger(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().to_string();
    let row = db::read(&state.pool, move |conn| {
        let caller = token.user(conn)?;
        managed(conn, &caller, &id)
    })
    .await?;
    let view = TriggerView::try_from(row)?;
    Ok(versioned_response(&req, view.version, &view))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"active": false}))]
pub struct UpdateTrigger {
    #[serde(default, deserialize_with = "crate::api::trimmed_opt")]
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[schema(schema_with = trigger_event_or_null)]
    pub event: Option<Event>,
    /// Replaces the conditions.
    #[validate(length(max = 10))]
    #[schema(max_items = 10)]
    pub conditions: Option<Vec<Condition>>,
    /// Replaces the actions.
    #[validate(length(min = 1, max = 10))]
    #[schema(min_items = 1, max_items = 10)]
    pub actions: Option<Vec<Action>>,
    /// `false` pauses it; `true` runs it again from the next event.
    pub active: Option<bool>,
}

/// Update a trigger
///
/// Changes any member; when `event`, `conditions` or `actions` are sent, the whole trigger is
/// checked again (a pause or a new name is not: a trigger whose operator has left can still be
/// paused). Honours `If-Match` (412 when stale). Audited. Roles: agency admins of its agency, platform admins (who may pause or
/// change any agency's); 404 for anyone else's.
#[utoipa::path(
    tag = "triggers",
    operation_id = "update_trigger",
    params(
        ("id" = Uuid, Path, description = "The trigger"),
        IfMatch,
    ),
    request_body = UpdateTrigger,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The trigger as it is now", body = TriggerView, headers(("ETag" = String, description = "The new version"))),
        (status = 403, description = "Only agency and platform admins"),
        (status = 404, description = "No such trigger, or not the caller's agency's"),
        (status = 412, description = "`If-Match` is stale"),
        (status = 422, description = "A member breaks a rule"),
    )
)]
#[patch("/v1/triggers/{id}")]
pub async fn update_trigger(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    body: ValidJson<UpdateTrigger>,
) -> Result<HttpResponse, ApiError> {
    let input = body.0;
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let view = db::write(&state.pool, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let before = managed(conn, &caller, &id)?;
        if_match.check(before.version)?;
        let current = TriggerView::try_from(before.clone())?;
        // A pause or a new name needs no check: a trigger whose operator has left can still be
        // paused.
        let rewritten =
            input.event.is_some() || input.conditions.is_some() || input.actions.is_some();
        let event = input.event.unwrap_or(current.event);
        let conditions = input.conditions.unwrap_or(current.conditions);
        let actions = input.actions.unwrap_or(current.actions);
        if rewritten {
            check(conn, &before.agency_id, event, &conditions, &actions)?;
        }
        let after = TriggerRow {
            name: input.name.unwrap_or_else(|| before.name.clone()),
            event: event.as_str().to_owned(),
            conditions: json(&conditions)?,
            actions: json(&actions)?,
            active: input.active.unwrap_or(before.active),
            version: before.version + 1,
            updated_at: db::now(),
            ..before.clone()
        };
        let change =
            Change::outside_cases("trigger", &before.id, Some(&before.agency_id), "update");
        let audit = change.fields(audited(Some(&before), &after));
        if audit.is_empty() {
            return TriggerView::try_from(before);
        }
        if !repo::triggers::update(conn, &after, before.version)? {
            return Err(if_match.lost_race(before.version, "trigger"));
        }
        repo::audit::append(conn, &actor, audit)?;
        TriggerView::try_from(after)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag(view.version)))
        .json(view))
}

/// Delete a trigger
///
/// It runs no more; the rule log keeps what it did. Honours `If-Match`. Audited. Roles: agency
/// admins of its agency, platform admins; 404 for anyone else's.
#[utoipa::path(
    tag = "triggers",
    operation_id = "delete_trigger",
    params(
        ("id" = Uuid, Path, description = "The trigger"),
        IfMatch,
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Only agency and platform admins"),
        (status = 404, description = "No such trigger, or not the caller's agency's"),
        (status = 412, description = "`If-Match` is stale"),
    )
)]
#[delete("/v1/triggers/{id}")]
pub async fn delete_trigger(
    req: HttpRequest,
    if_match: IfMatch,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    db::write(&state.pool, move |conn| {
        let Asked { caller, actor, .. } = asking.resolve(conn)?;
        let row = managed(conn, &caller, &id)?;
        if_match.check(row.version)?;
        if !repo::triggers::delete(conn, &row.id, row.version)? {
            // Changed or deleted since it was read (PostgreSQL): 404 if it is gone.
            managed(conn, &caller, &id)?;
            return Err(if_match.lost_race(row.version, "trigger"));
        }
        let change = Change::outside_cases("trigger", &row.id, Some(&row.agency_id), "delete");
        repo::audit::append(
            conn,
            &actor,
            vec![change.field("name", Some(row.name.clone()), None)],
        )?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
