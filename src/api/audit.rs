//! The audit trail: the whole log, a case's and a ticket's, for admins, and the hash chain's
//! verification.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::{Asked, Asking, case_access, tickets, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::domain::Role;
use crate::errors::ApiError;
use crate::http::extract::{Page, PageRequest, Query, invalid_cursor, page_response};
use crate::repo;
use crate::repo::audit::{AuditFilter, AuditRow};

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f5-5555-7c2d-8e3f-405162738495",
    "seq": 42,
    "entity": "case",
    "entity_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "action": "suspend",
    "field": "status",
    "old_value": "in_progress",
    "new_value": "suspended",
    "actor_id": "0193a6f2-2c4e-7b51-9d0a-3f1e2a4b5c6d",
    "actor_role": "agency",
    "request_id": "0193a6f5-6666-7b51-9d0a-3f1e2a4b5c6d",
    "created_at": "2026-11-22T16:30:00Z",
    "prev_hash": "5b1f…",
    "hash": "9c0e…",
    "agency_id": "0193a6f1-0a1b-7c2d-8e3f-405162738495",
    "hash_version": 2
}))]
pub struct AuditEntry {
    #[schema(format = "uuid")]
    pub id: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// `case`, `case_agents`, `service`, `user`, `agency`, …
    pub entity: String,
    pub entity_id: String,
    #[schema(format = "uuid")]
    pub case_id: Option<String>,
    /// `create`, `update`, a workflow action, `take`, `delegate`, `set_agents`, …
    pub action: String,
    /// The changed field; `reason` carries a transition's reason.
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    #[schema(format = "uuid")]
    pub actor_id: Option<String>,
    pub actor_role: Option<Role>,
    pub request_id: Option<String>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// SHA-256 (hex) of the previous row; 64 zeros for the first.
    pub prev_hash: String,
    /// SHA-256 (hex) of `prev_hash` and this row's content, by `hash_version`'s rule.
    pub hash: String,
    /// Whose agency's admins read the row (its case's, or the agency that owns what it is
    /// about); `null` for the platform's own.
    #[schema(format = "uuid")]
    pub agency_id: Option<String>,
    /// The rule `hash` follows (the README's "Audit rows are hash-chained"): 2 covers
    /// `agency_id` too; 1, rows written before it, does not.
    #[schema(minimum = 1, maximum = 2)]
    pub hash_version: i32,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            actor_role: r.actor_role.as_deref().and_then(Role::from_code),
            id: r.id,
            seq: r.seq,
            entity: r.entity,
            entity_id: r.entity_id,
            case_id: r.case_id,
            action: r.action,
            field: r.field,
            old_value: r.old_value,
            new_value: r.new_value,
            actor_id: r.actor_id,
            request_id: r.request_id,
            created_at: timestamp(r.created_at),
            prev_hash: r.prev_hash,
            hash: r.hash,
            agency_id: r.agency_id,
            hash_version: r.hash_version,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditFormat {
    Json,
    Csv,
}

/// A case's or a ticket's log: the filters besides the path's case or ticket.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrailQuery {
    /// Rows written by this user.
    pub actor_id: Option<Uuid>,
    /// Rows of this action (`create`, `update`, `suspend`, …).
    #[param(min_length = 1, max_length = 100)]
    pub action: Option<String>,
    /// Rows written at or after this instant (RFC 3339).
    #[serde(default, deserialize_with = "crate::api::instant_opt")]
    pub from: Option<DateTime<Utc>>,
    /// Rows written before this instant (RFC 3339).
    #[serde(default, deserialize_with = "crate::api::instant_opt")]
    pub to: Option<DateTime<Utc>>,
    /// Rows on a JSON page.
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; a CSV export starts after it too.
    pub cursor: Option<String>,
    /// `csv` (or `Accept: text/csv`): every row the filters keep, as CSV, in one answer, an
    /// attachment named `audit-<case or ticket number>.csv` (the whole log's `audit.csv`).
    #[param(inline)]
    pub format: Option<AuditFormat>,
}

