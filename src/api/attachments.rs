//! A case's attachments: uploads (see `files`) by whoever can see the case, internal files
//! kept from the client, downloads and deletions.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::case_access::{Viewer, find_visible, share_locked, wrong_state};
use crate::api::files::{self, FileToServe, ListFilesQuery};
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::domain::Role;
use crate::errors::{ApiError, FieldError};
use crate::http::extract::{Page, PageRequest, Query, page_response};
use crate::http::idempotency::{self, Authorized, IdempotencyKey};
use crate::repo;
use crate::repo::attachments::AttachmentRow;
use crate::repo::audit::{Actor, Change};
use crate::repo::cases::CaseRow;
use crate::workflow;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a6f6-7777-7c2d-8e3f-405162738495",
    "case_id": "0193a6f4-2222-7c2d-8e3f-405162738495",
    "file_name": "plate.jpg",
    "content_type": "image/jpeg",
    "size_bytes": 48213,
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "uploader_id": "0193a6f2-4444-7b51-9d0a-3f1e2a4b5c6d",
    "created_at": "2026-11-22T10:00:00Z",
    "internal": false,
    "download_url": "/v1/attachments/0193a6f6-7777-7c2d-8e3f-405162738495"
}))]
pub struct AttachmentView {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub case_id: String,
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
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Hidden from the client: staff files unless uploaded with `internal` `false` (an agent's
    /// always), until a message to the client or a published storyline event carries them.
    pub internal: bool,
    pub download_url: String,
}

impl From<AttachmentRow> for AttachmentView {
    fn from(r: AttachmentRow) -> Self {
        AttachmentView {
            download_url: format!("/v1/attachments/{}", r.id),
            id: r.id,
            case_id: r.case_id,
            file_name: r.file_name,
            content_type: r.content_type,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            uploader_id: r.uploader_id,
            created_at: timestamp(r.created_at),
            internal: r.internal,
        }
    }
}

impl<'a> From<&'a AttachmentRow> for FileToServe<'a> {
    fn from(r: &'a AttachmentRow) -> Self {
        FileToServe {
            file_name: &r.file_name,
            content_type: &r.content_type,
            size_bytes: r.size_bytes,
            sha256: &r.sha256,
            storage_key: &r.storage_key,
        }
    }
}

/// The multipart form of an upload (for the spec).
#[derive(ToSchema)]
// Never built: the handler reads the parts as they stream.
#[allow(dead_code)]
#[schema(example = json!({"internal": false, "file": "(the file's bytes)"}))]
pub struct UploadForm {
    /// Whether the client is kept from the file until a message to them or a published
    /// storyline event carries it. Staff files default to `true`; agency and platform staff may
    /// send `false`. An agent's files are always internal, a client's never.
    internal: Option<bool>,
    /// The file. Its type is detected from its content.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Whether the viewer sees internal files: everyone who sees the case but the client.
pub fn sees_internal(viewer: &Viewer) -> bool {
    viewer.role != Role::Client
}

/// Shows the internal files among `ids` to the client, because something they see (a message
/// to them, a published storyline event) now carries them; each is recorded in the audit trail.
pub fn share_with_client(
    conn: &mut db::DbConnection,
    actor: &Actor,
    case_id: &str,
    ids: &[String],
) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    let changes = repo::attachments::share(conn, case_id, ids)?
        .iter()
        .map(|id| {
            Change::entity("attachment", id, Some(case_id), "share").field(
                "internal",
                Some("true".into()),
                Some("false".into()),
            )
        })
        .collect::<Vec<_>>();
    if !changes.is_empty() {
        repo::audit::append(conn, actor, changes)?;
    }
    Ok(())
}

/// The ids `sent`, sorted and without repeats, and the errors to report at those that are not
/// attachments of the case that the viewer sees (messages, storyline events and answers all
/// refer to attachments).
pub fn check_case_attachments(
    conn: &mut db::DbConnection,
    viewer: &Viewer,
    case_id: &str,
    sent: &[Uuid],
) -> Result<(Vec<String>, Vec<FieldError>), ApiError> {
    let ids = files::cited_ids(sent);
    // Most messages carry no attachment: then there is nothing to lock or look up.
    if ids.is_empty() {
        return Ok((ids, Vec::new()));
    }
    repo::attachments::lock_for_citing(conn, case_id, &ids)?;
    let found = repo::attachments::found_of_case(conn, case_id, &ids, sees_internal(viewer))?;
    let detail = "not an attachment of this case";
    Ok((ids, files::not_found_among(sent, &found, detail)))
}

/// 409 unless the case takes the caller's file changes: paid and not terminal, and for its
/// agents only while `in_progress` (they write nothing else while it is suspended).
fn files_may_change(viewer: &Viewer, case: &CaseRow, refusal: &str) -> Result<(), ApiError> {
    let status = case.status();
    let state = workflow::state_of(status);
    if !state.accepts_files {
        return Err(wrong_state(
            viewer,
            case,
            format!("A `{status}` case {refusal}."),
        ));
    }
    if viewer.role == Role::Agent && !state.agents_write {
        return Err(wrong_state(
            viewer,
            case,
            format!("Agents change a case's files only while it is `in_progress`, not `{status}`."),
        ));
    }
    Ok(())
}

