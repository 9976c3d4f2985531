//! The audit trail: a case's change log for admins, and the hash chain's verification.

use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::cases::find_visible;
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::domain::Role;
use crate::errors::ApiError;
use crate::http::extract::{Page, PageRequest, invalid_cursor, page_response};
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
    "hash": "9c0e…"
}))]
pub struct AuditEntry {
    #[schema(format = "uuid")]
    pub id: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// `case`, `case_agents`, `service`, …
    pub entity: String,
    pub entity_id: String,
    pub case_id: Option<String>,
    /// `create`, `update`, a workflow action, `take`, `delegate`, `set_agents`, …
    pub action: String,
    /// The changed field; `reason` carries a transition's reason.
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub actor_id: Option<String>,
    pub actor_role: Option<Role>,
    pub request_id: Option<String>,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// SHA-256 (hex) of the previous row; 64 zeros for the first.
    pub prev_hash: String,
    /// SHA-256 (hex) of `prev_hash` and this row's content.
    pub hash: String,
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
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Rows written at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Rows written before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A case's change log
///
/// Every change to the case, newest first: entity, field, old and new value, actor, time,
/// request id and the hash chain. Filter by `from`/`to`; cursor pagination. Roles: platform
/// admins (every case) and agency admins (their agency's cases; other cases are 404); every
/// other caller is 403.
#[utoipa::path(
    tag = "audit",
    operation_id = "list_case_audit",
    params(("id" = Uuid, Path, description = "Case id"), AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of audit rows", body = Page<AuditEntry>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
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
    query: web::Query<AuditQuery>,
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
    let asking = Asking::new(token, &req);
    let filter = AuditFilter {
        case_id: Some(id.into_inner().to_string()),
        from: query.from.map(|t| t.naive_utc()),
        to: query.to.map(|t| t.naive_utc()),
    };
    let (rows, page) = db::read(&state.pool, move |conn| {
        let Asked { caller, viewer, .. } = asking.resolve(conn)?;
        let is_admin = caller.admin && matches!(caller.role, Role::Platform | Role::Agency);
        caller.require(is_admin, "read audit logs")?;
        find_visible(conn, &viewer, filter.case_id.as_deref().unwrap_or_default())?;
        let rows = repo::audit::list(conn, &filter, before, page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    let keyed: Vec<(String, AuditRow)> = rows.into_iter().map(|r| (r.seq.to_string(), r)).collect();
    let page = page.page(keyed, |(k, _)| k, |(_, r)| AuditEntry::from(r));
    Ok(page_response(&req, page))
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
