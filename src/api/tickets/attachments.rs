//! A support ticket's files (DESIGN.md: tickets have their own attachments): uploaded by either
//! side while the ticket is worked, seen by both sides (a ticket has no internal notes), carried
//! by its messages, downloaded and deleted through the ticket.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{TicketViewer, ticket_change};
use crate::api::files::{self, FileToServe, ListFilesQuery};
use crate::api::{Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db::{self, DbConnection};
use crate::domain::TicketParty;
use crate::errors::ApiError;
use crate::http::extract::{Page, PageRequest, Query, page_response};
use crate::http::idempotency::{self, Authorized, IdempotencyKey};
use crate::repo;
use crate::repo::ticket_attachments::TicketAttachmentRow;
use crate::repo::tickets::TicketRow;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6fe-8888-7c2d-8e3f-405162738495",
    "ticket_id": "0193a6fc-dddd-7c2d-8e3f-405162738495",
    "file_name": "receipt.pdf",
    "content_type": "application/pdf",
    "size_bytes": 81234,
    "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    "uploader_id": "0193a6f2-4444-7b51-9d0a-3f1e2a4b5c6d",
    "created_at": "2026-11-24T09:25:00Z",
    "download_url": "/v1/tickets/0193a6fc-dddd-7c2d-8e3f-405162738495/attachments/0193a6fe-8888-7c2d-8e3f-405162738495"
}))]
pub struct TicketAttachmentView {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub ticket_id: String,
    /// Sanitized: the last path component, without control, invisible format or reserved
    /// characters, ending in an extension of `content_type`'s kind (added when the sent one is
    /// not; names stored before this rule may not).
    pub file_name: String,
    /// Detected from the bytes, not taken from the upload.
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the bytes, hex; also the download's `ETag`.
    pub sha256: String,
    #[schema(format = "uuid")]
    pub uploader_id: String,
    #[serde(serialize_with = "crate::api::rfc3339")]
    pub created_at: DateTime<Utc>,
    pub download_url: String,
}

impl From<TicketAttachmentRow> for TicketAttachmentView {
    fn from(r: TicketAttachmentRow) -> Self {
        TicketAttachmentView {
            download_url: format!("/v1/tickets/{}/attachments/{}", r.ticket_id, r.id),
            id: r.id,
            ticket_id: r.ticket_id,
            file_name: r.file_name,
            content_type: r.content_type,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            uploader_id: r.uploader_id,
            created_at: timestamp(r.created_at),
        }
    }
}

impl<'a> From<&'a TicketAttachmentRow> for FileToServe<'a> {
    fn from(r: &'a TicketAttachmentRow) -> Self {
        FileToServe {
            file_name: &r.file_name,
            content_type: &r.content_type,
            size_bytes: r.size_bytes,
            sha256: &r.sha256,
            storage_key: &r.storage_key,
        }
    }
}