/// Upload an attachment
///
/// `multipart/form-data` with one part named `file`, streamed into storage. Larger than
/// `DOSSIER_MAX_UPLOAD_BYTES` (default 10 MiB) is 413, decided while streaming, and leaves
/// nothing behind. The type is detected from the bytes; accepted are images, PDF, office
/// documents, plain text, audio and video (anything else 415). The file name is sanitized; size
/// and SHA-256 are stored. Allowed while the case is paid and not terminal, and for the case's
/// agents only while it is `in_progress` (409 otherwise).
/// Staff files are internal (hidden from the client) unless agency or platform staff send an
/// `internal` part `false`, before or after `file`; an agent's files always are. At most 16
/// parts besides `file`, and the whole body within the limit plus 64 KiB, counted as it comes
/// when it declares no length. Accepts `Idempotency-Key`: a retry with the same bytes, file
/// name and side (`internal`) replays the first upload (`Idempotent-Replayed: true`) and keeps
/// nothing of its own; another file under the same key is 422 `idempotency_key_reused`. A retry
/// is checked as a new upload first: once the case takes no files it is 409. Roles: anyone who
/// can see the case.
#[utoipa::path(
    tag = "attachments",
    operation_id = "upload_attachment",
    params(("id" = Uuid, Path, description = "Case id"), IdempotencyKey),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = AttachmentView,
            headers(("Location" = String, description = "The download URL"))),
        (status = 400, description = "The multipart body could not be read (`malformed_multipart`), or the `Idempotency-Key` header is malformed (`invalid_header`)"),
        (status = 404, description = "No such case, or not one the caller can see"),
        (status = 409, description = "The case does not take files in its status (`wrong_state`)"),
        (status = 413, description = "The file is larger than the configured limit, or the body than that and 64 KiB"),
        (status = 415, description = "Not `multipart/form-data`, or a kind of file that is not accepted"),
        (status = 422, description = "No `file` part, more than 16 other parts (`too_many_parts`), an empty file, or an `internal` part that is not `true`/`false` (`invalid_value`) or not the caller's to send (`not_allowed`)"),
    )
)]
#[post("/v1/cases/{id}/attachments")]
pub async fn upload_attachment(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    retry_key: IdempotencyKey,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let case_id = id.into_inner().to_string();
    let check_case = {
        let case_id = case_id.clone();
        move |conn: &mut db::DbConnection| {
            let asked = asking.resolve(conn)?;
            let case = find_visible(conn, &asked.viewer, &case_id)?;
            files_may_change(&asked.viewer, &case, "takes no files")?;
            Ok(asked)
        }
    };
    // Refuse before reading a byte of the body when the caller or the case already says no.
    let role = db::read(&state.pool, check_case.clone()).await?.viewer.role;
    let attachment_id = repo::new_id();
    let key = format!("attachments/{attachment_id}");
    let file = files::receive_upload(&req, payload, &state, Some(role), &key).await?;
    let storage_key = key.clone();
    let saved = idempotency::remember(&state, &req, retry_key, file, move |conn| {
        // The caller and the case may have moved on while the bytes streamed in; the case is
        // locked before it is looked at again.
        repo::cases::share_lock(conn, &case_id)?;
        let Asked { caller, actor, .. } = check_case(conn)?;
        let user_id = caller.id.clone();
        let create = move |conn: &mut db::DbConnection, file: files::StoredFile| {
            let row = AttachmentRow {
                id: attachment_id,
                case_id,
                uploader_id: caller.id,
                file_name: file.file_name,
                content_type: file.content_type.to_owned(),
                size_bytes: file.size_bytes,
                sha256: file.sha256,
                storage_key,
                created_at: db::now(),
                internal: file.internal,
            };
            repo::attachments::insert(conn, &row)?;
            files::own(conn, &row.storage_key)?;
            let created = Change::entity("attachment", &row.id, Some(&row.case_id), "upload");
            repo::audit::append(
                conn,
                &actor,
                created.fields(vec![
                    ("file_name", None, Some(row.file_name.clone())),
                    ("content_type", None, Some(row.content_type.clone())),
                    ("sha256", None, Some(row.sha256.clone())),
                    ("internal", None, Some(row.internal.to_string())),
                ]),
            )?;
            Ok(files::uploaded(AttachmentView::from(row), |v| {
                &v.download_url
            }))
        };
        Ok(Authorized { user_id, create })
    })
    .await;
    files::answer_upload(&state, &key, saved).await
}

