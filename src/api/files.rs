//! Files over HTTP, for every owner of attachments (a case, a support ticket): a streamed
//! multipart upload into object storage, typed by its bytes, and a streamed download.

use std::cell::Cell;
use std::rc::Rc;

use actix_multipart::{Field, Multipart};
use actix_web::error::PayloadError;
use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::{self, DbConnection};
use crate::domain::Role;
use crate::errors::{ApiError, FieldError};
use crate::http::idempotency::{Answer, Created};
use crate::repo;
use crate::storage::BlobUpload;

/// Bytes read before the type is decided (and before anything is written to storage).
const SNIFF_BYTES: usize = 8192;

/// How long an upload may take, from its first byte to its row: after that, a blob under its
/// key that no row owns is a dropped request's, and housekeeping removes it.
pub const UPLOAD_WINDOW: chrono::Duration = chrono::Duration::hours(24);

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

/// A download's 200 in the spec: one entry per type a stored file can have (the ranges and
/// [`DOCUMENT_TYPES`] that [`detect`] accepts), with no schema, as the bytes are the file's own.
pub struct FileDownload;

impl<'r> utoipa::ToResponse<'r> for FileDownload {
    fn response() -> (&'r str, utoipa::openapi::RefOr<utoipa::openapi::Response>) {
        use utoipa::openapi::{
            ContentBuilder, HeaderBuilder, ObjectBuilder, ResponseBuilder, Type,
        };
        let header = |description: &str| {
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some(description))
                .build()
        };
        let types = ["image/*", "audio/*", "video/*", "text/plain"];
        let response = types
            .iter()
            .chain(DOCUMENT_TYPES)
            .fold(ResponseBuilder::new(), |r, media| {
                r.content(*media, ContentBuilder::new().build())
            })
            .description("The file, as the type detected from its bytes when it was uploaded")
            .header("ETag", header("The SHA-256"))
            .header(
                "Content-Disposition",
                header("`attachment` with the file name (`filename*` too when it is not ASCII)"),
            )
            .header("X-Content-Type-Options", header("`nosniff`"))
            .build();
        ("FileDownload", response.into())
    }
}

/// A file's type, detected from its bytes, and the extension that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Detected {
    mime: &'static str,
    extension: &'static str,
}

const PLAIN_TEXT: Detected = Detected {
    mime: "text/plain",
    extension: "txt",
};

/// Extensions a plain-text file keeps: formats that are text and that no program runs.
const TEXT_EXTENSIONS: &[&str] = &["txt", "text", "log", "csv", "tsv", "md", "markdown", "json"];

/// The type of a file from its first bytes, if it is one we accept. The name and the
/// client's declared type are ignored: a renamed executable stays an executable.
fn detect(head: &[u8], text: &PlainText) -> Option<Detected> {
    match infer::get(head) {
        Some(kind) => {
            let mime = kind.mime_type();
            let media = ["image/", "audio/", "video/"];
            (media.iter().any(|m| mime.starts_with(m)) || DOCUMENT_TYPES.contains(&mime)).then(
                || Detected {
                    mime,
                    extension: kind.extension(),
                },
            )
        }
        // No signature: plain text if it is so far; `text` reads the rest as it comes.
        None => text.so_far().then_some(PLAIN_TEXT),
    }
}

/// Whether a body is UTF-8 without NUL bytes, read a chunk at a time (a character may be cut
/// between two chunks): a file is plain text only if all of it is, not just its first bytes.
#[derive(Default)]
struct PlainText {
    /// The start of a character cut at the end of the last chunk.
    carry: Vec<u8>,
    broken: bool,
}

impl PlainText {
    fn feed(&mut self, chunk: &[u8]) {
        if self.broken {
            return;
        }
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(chunk);
        self.broken = bytes.contains(&0)
            || match std::str::from_utf8(&bytes) {
                Ok(_) => false,
                Err(e) if e.error_len().is_none() => {
                    self.carry = bytes[e.valid_up_to()..].to_vec();
                    false
                }
                Err(_) => true,
            };
    }

    /// Text so far, a character cut at the end allowed.
    fn so_far(&self) -> bool {
        !self.broken
    }

