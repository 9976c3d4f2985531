//! Attachments: streamed multipart uploads into object storage, typed by their bytes, and
//! downloads for whoever can see the owning case.

use std::cell::Cell;
use std::rc::Rc;

use actix_multipart::{Field, Multipart};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::cases::{Viewer, find_visible, share_locked, wrong_state};
use crate::api::{Asked, Asking, timestamp};
use crate::app::AppState;
use crate::auth::Token;
use crate::db;
use crate::domain::Role;
use crate::errors::{ApiError, FieldError};
use crate::http::extract::{Page, PageRequest, page_response};
use crate::repo;
use crate::repo::attachments::AttachmentRow;
use crate::repo::audit::{Actor, Change};
use crate::storage::BlobUpload;
use crate::workflow;

/// Bytes read before the type is decided (and before anything is written to storage).
const SNIFF_BYTES: usize = 8192;

/// Content types accepted besides `image/*`, `audio/*` and `video/*`.
const DOCUMENT_TYPES: &[&str] = &[
    "application/pdf",
    "application/rtf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
];

/// The type of a file from its first bytes, if it is one we accept. The name and the
/// client's declared type are ignored: a renamed executable stays an executable.
fn detect(head: &[u8]) -> Option<&'static str> {
    match infer::get(head) {
        Some(kind) => {
            let mime = kind.mime_type();
            let media = ["image/", "audio/", "video/"];
            (media.iter().any(|m| mime.starts_with(m)) || DOCUMENT_TYPES.contains(&mime))
                .then_some(mime)
        }
        // No signature: plain text if it is UTF-8 without NUL bytes (a character cut at the
        // end of the sniffed prefix is fine).
        None => {
            let utf8 = match std::str::from_utf8(head) {
                Ok(_) => true,
                Err(e) => e.error_len().is_none(),
            };
            (utf8 && !head.contains(&0)).then_some("text/plain")
        }
    }
}

/// The last path component, stripped of anything a file system or a header would mind.
fn clean_file_name(raw: Option<&str>) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let clean: String = sanitize_filename::sanitize(base)
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    let clean = clean.trim().trim_start_matches('.').to_owned();
    if clean.is_empty() {
        "file".to_owned()
    } else {
        clean
    }
}

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
    /// Sanitized: the last path component, without control or reserved characters.
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

/// The multipart form of an upload (for the spec).
#[derive(ToSchema)]
#[allow(dead_code)]
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

/// `ids` sorted and without repeats, and the error to report if any of them is not an
/// attachment of the case that the viewer sees (messages, storyline events and answers all
/// refer to attachments).
pub fn check_case_attachments(
    conn: &mut db::DbConnection,
    viewer: &Viewer,
    case_id: &str,
    ids: &[Uuid],
) -> Result<(Vec<String>, Option<FieldError>), ApiError> {
    let mut ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    ids.sort();
    ids.dedup();
    // Most messages carry no attachment: then there is nothing to lock or count.
    if !ids.is_empty() {
        repo::attachments::lock_for_citing(conn, &ids)?;
    }
    let foreign = !ids.is_empty()
        && repo::attachments::count_of_case(conn, case_id, &ids, sees_internal(viewer))?
            != ids.len() as i64;
    let error = foreign.then(|| {
        FieldError::new(
            "/attachment_ids",
            "invalid_attachment",
            "every id must be an attachment of this case",
        )
    });
    Ok((ids, error))
}

/// The value of an upload's `internal` part: `true` or `false`, and only staff choose.
async fn internal_part(mut part: Field, role: Role) -> Result<bool, ApiError> {
    let mut text = Vec::new();
    while let Some(chunk) = part.try_next().await.map_err(bad_multipart)? {
        text.extend_from_slice(&chunk);
        if text.len() > 5 {
            break;
        }
    }
    let internal = match text.as_slice() {
        b"true" => true,
        b"false" => false,
        _ => {
            return Err(ApiError::invalid_field(
                "/internal",
                "invalid_value",
                "`true` or `false`",
            ));
        }
    };
    match role {
        Role::Agency | Role::Platform => Ok(internal),
        // An agent's files are always internal, a client's never: only the other is refused.
        Role::Agent if internal => Ok(true),
        Role::Client if !internal => Ok(false),
        _ => Err(ApiError::invalid_field(
            "/internal",
            "not_allowed",
            "an agent's files are always internal, a client's never",
        )),
    }
}

fn bad_multipart(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        "malformed_multipart",
        format!("The multipart body could not be read: {e}."),
    )
}

/// What was received of the file part.
struct Received {
    upload: BlobUpload,
    content_type: &'static str,
    size: usize,
    sha256: String,
}