/// The whole log's filters: a case's, and the case or the thing itself.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Rows about this case.
    pub case_id: Option<Uuid>,
    /// Rows about this one thing (`entity_id`): a ticket (all of its rows), a message, a
    /// service, a webhook, a trigger…
    pub entity_id: Option<Uuid>,
    /// Rows written by this user.
    pub actor_id: Option<Uuid>,
    /// Rows of this action (`create`, `update`, `suspend`, …).
    #[param(min_length = 1, max_length = 100)]
    pub action: Option<String>,
    /// Rows written at or after this instant (RFC 3339).
    #[serde(default, deserialize_with = "crate::api::instant_opt")]
    pub from: Option<DateTime<Utc>>,
    /// Rows written before this instant (RFC 3339).
    #[serde(default, deserialize_with = "crate::api::instant_opt")]
    pub to: Option<DateTime<Utc>>,
    /// Rows on a JSON page.
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; a CSV export starts after it too.
    pub cursor: Option<String>,
    /// `csv` (or `Accept: text/csv`): every row the filters keep, as CSV, in one answer, an
    /// attachment named `audit-<case or ticket number>.csv` (the whole log's `audit.csv`).
    #[param(inline)]
    pub format: Option<AuditFormat>,
}

impl From<TrailQuery> for AuditQuery {
    fn from(q: TrailQuery) -> Self {
        AuditQuery {
            case_id: None,
            entity_id: None,
            actor_id: q.actor_id,
            action: q.action,
            from: q.from,
            to: q.to,
            limit: q.limit,
            cursor: q.cursor,
            format: q.format,
        }
    }
}

/// A case's change log
///
/// Every change to the case, newest first: entity, field, old and new value, actor, time,
/// request id and the hash chain. Filters: `actor_id`, `action`, `from`/`to`; cursor
/// pagination, or the whole filtered log as CSV. Roles: platform admins (every case) and agency
/// admins (their agency's cases; other cases are 404); every other caller is 403.
#[utoipa::path(
    tag = "audit",
    operation_id = "list_case_audit",
    params(("id" = Uuid, Path, description = "Case id"), TrailQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of audit rows, or every row the filters keep as CSV", content(
            (Page<AuditEntry> = "application/json"),
            (String = "text/csv", example = json!(CSV_EXAMPLE)),
        ), headers(
            ("Link" = String, description = "`<…>; rel=\"next\"` when another JSON page follows"),
            ("Content-Disposition" = String, description = "The CSV's file name: `attachment; filename=\"audit-<case or ticket number>.csv\"` (`audit.csv` for the whole log)"),
        )),
        (status = 403, description = "Only platform admins and agency admins read audit logs"),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/audit")]
pub async fn list_case_audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<TrailQuery>,
) -> Result<HttpResponse, ApiError> {
    let case = Trail::Case(id.into_inner().to_string());
    audit_answer(req, state, token, Some(case), query.into_inner().into()).await
}

/// A support ticket's change log
///
/// Every change to the ticket, newest first: its creation, edits, moves, assignments,
/// messages (by id, never their text), files and SLA warnings and breaches, each with actor,
/// time, request id and the hash chain (the retry of one of its webhook deliveries or mails
/// is that delivery's or mail's row, in the whole log). Filters: `actor_id`, `action`,
/// `from`/`to`; cursor pagination, or the whole filtered log as CSV. Roles: platform admins
/// (every ticket) and agency admins (their agency's own tickets; other tickets are 404); every
/// other caller is 403.
#[utoipa::path(
    tag = "audit",
    operation_id = "list_ticket_audit",
    params(("id" = Uuid, Path, description = "Ticket id"), TrailQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of audit rows, or every row the filters keep as CSV", content(
            (Page<AuditEntry> = "application/json"),
            (String = "text/csv", example = json!(CSV_EXAMPLE)),
        ), headers(
            ("Link" = String, description = "`<…>; rel=\"next\"` when another JSON page follows"),
            ("Content-Disposition" = String, description = "The CSV's file name: `attachment; filename=\"audit-<case or ticket number>.csv\"` (`audit.csv` for the whole log)"),
        )),
        (status = 403, description = "Only platform admins and agency admins read audit logs"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
    )
)]
#[get("/v1/tickets/{id}/audit")]
pub async fn list_ticket_audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<TrailQuery>,
) -> Result<HttpResponse, ApiError> {
    let ticket = Trail::Ticket(id.into_inner().to_string());
    audit_answer(req, state, token, Some(ticket), query.into_inner().into()).await
}

/// The audit log
///
/// Every change, newest first, for platform admins; for an agency admin, the rows of their
/// agency's cases, services, own tickets, webhooks, triggers, SLA calendars and policies, its
/// users and itself (a password or a client's identity is named there without its values).
/// Filters: `case_id`, `entity_id`, `actor_id`, `action`, `from`/`to` (each a walk of its own
/// index); cursor pagination, or the whole filtered log as CSV (`format=csv` or `Accept:
/// text/csv`) for an export. Roles: platform admins and agency admins; every other
/// caller is 403.
#[utoipa::path(
    tag = "audit",
    operation_id = "list_audit",
    params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of audit rows, or every row the filters keep as CSV", content(
            (Page<AuditEntry> = "application/json"),
            (String = "text/csv", example = json!(CSV_EXAMPLE)),
        ), headers(
            ("Link" = String, description = "`<…>; rel=\"next\"` when another JSON page follows"),
            ("Content-Disposition" = String, description = "The CSV's file name: `attachment; filename=\"audit-<case or ticket number>.csv\"` (`audit.csv` for the whole log)"),
        )),
        (status = 403, description = "Only platform admins and agency admins read audit logs"),
    )
)]
#[get("/v1/audit")]
pub async fn list_audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    query: Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    audit_answer(req, state, token, None, query.into_inner()).await
}