/// The multipart form of a ticket's upload (for the spec).
#[derive(ToSchema)]
// Never built: the handler reads the parts as they stream.
#[allow(dead_code)]
#[schema(example = json!({"file": "(the file's bytes)"}))]
pub struct TicketUploadForm {
    /// The file. Its type is detected from its content.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The ticket, if the caller may see it and it is worked; 409 `wrong_state` otherwise.
fn worked_ticket(
    conn: &mut DbConnection,
    who: &TicketViewer,
    id: &str,
    refusal: &str,
) -> Result<TicketRow, ApiError> {
    let ticket = who.find(conn, id)?;
    who.require_worked(&ticket, refusal)?;
    Ok(ticket)
}

/// The `attachment_ids` of a message on the ticket, sorted and without repeats, as stored:
/// 422 `invalid_attachment` at each that is not a file of this ticket. On PostgreSQL the files
/// stay locked to the commit (see [`repo::ticket_attachments::found_of_ticket`]).
pub(super) fn check_cited(
    conn: &mut DbConnection,
    ticket_id: &str,
    sent: &[Uuid],
) -> Result<String, ApiError> {
    let ids = files::cited_ids(sent);
    if !ids.is_empty() {
        let found = repo::ticket_attachments::found_of_ticket(conn, ticket_id, &ids)?;
        let errors = files::not_found_among(sent, &found, "not a file of this ticket");
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
    }
    Ok(serde_json::json!(ids).to_string())
}

/// Upload a file to a support ticket
///
/// `multipart/form-data` with one part named `file`, under the rules of a case's upload (size
/// limit, 413 while streaming; type from the bytes, 415; sanitized name; SHA-256; at most 16
/// other parts). A ticket's files are seen by both its sides: an `internal` part is 422
/// `not_allowed`. Allowed while the ticket is worked (`new`, `open`, `waiting_on_requester`;
/// 409 otherwise). Send it with a message (`attachment_ids`) to tell the other side. Audited on
/// the ticket (`upload_attachment`). Accepts `Idempotency-Key` as a case's upload does: the
/// same bytes under the same name replay the first upload. Roles: whoever can see the ticket
/// (agents have none).
#[utoipa::path(
    tag = "tickets",
    operation_id = "upload_ticket_attachment",
    params(("id" = Uuid, Path, description = "Ticket id"), IdempotencyKey),
    request_body(content = TicketUploadForm, content_type = "multipart/form-data"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = TicketAttachmentView,
            headers(("Location" = String, description = "The download URL"))),
        (status = 400, description = "The multipart body could not be read (`malformed_multipart`), or the `Idempotency-Key` header is malformed (`invalid_header`)"),
        (status = 403, description = "Agents have no support tickets"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
        (status = 409, description = "The ticket is no longer worked (`wrong_state`, with `allowed_actions`)"),
        (status = 413, description = "The file is larger than the configured limit, or the body than that and 64 KiB"),
        (status = 415, description = "Not `multipart/form-data`, or a kind of file that is not accepted"),
        (status = 422, description = "No `file` part, more than 16 other parts (`too_many_parts`), an empty file, or an `internal` part (`not_allowed`)"),
    )
)]
#[post("/v1/tickets/{id}/attachments")]
pub async fn upload_ticket_attachment(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    retry_key: IdempotencyKey,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let ticket_id = id.into_inner().to_string();
    let check_ticket = {
        let ticket_id = ticket_id.clone();
        move |conn: &mut DbConnection| {
            let who = TicketViewer::of(asking.resolve(conn)?)?;
            let ticket = worked_ticket(conn, &who, &ticket_id, "takes no files")?;
            Ok((who, ticket))
        }
    };
    // Refuse before reading a byte of the body when the caller or the ticket already says no.
    db::read(&state.pool, check_ticket.clone()).await?;
    let attachment_id = repo::new_id();
    let key = format!("ticket-attachments/{attachment_id}");
    let file = files::receive_upload(&req, payload, &state, None, &key).await?;
    let storage_key = key.clone();
    let saved = idempotency::remember(&state, &req, retry_key, file, move |conn| {
        // The caller and the ticket may have moved on while the bytes streamed in; the ticket is
        // locked against a move before it is looked at again.
        repo::tickets::share_lock(conn, &ticket_id)?;
        let (who, ticket) = check_ticket(conn)?;
        let user_id = who.actor.user_id.clone();
        let create = move |conn: &mut DbConnection, file: files::StoredFile| {
            let row = TicketAttachmentRow {
                ticket_id,
                id: attachment_id,
                uploader_id: who.actor.user_id.clone(),
                file_name: file.file_name,
                content_type: file.content_type.to_owned(),
                size_bytes: file.size_bytes,
                sha256: file.sha256,
                storage_key,
                created_at: db::now(),
            };
            repo::ticket_attachments::insert(conn, &row)?;
            files::own(conn, &row.storage_key)?;
            let uploaded = ticket_change(&ticket, "upload_attachment").fields(vec![
                ("attachment_id", None, Some(row.id.clone())),
                ("file_name", None, Some(row.file_name.clone())),
                ("content_type", None, Some(row.content_type.clone())),
                ("sha256", None, Some(row.sha256.clone())),
            ]);
            repo::audit::append(conn, &who.actor, uploaded)?;
            Ok(files::uploaded(TicketAttachmentView::from(row), |v| {
                &v.download_url
            }))
        };
        Ok(Authorized { user_id, create })
    })
    .await;
    files::answer_upload(&state, &key, saved).await
}

/// List a support ticket's files
///
/// Newest first, with keyset pagination. Roles: whoever can see the ticket.
#[utoipa::path(
    tag = "tickets",
    operation_id = "list_ticket_attachments",
    params(("id" = Uuid, Path, description = "Ticket id"), ListFilesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of files", body = Page<TicketAttachmentView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 403, description = "Agents have no support tickets"),
        (status = 404, description = "No such ticket, or not one the caller can see"),
    )
)]
#[get("/v1/tickets/{id}/attachments")]
pub async fn list_ticket_attachments(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<ListFilesQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let asking = Asking::new(token, &req);
    let ticket_id = id.into_inner().to_string();
    let (rows, page) = db::read(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        who.find(conn, &ticket_id)?;
        let rows =
            repo::ticket_attachments::list(conn, &ticket_id, page.after.as_deref(), page.fetch())?;
        Ok((rows, page))
    })
    .await?;
    let page = page.page(rows, |r| &r.id, TicketAttachmentView::from);
    Ok(page_response(&req, page))
}