/// Streams the `file` part into storage under `key`, deciding its type from the first bytes
/// before anything is written. Over `limit` bytes, or on any failure, the upload is aborted.
async fn receive(
    state: &AppState,
    mut field: Field,
    key: &str,
    limit: usize,
) -> Result<Received, ApiError> {
    let too_large = || ApiError::PayloadTooLarge { limit };
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut hasher = Sha256::new();
    let mut size = 0usize;
    let mut started: Option<(BlobUpload, &'static str)> = None;
    let storage_error = |e: object_store::Error| ApiError::internal(e);
    loop {
        let chunk = match field.next().await {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                if let Some((upload, _)) = started {
                    upload.abort().await;
                }
                return Err(bad_multipart(e));
            }
        };
        size += chunk.len();
        if size > limit {
            if let Some((upload, _)) = started {
                upload.abort().await;
            }
            return Err(too_large());
        }
        hasher.update(&chunk);
        match &mut started {
            Some((upload, _)) => {
                if let Err(e) = upload.write(&chunk).await {
                    if let Some((upload, _)) = started {
                        upload.abort().await;
                    }
                    return Err(storage_error(e));
                }
            }
            None => {
                head.extend_from_slice(&chunk);
                if head.len() >= SNIFF_BYTES {
                    started = Some(begin(state, key, &head).await?);
                }
            }
        }
    }
    if size == 0 {
        return Err(ApiError::invalid_field(
            "/file",
            "empty_file",
            "the file is empty",
        ));
    }
    let (upload, content_type) = match started {
        Some(s) => s,
        None => begin(state, key, &head).await?,
    };
    Ok(Received {
        upload,
        content_type,
        size,
        sha256: format!("{:x}", hasher.finalize()),
    })
}

/// Decides the type from `head` and opens the upload with it written.
async fn begin(
    state: &AppState,
    key: &str,
    head: &[u8],
) -> Result<(BlobUpload, &'static str), ApiError> {
    let content_type = detect(head).ok_or_else(|| {
        ApiError::UnsupportedMediaType(
            "This kind of file is not accepted: images, PDF, office documents, plain text, \
             audio and video are."
                .into(),
        )
    })?;
    let mut upload = state
        .blobs
        .start_upload(key)
        .await
        .map_err(ApiError::internal)?;
    if let Err(e) = upload.write(head).await {
        upload.abort().await;
        return Err(ApiError::internal(e));
    }
    Ok((upload, content_type))
}

/// Parts of an upload's form besides `file`, at most.
const MAX_OTHER_PARTS: usize = 16;

/// What an upload's body may hold besides the file: the form's framing and its other parts.
const FORM_MARGIN: usize = 64 * 1024;

/// What an upload's form carried.
struct UploadedForm {
    file_name: String,
    received: Received,
    internal: bool,
}