const CSV_EXAMPLE: &str = "seq,id,created_at,entity,entity_id,case_id,action,field,old_value,new_value,actor_id,actor_role,request_id,prev_hash,hash,agency_id,hash_version\r\n\
42,0193a6f5-5555-7c2d-8e3f-405162738495,2026-11-22T16:30:00Z,case,0193a6f4-2222-7c2d-8e3f-405162738495,0193a6f4-2222-7c2d-8e3f-405162738495,suspend,status,in_progress,suspended,0193a6f2-2c4e-7b51-9d0a-3f1e2a4b5c6d,agency,0193a6f5-6666-7b51-9d0a-3f1e2a4b5c6d,5b1f…,9c0e…,0193a6f1-0a1b-7c2d-8e3f-405162738495,2\r\n";

/// Rows a CSV export reads at a time: its memory stays bounded however long the log.
const CSV_BATCH: i64 = 1000;

/// The case or ticket whose log a path names.
enum Trail {
    Case(String),
    /// A ticket's rows are all keyed by its id (`entity_id`).
    Ticket(String),
}

/// A log's JSON page or CSV export; the path's case or ticket must be visible.
async fn audit_answer(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    trail: Option<Trail>,
    query: AuditQuery,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::keyed(query.limit, query.cursor.as_deref())?;
    let before = page
        .after
        .as_deref()
        .map(|k| {
            k.parse::<i64>()
                .ok()
                .filter(|seq| *seq > 0)
                .ok_or_else(invalid_cursor)
        })
        .transpose()?;
    let csv = match query.format {
        Some(format) => format == AuditFormat::Csv,
        None => req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv")),
    };
    if query
        .action
        .as_deref()
        .is_some_and(|a| a.is_empty() || a.chars().count() > 100)
    {
        return Err(crate::http::fallback::invalid_query(
            "`action` must be 1 to 100 characters".into(),
        ));
    }
    let asking = Asking::new(token, &req);
    let mut filter = AuditFilter {
        agency_id: None,
        case_id: query.case_id.map(|id| id.to_string()),
        entity_id: query.entity_id.map(|id| id.to_string()),
        actor_id: query.actor_id.map(|id| id.to_string()),
        action: query.action,
        from: query.from.map(|t| t.naive_utc()),
        to: query.to.map(|t| t.naive_utc()),
        seq_range: None,
    };
    match &trail {
        Some(Trail::Case(id)) => filter.case_id = Some(id.clone()),
        Some(Trail::Ticket(id)) => filter.entity_id = Some(id.clone()),
        None => {}
    }
    let fetch = page.fetch();
    let (filter, rows, export_name) = db::read(&state.pool, move |conn| {
        let Asked { caller, viewer, .. } = asking.resolve(conn)?;
        let is_admin = caller.admin && matches!(caller.role, Role::Platform | Role::Agency);
        caller.require(is_admin, "read audit logs")?;
        // An export is named after what its rows are about.
        let export_name = match &trail {
            Some(Trail::Case(id)) => {
                format!(
                    "audit-{}.csv",
                    case_access::find_visible(conn, &viewer, id)?.number
                )
            }
            Some(Trail::Ticket(id)) => {
                format!(
                    "audit-{}.csv",
                    tickets::find_visible(conn, &caller, id)?.number
                )
            }
            None => "audit.csv".to_owned(),
        };
        // An agency admin reads their agency's rows only, in the query itself.
        if caller.role == Role::Agency {
            filter.agency_id = caller.agency_id.clone();
        }
        repo::audit::bound_time_range(conn, &mut filter)?;
        // The export reads its rows itself, a batch at a time.
        let rows = if csv {
            Vec::new()
        } else {
            repo::audit::list(conn, &filter, before, fetch)?
        };
        Ok((filter, rows, export_name))
    })
    .await?;
    if csv {
        let disposition = header::ContentDisposition {
            disposition: header::DispositionType::Attachment,
            parameters: vec![header::DispositionParam::Filename(export_name)],
        };
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(disposition)
            .streaming(csv_export(state, filter, before)));
    }
    let keyed: Vec<(String, AuditRow)> = rows.into_iter().map(|r| (r.seq.to_string(), r)).collect();
    let page = page.page(keyed, |(k, _)| k, |(_, r)| AuditEntry::from(r));
    Ok(page_response(&req, page))
}