/// List a case's attachments
///
/// Newest first; the client's list leaves internal files out. Roles: anyone who can see the
/// case.
#[utoipa::path(
    tag = "attachments",
    operation_id = "list_attachments",
    params(("id" = Uuid, Path, description = "Case id"), ListFilesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of attachments", body = Page<AttachmentView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when another page follows"))),
        (status = 404, description = "No such case, or not one the caller can see"),
    )
)]
#[get("/v1/cases/{id}/attachments")]
pub async fn list_attachments(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
    query: Query<ListFilesQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let asking = Asking::new(token, &req);
    let case_id = id.into_inner().to_string();
    let (rows, page) = db::read(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        find_visible(conn, &viewer, &case_id)?;
        let rows = repo::attachments::list(
            conn,
            &case_id,
            sees_internal(&viewer),
            page.after.as_deref(),
            page.fetch(),
        )?;
        Ok((rows, page))
    })
    .await?;
    let page = page.page(rows, |r| &r.id, AttachmentView::from);
    Ok(page_response(&req, page))
}

fn attachment_not_found() -> ApiError {
    ApiError::NotFound("No such attachment, or not one you can see.".into())
}

/// The attachment, if the caller can see its case; 404 otherwise, alike for both.
async fn find_for(state: &AppState, asking: Asking, id: String) -> Result<AttachmentRow, ApiError> {
    db::read(&state.pool, move |conn| {
        let Asked { viewer, .. } = asking.resolve(conn)?;
        let row = repo::attachments::find(conn, &id, sees_internal(&viewer))?
            .ok_or_else(attachment_not_found)?;
        find_visible(conn, &viewer, &row.case_id)
            .map_err(|e| e.not_found_as(attachment_not_found))?;
        Ok(row)
    })
    .await
}

/// Download an attachment
///
/// Streams the bytes with their detected type, `Content-Disposition: attachment`,
/// `X-Content-Type-Options: nosniff` and the SHA-256 as a strong `ETag` (`If-None-Match` →
/// 304). Roles: anyone who can see the owning case (404 otherwise), but the client only files
/// that are not internal.
#[utoipa::path(
    tag = "attachments",
    operation_id = "download_attachment",
    params(("id" = Uuid, Path, description = "Attachment id")),
    security(("bearer" = [])),
    responses(
        (status = 200, response = inline(crate::api::files::FileDownload)),
        (status = 304, description = "Unchanged since the `If-None-Match` tag"),
        (status = 404, description = "No such attachment, or not one the caller can see"),
    )
)]
#[get("/v1/attachments/{id}")]
pub async fn download_attachment(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let row = find_for(&state, asking, id.into_inner().to_string()).await?;
    files::serve(&req, &state, FileToServe::from(&row)).await
}

/// Delete an attachment
///
/// The uploader, the case's agency staff and platform staff may delete, while the case takes
/// files, an agent only while it is `in_progress` (409 otherwise); others who can see the case
/// get 403. A file that a message, a storyline event, an answer or a required-data value of the
/// case still carries stays (409 `attachment_in_use`): edit the event or clear the value first;
/// a message's files stay for good. Recorded in the audit trail; the blob is removed once the deletion commits.
#[utoipa::path(
    tag = "attachments",
    operation_id = "delete_attachment",
    params(("id" = Uuid, Path, description = "Attachment id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Neither the uploader nor agency or platform staff"),
        (status = 404, description = "No such attachment, or not one the caller can see"),
        (status = 409, description = "The case no longer takes changes to its files (`wrong_state`), or something of the case still carries the file (`attachment_in_use`)"),
    )
)]
#[delete("/v1/attachments/{id}")]
pub async fn delete_attachment(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Token,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let id = id.into_inner().to_string();
    let key = db::write(&state.pool, move |conn| {
        let Asked { viewer, actor, .. } = asking.resolve(conn)?;
        let caller_id = &viewer.user_id;
        let row = repo::attachments::find(conn, &id, sees_internal(&viewer))?
            .ok_or_else(attachment_not_found)?;
        let case = find_visible(conn, &viewer, &row.case_id)
            .map_err(|e| e.not_found_as(attachment_not_found))?;
        let may =
            row.uploader_id == *caller_id || matches!(viewer.role, Role::Agency | Role::Platform);
        if !may {
            return Err(ApiError::Forbidden(
                "Only the uploader and agency or platform staff delete attachments.".into(),
            ));
        }
        // The file before the case, as the writes citing a file and then touching the case
        // (an answer, a form value) take them; the status is read again under the case's lock.
        if !repo::attachments::lock_for_deletion(conn, &id)? {
            return Err(attachment_not_found());
        }
        let case =
            share_locked(conn, &viewer, case).map_err(|e| e.not_found_as(attachment_not_found))?;
        files_may_change(&viewer, &case, "keeps its files")?;
        // What was sent or recorded with the file keeps it: detach it there first.
        if let Some(holder) = repo::attachments::named_by(conn, &row.case_id, &id)? {
            return Err(ApiError::Conflict {
                code: "attachment_in_use",
                detail: format!("{holder} of this case still carries the file."),
            });
        }
        repo::attachments::delete(conn, &id)?;
        let change = Change::entity("attachment", &id, Some(&row.case_id), "delete").field(
            "file_name",
            Some(row.file_name.clone()),
            None,
        );
        repo::audit::append(conn, &actor, vec![change])?;
        files::let_go(conn, &row.storage_key)?;
        Ok(row.storage_key)
    })
    .await?;
    files::discard(&state, &key).await;
    Ok(HttpResponse::NoContent().finish())
}