/// Reads the whole form: the `file` part streamed into storage under `key`, an `internal` part
/// before or after it, other parts dropped (at most [`MAX_OTHER_PARTS`] in all). Any failure
/// aborts the stored upload.
async fn read_form(
    state: &AppState,
    form: &mut Multipart,
    role: Role,
    key: &str,
    limit: usize,
) -> Result<UploadedForm, ApiError> {
    // Staff files are internal unless said otherwise; an agent's always, a client's never.
    let mut internal = role != Role::Client;
    let mut file: Option<(String, Received)> = None;
    let mut others = 0usize;
    let read = async {
        while let Some(mut part) = form.try_next().await.map_err(bad_multipart)? {
            if part.name() == Some("file") && file.is_none() {
                let name = part.content_disposition().and_then(|cd| cd.get_filename());
                let name = clean_file_name(name);
                file = Some((name, receive(state, part, key, limit).await?));
                continue;
            }
            others += 1;
            if others > MAX_OTHER_PARTS {
                return Err(ApiError::invalid_field(
                    "/file",
                    "too_many_parts",
                    "send at most 16 parts besides the one named `file`",
                ));
            }
            if part.name() == Some("internal") {
                internal = internal_part(part, role).await?;
            } else {
                // Dropped; its bytes count towards the body's limit.
                while part.try_next().await.map_err(bad_multipart)?.is_some() {}
            }
        }
        Ok(())
    }
    .await;
    match (read, file) {
        (Ok(()), Some((file_name, received))) => Ok(UploadedForm {
            file_name,
            received,
            internal,
        }),
        (Ok(()), None) => Err(ApiError::invalid_field(
            "/file",
            "required",
            "send the file in a part named `file`",
        )),
        (Err(e), Some((_, received))) => {
            received.upload.abort().await;
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

/// Upload an attachment
///
/// `multipart/form-data` with one part named `file`, streamed into storage. Larger than
/// `DOSSIER_MAX_UPLOAD_BYTES` (default 10 MiB) is 413, decided while streaming, and leaves
/// nothing behind. The type is detected from the bytes; accepted are images, PDF, office
/// documents, plain text, audio and video (anything else 415). The file name is sanitized; size
/// and SHA-256 are stored. Allowed while the case is paid and not terminal (409 otherwise).
/// Staff files are internal (hidden from the client) unless agency or platform staff send an
/// `internal` part `false`, before or after `file`; an agent's files always are. At most 16
/// parts besides `file`, and the whole body within the limit plus 64 KiB, counted as it comes
/// when it declares no length. Roles: anyone who can see the case.
#[utoipa::path(
    tag = "attachments",
    operation_id = "upload_attachment",
    params(("id" = Uuid, Path, description = "Case id")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = AttachmentView,
            headers(("Location" = String, description = "The download URL"))),
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
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let asking = Asking::new(token, &req);
    let case_id = id.into_inner().to_string();
    let limit = state.settings.max_upload_bytes;
    let check_case = {
        let case_id = case_id.clone();
        move |conn: &mut db::DbConnection| {
            let asked = asking.resolve(conn)?;
            let case = find_visible(conn, &asked.viewer, &case_id)?;
            let status = case.status();
            if !workflow::state_of(status).accepts_files {
                return Err(wrong_state(
                    &asked.viewer,
                    status,
                    format!("A `{status}` case takes no files."),
                ));
            }
            Ok(asked)
        }
    };
    // Refuse before reading a byte of the body when the caller, the case or the size already
    // says no.
    let asked = db::read(&state.pool, check_case.clone()).await?;
    let (uploader, role) = (asked.caller.id, asked.viewer.role);
    // The whole body: the file, the form's framing and its other parts.
    let body_limit = limit.saturating_add(FORM_MARGIN);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > body_limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_form {
        return Err(ApiError::UnsupportedMediaType(
            "Send the file as `multipart/form-data` with a part named `file`.".into(),
        ));
    }
    // A chunked body declares no length: it is counted as it comes, so that neither the form's
    // framing nor its other parts can go on for ever.
    let read = Rc::new(Cell::new(0usize));
    let counted = payload.map({
        let read = Rc::clone(&read);
        move |chunk| {
            let chunk = chunk?;
            read.set(read.get() + chunk.len());
            if read.get() > body_limit {
                return Err(PayloadError::Overflow);
            }
            Ok(chunk)
        }
    });
    let mut form = Multipart::new(req.headers(), counted);
    let attachment_id = repo::new_id();
    let key = format!("attachments/{attachment_id}");
    let UploadedForm {
        file_name,
        received,
        internal,
    } = read_form(&state, &mut form, role, &key, limit)
        .await
        .map_err(|e| match read.get() > body_limit {
            true => ApiError::PayloadTooLarge { limit },
            false => e,
        })?;
    received.upload.finish().await.map_err(ApiError::internal)?;
    let row = AttachmentRow {
        id: attachment_id,
        case_id,
        uploader_id: uploader,
        file_name,
        content_type: received.content_type.to_owned(),
        size_bytes: received.size as i64,
        sha256: received.sha256,
        storage_key: key.clone(),
        created_at: db::now(),
        internal,
    };
    let saved = db::write(&state.pool, move |conn| {
        // The caller and the case may have moved on while the bytes streamed in; the case is
        // locked before it is looked at again.
        repo::cases::share_lock(conn, &row.case_id)?;
        let Asked { actor, .. } = check_case(conn)?;
        repo::attachments::insert(conn, &row)?;
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
        Ok(row)
    })
    .await;
    match saved {
        Ok(row) => {
            let view = AttachmentView::from(row);
            Ok(HttpResponse::Created()
                .insert_header((header::LOCATION, view.download_url.clone()))
                .json(view))
        }
        Err(e) => {
            // Nothing in the database points at the blob: remove it.
            state.blobs.delete(&key).await;
            Err(e)
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAttachmentsQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List a case's attachments
///
/// Newest first; the client's list leaves internal files out. Roles: anyone who can see the
/// case.
#[utoipa::path(
    tag = "attachments",
    operation_id = "list_attachments",
    params(("id" = Uuid, Path, description = "Case id"), ListAttachmentsQuery),
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
    query: web::Query<ListAttachmentsQuery>,
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
        find_visible(conn, &viewer, &row.case_id).map_err(|_| attachment_not_found())?;
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
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>,
            headers(("ETag" = String, description = "The SHA-256"), ("Content-Disposition" = String, description = "`attachment` with the file name"))),
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
    let tag = format!("\"{}\"", row.sha256);
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }
    let blob = state
        .blobs
        .get(&row.storage_key)
        .await
        .map_err(ApiError::internal)?;
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(row.file_name.clone())],
    };
    let stream = blob
        .into_stream()
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()));
    Ok(HttpResponse::Ok()
        .content_type(row.content_type)
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::ETAG, tag))
        .no_chunking(row.size_bytes as u64)
        .streaming(stream))
}

/// Delete an attachment
///
/// The uploader, the case's agency staff and platform staff may delete, while the case takes
/// files (409 otherwise); others who can see the case get 403. A file that a message, a
/// storyline event, an answer or a required-data value of the case still carries stays (409
/// `attachment_in_use`): edit the event or clear the value first; a message's files stay for
/// good. Recorded in the audit trail; the blob is removed once the deletion commits.
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
        let case = find_visible(conn, &viewer, &row.case_id).map_err(|_| attachment_not_found())?;
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
        let case = share_locked(conn, &viewer, case).map_err(|_| attachment_not_found())?;
        let status = case.status();
        if !workflow::state_of(status).accepts_files {
            return Err(wrong_state(
                &viewer,
                status,
                format!("The files of a `{status}` case no longer change."),
            ));
        }
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
        Ok(row.storage_key)
    })
    .await?;
    state.blobs.delete(&key).await;
    Ok(HttpResponse::NoContent().finish())
}