/// Where a CSV export stands: the `seq` to read below, and whether the log is exhausted.
struct Export {
    below: Option<i64>,
    done: bool,
}

/// The header, then every row the filter keeps below `below`, a batch at a time, each read
/// and written as CSV on a database thread (not on the event loop). Rows appended meanwhile
/// are newer than the first batch: the export is the log as it stood.
fn csv_export(
    state: web::Data<AppState>,
    filter: AuditFilter,
    below: Option<i64>,
) -> impl futures_util::Stream<Item = Result<web::Bytes, ApiError>> {
    use futures_util::StreamExt;

    let filter = Arc::new(filter);
    let header = futures_util::stream::once(async { csv_chunk(&[], true) });
    let start = Export { below, done: false };
    let rows = futures_util::stream::unfold(start, move |mut export| {
        let state = state.clone();
        let filter = filter.clone();
        async move {
            if export.done {
                return None;
            }
            let below = export.below;
            let read = db::read(&state.pool, move |conn| {
                let rows = repo::audit::list(conn, &filter, below, CSV_BATCH)?;
                Ok((
                    csv_chunk(&rows, false)?,
                    rows.len(),
                    rows.last().map(|r| r.seq),
                ))
            })
            .await;
            match read {
                Err(e) => {
                    export.done = true;
                    Some((Err(e), export))
                }
                Ok((_, 0, _)) => None,
                Ok((chunk, n, last)) => {
                    export.done = (n as i64) < CSV_BATCH;
                    export.below = last;
                    Some((Ok(chunk), export))
                }
            }
        }
    });
    header.chain(rows)
}

const CSV_COLUMNS: [&str; 17] = [
    "seq",
    "id",
    "created_at",
    "entity",
    "entity_id",
    "case_id",
    "action",
    "field",
    "old_value",
    "new_value",
    "actor_id",
    "actor_role",
    "request_id",
    "prev_hash",
    "hash",
    "agency_id",
    "hash_version",
];

/// Rows as CSV lines (RFC 4180: quoted where a value holds a comma, a quote or a line break),
/// after the header line when `header`.
fn csv_chunk(rows: &[AuditRow], header: bool) -> Result<web::Bytes, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 400));
    if header {
        out.write_record(CSV_COLUMNS).map_err(ApiError::internal)?;
    }
    for r in rows {
        let created_at = crate::api::rfc3339_text(&timestamp(r.created_at));
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        out.write_record([
            r.seq.to_string(),
            r.id.clone(),
            created_at,
            r.entity.clone(),
            r.entity_id.clone(),
            text(&r.case_id),
            r.action.clone(),
            text(&r.field),
            text(&r.old_value),
            text(&r.new_value),
            text(&r.actor_id),
            text(&r.actor_role),
            text(&r.request_id),
            r.prev_hash.clone(),
            r.hash.clone(),
            text(&r.agency_id),
            r.hash_version.to_string(),
        ])
        .map_err(ApiError::internal)?;
    }
    out.into_inner()
        .map(web::Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"intact": true, "rows_checked": 1234, "first_broken_seq": null}))]
pub struct ChainCheck {
    /// Every row links to the previous one and hashes to its stored hash.
    pub intact: bool,
    pub rows_checked: i64,
    /// The first row that fails, when the chain is broken.
    pub first_broken_seq: Option<i64>,
}

/// Verify the audit hash chain
///
/// Recomputes every row's hash in order and checks each links to its predecessor and the
/// chain's head. Reads the whole log: meant for audits, not for polling. Roles: platform admin.
#[utoipa::path(
    tag = "audit",
    operation_id = "verify_audit",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The verdict", body = ChainCheck),
        (status = 403, description = "Only platform admins verify the chain"),
    )
)]
#[get("/v1/audit/verify")]
pub async fn verify_audit(
    state: web::Data<AppState>,
    token: Token,
) -> Result<HttpResponse, ApiError> {
    let report = db::read(&state.pool, move |conn| {
        let caller = token.user(conn)?;
        caller.require(caller.is_platform_admin(), "verify the audit chain")?;
        Ok(repo::audit::verify(conn)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ChainCheck {
        intact: report.first_broken_seq.is_none(),
        rows_checked: report.rows_checked,
        first_broken_seq: report.first_broken_seq,
    }))
}