fn attachment_not_found() -> ApiError {
    ApiError::NotFound("No such file on this ticket, or not a ticket you can see.".into())
}

/// Download a support ticket's file
///
/// Streams the bytes with their detected type, `Content-Disposition: attachment`,
/// `X-Content-Type-Options: nosniff` and the SHA-256 as a strong `ETag` (`If-None-Match` →
/// 304), in every status of the ticket. Roles: whoever can see the ticket (404 otherwise, and
/// for a file of another ticket).
#[utoipa::path(
    tag = "tickets",
    operation_id = "download_ticket_attachment",
    params(
        ("id" = Uuid, Path, description = "Ticket id"),
        ("attachment_id" = Uuid, Path, description = "One of its files"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, response = inline(crate::api::files::FileDownload)),
        (status = 304, description = "Unchanged since the `If-None-Match` tag"),
        (status = 403, description = "Agents have no support tickets"),
        (status = 404, description = "No such ticket or file, or not a ticket the caller can see"),
    )
)]
#[get("/v1/tickets/{id}/attachments/{attachment_id}")]
pub async fn download_ticket_attachment(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let (id, attachment_id) = path.into_inner();
    let row = db::read(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        let ticket = who.find(conn, &id.to_string())?;
        repo::ticket_attachments::find(conn, &ticket.id, &attachment_id.to_string())?
            .ok_or_else(attachment_not_found)
    })
    .await?;
    files::serve(&req, &state, FileToServe::from(&row)).await
}

/// Delete a support ticket's file
///
/// The uploader and platform staff delete, while the ticket is worked (409 `wrong_state`
/// otherwise); the rest of the requester's side gets 403. A file a message carries stays for
/// good (409 `attachment_in_use`). Audited on the ticket (`delete_attachment`); the blob is
/// removed once the deletion commits.
#[utoipa::path(
    tag = "tickets",
    operation_id = "delete_ticket_attachment",
    params(
        ("id" = Uuid, Path, description = "Ticket id"),
        ("attachment_id" = Uuid, Path, description = "One of its files"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Neither the uploader nor platform staff; agents have no support tickets"),
        (status = 404, description = "No such ticket or file, or not a ticket the caller can see"),
        (status = 409, description = "The ticket is no longer worked (`wrong_state`, with `allowed_actions`), or a message carries the file (`attachment_in_use`)"),
    )
)]
#[delete("/v1/tickets/{id}/attachments/{attachment_id}")]
pub async fn delete_ticket_attachment(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let (id, attachment_id) = path.into_inner();
    let (ticket_id, attachment_id) = (id.to_string(), attachment_id.to_string());
    let key = db::write(&state.pool, move |conn| {
        let who = TicketViewer::of(asking.resolve(conn)?)?;
        let found = who.find(conn, &ticket_id)?;
        let row = repo::ticket_attachments::find(conn, &found.id, &attachment_id)?
            .ok_or_else(attachment_not_found)?;
        if row.uploader_id != who.actor.user_id && who.party != TicketParty::Platform {
            return Err(ApiError::Forbidden(
                "Only the uploader and platform staff delete a ticket's files.".into(),
            ));
        }
        // The file's row goes first, then the ticket is locked: the order a message citing the
        // file takes them (the file KEY SHARE, then the ticket's update), so the two never wait
        // for each other in a cycle. On PostgreSQL the deletion waits for such a message to
        // commit, and the search below then sees it.
        if !repo::ticket_attachments::delete(conn, &ticket_id, &attachment_id)? {
            return Err(attachment_not_found());
        }
        repo::tickets::share_lock(conn, &ticket_id)?;
        let ticket = worked_ticket(conn, &who, &ticket_id, "no longer changes its files")?;
        if repo::ticket_attachments::cited(conn, &ticket_id, &attachment_id)? {
            return Err(ApiError::Conflict {
                code: "attachment_in_use",
                detail: "A message of this ticket carries the file; it stays for good.".into(),
            });
        }
        // A row per field, each with its old value (`fields` writes only the values sent).
        let deleted = [("attachment_id", &row.id), ("file_name", &row.file_name)]
            .map(|(field, old)| {
                ticket_change(&ticket, "delete_attachment").field(field, Some(old.clone()), None)
            })
            .to_vec();
        repo::audit::append(conn, &who.actor, deleted)?;
        files::let_go(conn, &row.storage_key)?;
        Ok(row.storage_key)
    })
    .await?;
    files::discard(&state, &key).await;
    Ok(HttpResponse::NoContent().finish())
}