    /// Text, whole.
    fn whole(&self) -> bool {
        !self.broken && self.carry.is_empty()
    }
}

/// The last path component, stripped of anything a file system or a header would mind, and of
/// invisible format characters (a right-to-left override shows `invoice\u{202E}fdp.js` as
/// `invoice…sj.pdf`).
fn clean_file_name(raw: Option<&str>) -> String {
    use unicode_general_category::{GeneralCategory, get_general_category};
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let clean: String = sanitize_filename::sanitize(base)
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .filter(|c| get_general_category(*c) != GeneralCategory::Format)
        .take(200)
        .collect();
    let clean = clean.trim().trim_start_matches('.').to_owned();
    if clean.is_empty() {
        "file".to_owned()
    } else {
        clean
    }
}

/// The uploader's name, with the detected type's extension added unless its own names that
/// type, or is a media file's of the same kind (an image's, a recording's): what is downloaded
/// opens as what it is, never as something a double-click runs (a script sent as text is
/// `.txt`, a playlist sent as an MP3 `.m3u.mp3`). Kinds, so that a phone's `IMG_0001.HEIC`
/// (detected HEIF) and `memo.m4a` (an MP4) keep their names.
fn named_as(name: String, detected: Detected) -> String {
    let own = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    let fits = own.is_some_and(|own| match detected {
        PLAIN_TEXT => TEXT_EXTENSIONS.contains(&own.as_str()),
        _ => {
            own == detected.extension
                || mime_guess::from_ext(&own).iter_raw().any(|mime| {
                    mime == detected.mime
                        || (MEDIA_EXTENSIONS.contains(&own.as_str())
                            && media_kind(mime)
                                .is_some_and(|k| media_kind(detected.mime) == Some(k)))
                })
        }
    });
    if fits {
        return name;
    }
    // Within the 200 characters a name keeps: the stem gives way to the extension.
    let room = 200 - detected.extension.len() - 1;
    let stem: String = name.chars().take(room).collect();
    format!("{stem}.{}", detected.extension)
}

/// Extensions of images and recordings themselves, which keep a name on a file of their kind:
/// not of what merely points at media (a playlist, which a player follows to any address).
const MEDIA_EXTENSIONS: &[&str] = &[
    "avif", "bmp", "gif", "heic", "heif", "jpe", "jpeg", "jpg", "png", "tif", "tiff", "webp",
    "3g2", "3gp", "aac", "aif", "aiff", "amr", "avi", "flac", "m4a", "m4v", "mid", "midi", "mkv",
    "mov", "mp3", "mp4", "mpeg", "mpg", "oga", "ogg", "ogv", "opus", "wav", "webm",
];

/// The kind of media a type is (images; sound and video, which share containers), if any.
fn media_kind(mime: &str) -> Option<&'static str> {
    match mime.split_once('/').map(|(kind, _)| kind) {
        Some("image") => Some("image"),
        Some("audio" | "video") => Some("audio or video"),
        _ => None,
    }
}

/// The value of an upload's `internal` part: `true` or `false`, and only staff choose; a form
/// that takes none (`role` `None`: files every side sees) refuses it.
async fn internal_part(mut part: Field, role: Option<Role>) -> Result<bool, ApiError> {
    let Some(role) = role else {
        return Err(ApiError::invalid_field(
            "/internal",
            "not_allowed",
            "these files have no internal side: both sides see them",
        ));
    };
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
    detected: Detected,
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
    let mut started: Option<(BlobUpload, Detected)> = None;
    let mut text = PlainText::default();
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
        text.feed(&chunk);
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
                    started = Some(begin(state, key, &head, &text).await?);
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
    let (upload, detected) = match started {
        Some(s) => s,
        None => begin(state, key, &head, &text).await?,
    };
    // Text at its start and not all through (a ZIP after it, say) is no type we accept.
    if detected == PLAIN_TEXT && !text.whole() {
        upload.abort().await;
        return Err(not_accepted());
    }
    Ok(Received {
        upload,
        detected,
        size,
        sha256: format!("{:x}", hasher.finalize()),
    })
}

fn not_accepted() -> ApiError {
    ApiError::UnsupportedMediaType(
        "This kind of file is not accepted: images, PDF, office documents, plain text, audio \
         and video are."
            .into(),
    )
}

/// Decides the type from `head` (`text`: what is known of it as text) and opens the upload
/// with it written.
async fn begin(
    state: &AppState,
    key: &str,
    head: &[u8],
    text: &PlainText,
) -> Result<(BlobUpload, Detected), ApiError> {
    let detected = detect(head, text).ok_or_else(not_accepted)?;
    let mut upload = state
        .blobs
        .start_upload(key)
        .await
        .map_err(ApiError::internal)?;
    if let Err(e) = upload.write(head).await {
        upload.abort().await;
        return Err(ApiError::internal(e));
    }
    Ok((upload, detected))
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
    role: Option<Role>,
    key: &str,
    limit: usize,
) -> Result<UploadedForm, ApiError> {
    // Staff files are internal unless said otherwise; an agent's always, a client's never.
    let mut internal = role.is_some_and(|r| r != Role::Client);
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

/// A file stored whole under its key; the caller writes its row, and deletes the blob if that
/// fails. Serialized, it is what an upload's `Idempotency-Key` compares: the same bytes under
/// the same name and side.
#[derive(Serialize)]
pub struct StoredFile {
    pub file_name: String,
    pub content_type: &'static str,
    pub size_bytes: i64,
    pub sha256: String,
    /// The form's `internal` part, or the default for the uploader's role (`false` where the
    /// form takes none).
    pub internal: bool,
}

/// Receives an upload's `multipart/form-data` body and stores its `file` part under `key`.
/// `role` is the uploader's, for a form that takes an `internal` part (`None`: refused). The
/// body is refused before a byte is read when it declares more than the limit and 64 KiB, or
/// is not a form; a chunked one is counted as it comes, so that neither the form's framing nor
/// its other parts can go on for ever.
pub async fn receive_upload(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    role: Option<Role>,
    key: &str,
) -> Result<StoredFile, ApiError> {
    let limit = state.settings.max_upload_bytes;
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
    // Before a byte is stored: a request dropped from here on (the client gone, the server
    // stopping) leaves a blob that only this row tells of.
    let loose = key.to_owned();
    db::write(&state.pool, move |conn| {
        let due = db::now() + UPLOAD_WINDOW;
        Ok(repo::loose_blobs::insert(conn, &loose, due)?)
    })
    .await?;
    let stored = store_form(req, payload, state, role, key, body_limit).await;
    if stored.is_err() {
        discard(state, key).await;
    }
    stored
}

/// [`receive_upload`]'s streaming part, once the blob's key is listed as loose.
async fn store_form(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    role: Option<Role>,
    key: &str,
    body_limit: usize,
) -> Result<StoredFile, ApiError> {
    let limit = state.settings.max_upload_bytes;
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
    let UploadedForm {
        file_name,
        received,
        internal,
    } = read_form(state, &mut form, role, key, limit)
        .await
        .map_err(|e| match read.get() > body_limit {
            true => ApiError::PayloadTooLarge { limit },
            false => e,
        })?;
    // A failing `finish` aborts the upload itself (object_store's `WriteMultipart`).
    received.upload.finish().await.map_err(ApiError::internal)?;
    Ok(StoredFile {
        file_name: named_as(file_name, received.detected),
        content_type: received.detected.mime,
        size_bytes: received.size as i64,
        sha256: received.sha256,
        internal,
    })
}

/// What an upload made, for `idempotency::remember`: the file, its download URL as `Location`.
pub fn uploaded<V>(view: V, download_url: impl Fn(&V) -> &str) -> Created<V> {
    Created {
        location: Some(download_url(&view).to_owned()),
        version: None,
        body: view,
    }
}

/// The answer to an upload once its row's write is done (`idempotency::remember`): 201 with
/// what [`uploaded`] made. A refused write, or the replay of an earlier upload, leaves nothing
/// pointing at this request's blob, so it is removed. A write that failed without telling
/// whether it committed (the database's connection lost, an internal failure) may own it: the
/// blob stays, and housekeeping removes it only if its `loose_blobs` row is still there, which
/// the committed write would have settled.
pub async fn answer_upload(
    state: &AppState,
    key: &str,
    saved: Result<Answer, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let keep = match &saved {
        Ok(answer) => !answer.replayed,
        Err(e) => e.may_have_committed(),
    };
    if !keep {
        discard(state, key).await;
    }
    saved.map(Answer::into_response)
}

/// In the write that gives an uploaded blob its row: the blob is owned now.
pub fn own(conn: &mut DbConnection, key: &str) -> Result<(), ApiError> {
    Ok(repo::loose_blobs::settle(conn, &[key.to_owned()])?)
}

/// In the write that deletes a file's row: its blob is loose from the commit on, until
/// [`discard`] (or housekeeping, if this request is dropped first) removes it.
pub fn let_go(conn: &mut DbConnection, key: &str) -> Result<(), ApiError> {
    Ok(repo::loose_blobs::insert(conn, key, db::now())?)
}

/// Removes a loose blob, then its `loose_blobs` row. Whatever fails is left to housekeeping.
pub async fn discard(state: &AppState, key: &str) {
    if state.blobs.delete(key).await {
        let key = [key.to_owned()];
        let settled = db::write(&state.pool, move |conn| {
            Ok(repo::loose_blobs::settle(conn, &key)?)
        })
        .await;
        if let Err(e) = settled {
            log::warn!("a deleted blob stays listed as loose until housekeeping: {e}");
        }
    }
}

/// A page of an owner's files.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListFilesQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The files something cites (`attachment_ids`), sorted and each once, as they are stored.
pub fn cited_ids(ids: &[Uuid]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// 422 `invalid_attachment` at each of the `attachment_ids` sent (by its place in the array)
/// that is not among the files `found`.
pub fn not_found_among(sent: &[Uuid], found: &[String], detail: &str) -> Vec<FieldError> {
    sent.iter()
        .enumerate()
        .filter(|(_, id)| !found.contains(&id.to_string()))
        .map(|(i, _)| FieldError::new(format!("/attachment_ids/{i}"), "invalid_attachment", detail))
        .collect()
}

/// What a download needs to know of a stored file.
pub struct FileToServe<'a> {
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub sha256: &'a str,
    pub storage_key: &'a str,
}

/// `attachment` with the file's name: as sent when it is ASCII; otherwise an ASCII stand-in in
/// `filename` and the name itself in `filename*` (RFC 6266), which every current browser reads.
fn attachment_named(name: &str) -> ContentDisposition {
    let mut parameters = Vec::with_capacity(2);
    if name.is_ascii() {
        parameters.push(DispositionParam::Filename(name.to_owned()));
    } else {
        let ascii = name
            .chars()
            .map(|c| if c.is_ascii() { c } else { '_' })
            .collect();
        parameters.push(DispositionParam::Filename(ascii));
        parameters.push(DispositionParam::FilenameExt(ExtendedValue {
            charset: Charset::Ext("UTF-8".to_owned()),
            language_tag: None,
            value: name.as_bytes().to_vec(),
        }));
    }
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters,
    }
}

/// Streams the file with its detected type, `Content-Disposition: attachment`,
/// `X-Content-Type-Options: nosniff` and its SHA-256 as a strong `ETag`; 304 for a matching
/// `If-None-Match`.
pub async fn serve(
    req: &HttpRequest,
    state: &AppState,
    file: FileToServe<'_>,
) -> Result<HttpResponse, ApiError> {
    let tag = format!("\"{}\"", file.sha256);
    if crate::http::extract::none_match(req, &tag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }
    // A deletion that committed since the row was read has taken the blob with it.
    let blob = match state.blobs.get(file.storage_key).await {
        Ok(blob) => blob,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(ApiError::NotFound("The file has just been deleted.".into()));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let disposition = attachment_named(file.file_name);
    let stream = blob
        .into_stream()
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()));
    Ok(HttpResponse::Ok()
        .content_type(file.content_type.to_owned())
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::ETAG, tag))
        .no_chunking(file.size_bytes as u64)
        .streaming(stream))
}
