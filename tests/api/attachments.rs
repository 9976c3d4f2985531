//! Attachments: streamed uploads into a real folder, typed by content, capped, downloadable
//! only by those who see the case.

use actix_web::test::TestRequest;

use crate::helpers::{AppService, Response, TestApp, spawn, spawn_with};
use crate::world::{World, act, buy, id};

const BOUNDARY: &str = "dossier-test-boundary-7f3a";

pub fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    bytes.resize(size, 7);
    bytes
}

fn form(part: &str, file_name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"{file_name}\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub async fn upload<S>(
    app: &TestApp<S>,
    token: &str,
    case: &str,
    file_name: &str,
    bytes: &[u8],
) -> Response
where
    S: AppService,
{
    upload_to(app, token, &case_files(case), file_name, bytes).await
}

/// A case's attachments.
pub fn case_files(case: &str) -> String {
    format!("/v1/cases/{case}/attachments")
}

/// [`upload`] to any owner's files (`uri`: a case's or a ticket's).
pub async fn upload_to<S>(
    app: &TestApp<S>,
    token: &str,
    uri: &str,
    file_name: &str,
    bytes: &[u8],
) -> Response
where
    S: AppService,
{
    app.send(upload_request(token, uri).set_payload(form("file", file_name, bytes)))
        .await
}

/// [`upload_to`] under an `Idempotency-Key`.
pub async fn upload_keyed_to<S>(
    app: &TestApp<S>,
    token: &str,
    uri: &str,
    key: &str,
    file_name: &str,
    bytes: &[u8],
) -> Response
where
    S: AppService,
{
    let req = upload_request(token, uri).insert_header(("idempotency-key", key));
    app.send(req.set_payload(form("file", file_name, bytes)))
        .await
}

/// [`upload`] with an `internal` part (`"true"`, `"false"`, or anything to be refused) before
/// the file, or after it.
pub async fn upload_marked<S>(
    app: &TestApp<S>,
    token: &str,
    case: &str,
    internal: &str,
    after_file: bool,
    file_name: &str,
    bytes: &[u8],
) -> Response
where
    S: AppService,
{
    let uri = case_files(case);
    upload_marked_to(app, token, &uri, internal, after_file, file_name, bytes).await
}

/// [`upload_marked`] to any owner's files.
pub async fn upload_marked_to<S>(
    app: &TestApp<S>,
    token: &str,
    uri: &str,
    internal: &str,
    after_file: bool,
    file_name: &str,
    bytes: &[u8],
) -> Response
where
    S: AppService,
{
    let body = marked_form(internal, after_file, file_name, bytes);
    app.send(upload_request(token, uri).set_payload(body)).await
}

/// A form with an `internal` part before the file, or after it.
fn marked_form(internal: &str, after_file: bool, file_name: &str, bytes: &[u8]) -> Vec<u8> {
    let part = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"internal\"\r\n\r\n{internal}\r\n"
    );
    let file = form("file", file_name, bytes);
    if after_file {
        // The form's closing boundary goes after the `internal` part.
        let end = format!("--{BOUNDARY}--\r\n");
        let open = &file[..file.len() - end.len()];
        [open, part.as_bytes(), end.as_bytes()].concat()
    } else {
        [part.as_bytes(), &file].concat()
    }
}

/// A multipart upload to `uri`, without its body.
fn upload_request(token: &str, uri: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header((
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ))
}

/// Every file under the store's folder (uploads in progress included).
pub fn stored_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(stored_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[actix_web::test]
async fn a_name_outside_ascii_is_downloaded_in_filename_star() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    // A name outside ASCII is sent in `filename*`, with an ASCII stand-in for older clients.
    let res = upload(&app, &w.client.token, &case, "Ślad – foto.png", &png(100)).await;
    let body = res.assert_status(201);
    assert_eq!(body["file_name"], "Ślad – foto.png");
    let polish = body["download_url"].as_str().unwrap().to_owned();
    let res = app.get(&polish, &w.client.token).await;
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(
        res.header("content-disposition"),
        Some(
            "attachment; filename=\"_lad _ foto.png\"; filename*=UTF-8''%C5%9Alad%20%E2%80%93%20foto.png"
        )
    );
}

/// A file's name ends in an extension of the type its bytes have (added where it does not):
/// what is downloaded opens as what it is. Invisible format characters leave the name, and a
/// file is plain text only if all of it is.
#[actix_web::test]
async fn names_fit_the_detected_type_and_text_is_text_all_through() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let mut jpeg = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0".to_vec();
    jpeg.resize(500, 7);
    let long_text = "è".repeat(6000);
    // A phone's photo and voice note: HEIF and MP4 detected, named as the phone named them.
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.resize(600, 0);
    let mut mp4 = b"\0\0\0\x18ftypmp42\0\0\0\0isommp42".to_vec();
    mp4.resize(600, 0);
    // At the 200 characters a name keeps, the stem gives way to the extension.
    let long_name = format!("{}.js", "a".repeat(198));
    let long_named = format!("{}.txt", "a".repeat(196));
    let cases: [(&str, &[u8], &str, &str); 12] = [
        ("IMG_0001.HEIC", &heic, "IMG_0001.HEIC", "image/heif"),
        ("memo.m4a", &mp4, "memo.m4a", "video/mp4"),
        // A playlist is no recording: a player would follow it anywhere.
        (
            "list.m3u",
            b"ID3\n#EXTM3U\nhttp://x.example/a.mp3\n",
            "list.m3u.mp3",
            "audio/mpeg",
        ),
        (&long_name, b"WScript.Echo(1)\n", &long_named, "text/plain"),
        (
            "invoice.js",
            b"WScript.Echo(1)\n",
            "invoice.js.txt",
            "text/plain",
        ),
        (
            "run.HTA",
            b"<svg onload=alert(1)>",
            "run.HTA.txt",
            "text/plain",
        ),
        (
            "notes.csv",
            b"plate,seen\nAB123CD,14:05\n",
            "notes.csv",
            "text/plain",
        ),
        ("long.TXT", long_text.as_bytes(), "long.TXT", "text/plain"),
        ("photo.jpeg", &jpeg, "photo.jpeg", "image/jpeg"),
        ("scan", &png(300), "scan.png", "image/png"),
        ("report.pdf", &png(300), "report.pdf.png", "image/png"),
        (
            "invoice\u{202E}fdp.js",
            b"WScript.Echo(1)\n",
            "invoicefdp.js.txt",
            "text/plain",
        ),
    ];
    for (sent, bytes, named, typed) in cases {
        let res = upload(&app, &w.client.token, &case, sent, bytes).await;
        let body = res.assert_status(201);
        assert_eq!(
            (body["file_name"].as_str(), body["content_type"].as_str()),
            (Some(named), Some(typed)),
            "{sent}"
        );
        let res = app
            .get(body["download_url"].as_str().unwrap(), &w.client.token)
            .await;
        assert_eq!(
            res.header("content-disposition"),
            Some(format!("attachment; filename=\"{named}\"").as_str()),
            "{sent}"
        );
    }
    // Sent a kilobyte at a time, as a network delivers it, text is read all through: a
    // character cut between two chunks is still text; a ZIP after 9 KiB of text, a byte that
    // is no UTF-8 past the sniffed prefix, and a character cut at the end are not.
    let euros = "€".repeat(5000).into_bytes();
    let res = upload_in_chunks(&app, &w.client.token, &case, "euros.txt", &euros).await;
    assert_eq!(res.assert_status(201)["content_type"], "text/plain");
    let mut polyglot = "a".repeat(9 * 1024).into_bytes();
    polyglot.extend_from_slice(b"PK\x03\x04\x14\0\0\0\x08\0");
    let mut late_byte = "b".repeat(9 * 1024).into_bytes();
    late_byte.push(0xFF);
    let cut = b"caff\xC3".to_vec();
    for (sent, bytes) in [("x.txt", polyglot), ("y.txt", late_byte), ("z.txt", cut)] {
        upload_in_chunks(&app, &w.client.token, &case, sent, &bytes)
            .await
            .assert_problem(415, "unsupported_media_type");
    }
    assert_eq!(app.rows_in(&["attachments", "loose_blobs"]), [13, 0]);
    assert_eq!(stored_files(app.files.path()).len(), 13);
}

/// [`upload`] as a body of 1 000-byte chunks without a length, read as it streams.
async fn upload_in_chunks<S>(
    app: &TestApp<S>,
    token: &str,
    case: &str,
    file_name: &str,
    bytes: &[u8],
) -> Response
where
    S: AppService,
{
    let chunks: Vec<_> = form("file", file_name, bytes)
        .chunks(1000)
        .map(|chunk| {
            let chunk = actix_web::web::Bytes::copy_from_slice(chunk);
            Ok::<_, actix_http::error::PayloadError>(chunk)
        })
        .collect();
    let req = upload_request(token, &case_files(case)).to_request();
    let paced = futures_util::StreamExt::then(futures_util::stream::iter(chunks), |chunk| async {
        tokio::task::yield_now().await;
        chunk
    });
    let (req, _) = req.replace_payload(actix_http::Payload::from(
        Box::pin(paced) as actix_http::BoxedPayloadStream
    ));
    app.send_request(req).await
}

#[actix_web::test]
async fn upload_download_list_and_delete_with_the_case_rules() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let bytes = png(20_000);
    let res = upload(
        &app,
        &w.client.token,
        &case,
        "../../etc/Targa auto.png",
        &bytes,
    )
    .await;
    let body = res.assert_status(201).clone();
    assert_eq!(body["file_name"], "Targa auto.png");
    assert_eq!(body["content_type"], "image/png");
    assert_eq!(body["size_bytes"], 20_000);
    use sha2::Digest;
    assert_eq!(
        body["sha256"],
        format!("{:x}", sha2::Sha256::digest(&bytes))
    );
    let download = body["download_url"].as_str().unwrap().to_owned();
    assert_eq!(res.header("location"), Some(download.as_str()));
    assert_eq!(stored_files(app.files.path()).len(), 1);

    // The agency downloads the same bytes, with the safe headers.
    let res = app
        .send(
            TestRequest::get()
                .uri(&download)
                .insert_header(("authorization", format!("Bearer {}", w.a_operator.token))),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(res.header("content-type"), Some("image/png"));
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        res.header("content-disposition"),
        Some("attachment; filename=\"Targa auto.png\"")
    );
    let etag = res.header("etag").unwrap().to_owned();
    // Revalidated at every use, and never handed to another token's request by a browser.
    assert_eq!(res.header("cache-control"), Some("private, no-cache"));
    assert!(res.varies().contains(&"authorization".to_owned()));

    let (status, _, raw) = app.bytes(&download, &w.client.token).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(raw, bytes, "the very bytes uploaded");
    // As sent, weak (`W/`, the weak comparison `If-None-Match` takes), among others, or `*`.
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    for tag in [etag.as_str(), &weak, &listed, "*"] {
        let sent = [("if-none-match", tag)];
        let res = app
            .call("GET", &download, &w.client.token, None, &sent)
            .await;
        assert_eq!(res.status.as_u16(), 304, "{tag}");
        assert_eq!(res.header("etag"), Some(etag.as_str()));
    }
    let sent = [("if-none-match", "\"other\"")];
    let res = app
        .call("GET", &download, &w.client.token, None, &sent)
        .await;
    assert_eq!(res.status.as_u16(), 200);

    // Text and PDF are accepted; a disguised executable and unknown binaries are not.
    // The agency's files, for the client (staff files are internal unless said otherwise).
    let res = upload_marked(
        &app,
        &w.a_operator.token,
        &case,
        "false",
        false,
        "notes.txt",
        "Visto alle 14:05 davanti al caffè\n".as_bytes(),
    )
    .await;
    assert_eq!(res.assert_status(201)["content_type"], "text/plain");
    let res = upload_marked(
        &app,
        &w.a_operator.token,
        &case,
        "false",
        true,
        "report.pdf",
        b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n",
    )
    .await;
    assert_eq!(res.assert_status(201)["content_type"], "application/pdf");
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    exe.resize(4000, 0);
    upload(&app, &w.client.token, &case, "photo.png", &exe)
        .await
        .assert_problem(415, "unsupported_media_type");
    upload(
        &app,
        &w.client.token,
        &case,
        "blob.bin",
        &[0u8, 1, 2, 3, 0, 255],
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    upload(&app, &w.client.token, &case, "empty.txt", b"")
        .await
        .assert_problem(422, "empty_file");
    assert_eq!(stored_files(app.files.path()).len(), 3);

    // The list, newest first.
    let list = app
        .get(&format!("/v1/cases/{case}/attachments"), &w.client.token)
        .await;
    let names: Vec<&str> = list.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["file_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["report.pdf", "notes.txt", "Targa auto.png"]);

    // Nobody else sees, uploads or deletes: 404 alike for every route.
    for token in [&w.client2.token, &w.b_operator.token, &w.a_agent.token] {
        app.get(&download, token)
            .await
            .assert_problem(404, "not_found");
        app.get(&format!("/v1/cases/{case}/attachments"), token)
            .await
            .assert_problem(404, "not_found");
        upload(&app, token, &case, "x.txt", b"hello")
            .await
            .assert_problem(404, "not_found");
        app.call("DELETE", &download, token, None, &[])
            .await
            .assert_problem(404, "not_found");
    }
    // A client may not delete the agency's file; the agency deletes the client's.
    let pdf = list.body["items"][0]["download_url"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call("DELETE", &pdf, &w.client.token, None, &[])
        .await
        .assert_problem(403, "forbidden");
    let res = app
        .call("DELETE", &download, &w.a_operator.token, None, &[])
        .await;
    assert_eq!(res.status.as_u16(), 204);
    app.get(&download, &w.client.token)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(stored_files(app.files.path()).len(), 2);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND entity = 'attachment' AND action = 'upload'"
        )),
        // file name, type, SHA-256 and whether it is internal, for three uploads
        12
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND entity = 'attachment' AND action = 'delete'"
        )),
        1
    );

    // Not before payment, not once closed.
    let unpaid = id(&buy(&app, &w.client.token, &w.service_a, "bank_transfer").await);
    upload(&app, &w.client.token, &unpaid, "x.txt", b"hello")
        .await
        .assert_problem(409, "wrong_state");
    act(&app, &w.client.token, &case, "cancel")
        .await
        .assert_status(200);
    upload(&app, &w.a_operator.token, &case, "x.txt", b"hello")
        .await
        .assert_problem(409, "wrong_state");
    app.call("DELETE", &pdf, &w.a_operator.token, None, &[])
        .await
        .assert_problem(409, "wrong_state");
}

/// A retried upload under its `Idempotency-Key` is the first one replayed: one row, one audit
/// entry, one blob (the retry's bytes are removed). Another file under the key is 422 and
/// keeps nothing; keys are their caller's; a retry once the case takes no files is 409.
#[actix_web::test]
async fn retried_uploads_are_replayed_and_keep_nothing_of_their_own() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let uri = case_files(&case);
    let written = || {
        let rows = app.rows_in(&["attachments", "audit_log", "idempotency_keys"]);
        (rows, stored_files(app.files.path()).len())
    };
    let bytes = png(5_000);
    let client = w.client.token.as_str();
    let first = upload_keyed_to(&app, client, &uri, "up-1", "photo.png", &bytes).await;
    let photo = id(first.assert_status(201));
    assert_eq!(first.header("idempotent-replayed"), None);
    let after = written();
    assert_eq!(after.1, 1);
    let again = upload_keyed_to(&app, client, &uri, "up-1", "photo.png", &bytes).await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(written(), after, "the replay kept no row and no blob");
    let (status, _, kept) = app.bytes(first.header("location").unwrap(), client).await;
    assert_eq!(
        (status.as_u16(), kept),
        (200, bytes.clone()),
        "the first upload's blob"
    );
    // The same key with other bytes, or the same bytes under another name.
    for (name, other) in [("photo.png", png(5_001)), ("other.png", bytes.clone())] {
        upload_keyed_to(&app, client, &uri, "up-1", name, &other)
            .await
            .assert_problem(422, "idempotency_key_reused");
        assert_eq!(written(), after, "{name}");
    }
    // The operator's key of the same name is theirs: a new upload, internal as staff files are.
    let operator =
        upload_keyed_to(&app, &w.a_operator.token, &uri, "up-1", "photo.png", &bytes).await;
    assert_ne!(id(operator.assert_status(201)), photo);
    assert_eq!(operator.header("idempotent-replayed"), None);
    assert_eq!(operator.body["internal"], true);
    let after = written();
    assert_eq!(after.1, 2);
    // The same file shown to the client is another request.
    let shown = upload_request(&w.a_operator.token, &uri)
        .insert_header(("idempotency-key", "up-1"))
        .set_payload(marked_form("false", false, "photo.png", &bytes));
    app.send(shown)
        .await
        .assert_problem(422, "idempotency_key_reused");
    assert_eq!(written(), after);
    // A malformed key is refused before a byte is stored.
    upload_keyed_to(&app, client, &uri, "up 1", "photo.png", &bytes)
        .await
        .assert_problem(400, "invalid_header");
    assert_eq!(written(), after);
    // Once the case takes no files, the retry is refused as a new upload would be.
    act(&app, client, &case, "cancel").await.assert_status(200);
    let after = written();
    upload_keyed_to(&app, client, &uri, "up-1", "photo.png", &bytes)
        .await
        .assert_problem(409, "wrong_state");
    assert_eq!(written(), after);
}

/// Retries of one keyed upload sent at once store one file: each answer is that file (201, the
/// replays marked) or 409 `idempotency_key_in_use`, and no loser's blob is left behind. Each
/// streams its blob before its write: on SQLite the writes take turns (replays), on PostgreSQL
/// they may overlap (409).
#[actix_web::test]
async fn racing_retries_of_one_keyed_upload_keep_one_file() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let uri = case_files(&case);
    let bytes = png(20_000);
    let results = futures_util::future::join_all(
        (0..4).map(|_| upload_keyed_to(&app, &w.client.token, &uri, "race-1", "photo.png", &bytes)),
    )
    .await;
    let mut files = std::collections::HashSet::new();
    let mut fresh = 0;
    for res in &results {
        match res.status.as_u16() {
            201 => {
                files.insert(id(&res.body));
                fresh += usize::from(res.header("idempotent-replayed").is_none());
            }
            _ => {
                res.assert_problem(409, "idempotency_key_in_use");
            }
        }
    }
    assert_eq!(
        (files.len(), fresh),
        (1, 1),
        "one upload, the others its replays"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 1);
    assert_eq!(
        stored_files(app.files.path()).len(),
        1,
        "no loser's blob kept"
    );
}

#[actix_web::test]
async fn oversized_uploads_are_413_while_streaming_and_leave_nothing() {
    let app = spawn_with(&[("DOSSIER_MAX_UPLOAD_BYTES", "12000")]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    // Past the sniffing window (the upload has begun) and before it.
    for size in [12_001, 50_000] {
        upload(&app, &w.client.token, &case, "big.png", &png(size))
            .await
            .assert_problem(413, "payload_too_large");
    }
    let mut text = Vec::new();
    text.resize(20_000, b'a');
    upload(&app, &w.client.token, &case, "big.txt", &text)
        .await
        .assert_problem(413, "payload_too_large");
    assert!(
        stored_files(app.files.path()).is_empty(),
        "no blob and no partial upload"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 0);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM loose_blobs"), 0);
    // Exactly the limit is fine; a body that is not a form is 415; a form without `file` 422.
    upload(&app, &w.client.token, &case, "ok.png", &png(12_000))
        .await
        .assert_status(201);
    app.post(
        &format!("/v1/cases/{case}/attachments"),
        &w.client.token,
        serde_json::json!({}),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    let res = app
        .send(
            upload_request(&w.client.token, &case_files(&case)).set_payload(form(
                "picture",
                "x.png",
                &png(100),
            )),
        )
        .await;
    res.assert_problem(422, "required");

    // Parts besides the file (the form has one of its own): at most 16, the whole body within
    // the limit and 64 KiB.
    let with_parts = |count: usize, size: usize| {
        let mut body = Vec::new();
        for i in 0..count {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"extra{i}\"\r\n\r\n"
                )
                .as_bytes(),
            );
            body.resize(body.len() + size, b'x');
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(&form("file", "parts.png", &png(100)));
        upload_request(&w.client.token, &case_files(&case)).set_payload(body)
    };
    app.send(with_parts(16, 1))
        .await
        .assert_problem(422, "too_many_parts");
    app.send(with_parts(1, 80_000))
        .await
        .assert_problem(413, "payload_too_large");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 1);
    app.send(with_parts(15, 1)).await.assert_status(201);
    app.send(with_parts(1, 11_000)).await.assert_status(201);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 3);
    // A body without a length is counted as it comes: a preamble that never ends is 413.
    let lines = futures_util::stream::iter((0..100).map(|_| {
        let line = actix_web::web::Bytes::from("a\r\n".repeat(333));
        Ok::<_, actix_http::error::PayloadError>(line)
    }));
    let req = upload_request(&w.client.token, &case_files(&case)).to_request();
    let (req, _) = req.replace_payload(actix_http::Payload::from(
        Box::pin(lines) as actix_http::BoxedPayloadStream
    ));
    app.send_request(req)
        .await
        .assert_problem(413, "payload_too_large");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 3);
}

/// Broken forms are 400 `malformed_multipart` and leave nothing: a boundary of a few
/// characters (actix-multipart 0.7 panicked on it, and no answer came) and a body that ends
/// inside the file part or its closing delimiter (0.7 waited for more, forever).
#[actix_web::test]
async fn malformed_forms_are_400_and_leave_nothing() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let open_file = "--XYZ123\r\nContent-Disposition: form-data; name=\"file\"; \
                     filename=\"a.txt\"\r\n\r\nhello";
    let cases = [
        ("abc", "--\n".to_owned()),
        ("a", "\n".to_owned()),
        ("XYZ123", format!("{open_file}\r")),
        ("XYZ123", format!("{open_file}\r\n--XY")),
        ("XYZ123", open_file.to_owned()),
    ];
    for (boundary, body) in cases {
        let req = TestRequest::post()
            .uri(&case_files(&case))
            .insert_header(("authorization", format!("Bearer {}", w.client.token)))
            .insert_header((
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            ))
            .set_payload(body.clone());
        let answered = std::time::Duration::from_secs(20);
        let res = actix_web::rt::time::timeout(answered, app.send(req))
            .await
            .unwrap_or_else(|_| panic!("no answer to {body:?}"));
        res.assert_problem(400, "malformed_multipart");
    }
    assert!(stored_files(app.files.path()).is_empty());
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 0);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM loose_blobs"), 0);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'upload'"),
        0
    );
    // The same case takes a well-formed file.
    upload(&app, &w.client.token, &case, "ok.png", &png(100))
        .await
        .assert_status(201);
}

/// An upload checks its caller twice: before reading the body, and again in the write that
/// records it, since the bytes may take minutes. A client deactivated while their file streams
/// in gets 401, and no row, audit entry or blob remains.
#[actix_web::test]
async fn a_caller_deactivated_while_the_file_streams_in_is_refused_at_the_end() {
    use actix_http::error::PayloadError;
    use actix_web::web::Bytes;
    use futures_util::StreamExt;

    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);

    // The body is a stream the test feeds; its first poll means the first check has passed.
    let (chunks, queued) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let (polled, first_poll) = tokio::sync::oneshot::channel::<()>();
    let body =
        futures_util::stream::unfold((queued, Some(polled)), |(mut queued, polled)| async move {
            if let Some(polled) = polled {
                let _ = polled.send(());
            }
            let chunk = queued.recv().await?;
            Some((Ok::<_, PayloadError>(chunk), (queued, None)))
        })
        // The multipart reader polls again after the end.
        .fuse();
    let req = upload_request(&w.client.token, &case_files(&case)).to_request();
    let (req, _) = req.replace_payload(actix_http::Payload::from(
        Box::pin(body) as actix_http::BoxedPayloadStream
    ));
    let form = form("file", "late.png", &png(20_000));
    let (head, tail) = form.split_at(4_000);
    chunks.send(Bytes::copy_from_slice(head)).unwrap();
    let feed = async {
        first_poll.await.unwrap();
        app.deactivate_user(&w.platform.token, &w.client.id).await;
        chunks.send(Bytes::copy_from_slice(tail)).unwrap();
        drop(chunks);
    };
    let (res, ()) = futures_util::future::join(app.send_request(req), feed).await;
    res.assert_problem(401, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 0);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'attachment'"),
        0
    );
    assert!(
        stored_files(app.files.path()).is_empty(),
        "the streamed blob was removed"
    );
}

/// Against a real S3-compatible server when `TEST_S3_ENDPOINT` names one with a bucket
/// `dossier-test` (`.ci/run` starts moto's server and makes the bucket).
#[actix_web::test]
async fn attachments_live_in_an_s3_bucket_when_configured() {
    let Some(endpoint) = std::env::var("TEST_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!("TEST_S3_ENDPOINT is not set: the S3 pass runs in .ci/run");
        return;
    };
    let prefix = format!("s3://dossier-test/run-{}", uuid::Uuid::now_v7());
    let app = spawn_with(&[
        ("DOSSIER_STORAGE_URL", &prefix),
        ("AWS_ENDPOINT", &endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ])
    .await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let bytes = png(30_000);
    let res = upload(&app, &w.client.token, &case, "car.png", &bytes).await;
    let download = res.assert_status(201)["download_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        stored_files(app.files.path()).is_empty(),
        "nothing on the local disk"
    );
    let (status, headers, raw) = app.bytes(&download, &w.a_operator.token).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(headers.get("content-type").unwrap(), "image/png");
    assert_eq!(raw, bytes);
    // Too large: aborted in the bucket too, and nothing recorded.
    let app_limit = app.state.settings.max_upload_bytes;
    upload(&app, &w.client.token, &case, "big.png", &png(app_limit + 1))
        .await
        .assert_problem(413, "payload_too_large");
    let res = app
        .call("DELETE", &download, &w.client.token, None, &[])
        .await;
    assert_eq!(res.status.as_u16(), 204);
    app.get(&download, &w.client.token)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 0);
}

/// Internal files: an agent's always, agency staff's when they say so. The client does not see
/// them (list, download, delete, or naming them in a message) until something the client sees
/// carries them: a published storyline event, or a message to the client. Each of those shows
/// its files and records it in the audit trail.
#[actix_web::test]
async fn internal_files_stay_with_the_agency_until_the_client_is_shown_them() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    crate::world::start_case(&app, &w, &case).await;
    crate::world::assign_agent(&app, &w, &case).await;
    let upload_as = async |token: &str, internal: Option<&str>, name: &str| match internal {
        Some(value) => upload_marked(&app, token, &case, value, false, name, &png(300)).await,
        None => upload(&app, token, &case, name, &png(300)).await,
    };
    let agents = upload_as(&w.a_agent.token, None, "agent.png").await;
    assert_eq!(agents.assert_status(201)["internal"], true);
    let agents = id(&agents.body);
    // Staff files are internal unless said otherwise, on either side of the file.
    let kept = upload_as(&w.a_operator.token, None, "kept.png").await;
    assert_eq!(kept.assert_status(201)["internal"], true);
    let kept = id(&kept.body);
    let report = upload_marked(
        &app,
        &w.a_operator.token,
        &case,
        "false",
        true,
        "report.png",
        &png(300),
    )
    .await;
    assert_eq!(report.assert_status(201)["internal"], false);
    let report = id(&report.body);
    upload_as(&w.client.token, Some("true"), "x.png")
        .await
        .assert_problem(422, "not_allowed");
    upload_as(&w.a_agent.token, Some("false"), "x.png")
        .await
        .assert_problem(422, "not_allowed");
    upload_as(&w.a_operator.token, Some("maybe"), "x.png")
        .await
        .assert_problem(422, "invalid_value");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 3);

    let list = format!("/v1/cases/{case}/attachments");
    let names = async |token: &str| -> Vec<String> {
        let res = app.get(&list, token).await;
        res.assert_status(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["file_name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&w.a_operator.token).await,
        ["report.png", "kept.png", "agent.png"]
    );
    assert_eq!(
        names(&w.a_agent.token).await,
        ["report.png", "kept.png", "agent.png"]
    );
    assert_eq!(names(&w.client.token).await, ["report.png"]);
    let requests = format!("/v1/cases/{case}/requests");
    let asked = app
        .post(
            &requests,
            &w.a_operator.token,
            serde_json::json!({"kind": "document", "prompt": "A photo of the car, please."}),
        )
        .await;
    let answer = format!("{requests}/{}/answer", id(asked.assert_status(201)));
    for hidden in [&agents, &kept] {
        app.post(
            &answer,
            &w.client.token,
            serde_json::json!({"attachment_ids": [hidden]}),
        )
        .await
        .assert_problem(422, "validation_failed");
        let download = format!("/v1/attachments/{hidden}");
        app.get(&download, &w.client.token)
            .await
            .assert_problem(404, "not_found");
        app.call("DELETE", &download, &w.client.token, None, &[])
            .await
            .assert_problem(404, "not_found");
        app.post(
            &format!("/v1/cases/{case}/messages"),
            &w.client.token,
            serde_json::json!({"body": "This one?", "attachment_ids": [hidden]}),
        )
        .await
        .assert_problem(422, "validation_failed");
    }

    // An internal note and a draft carry them: still hidden.
    app.post(
        &format!("/v1/cases/{case}/messages"),
        &w.a_agent.token,
        serde_json::json!({"body": "The car.", "internal": true, "attachment_ids": [agents]}),
    )
    .await
    .assert_status(201);
    let storyline = format!("/v1/cases/{case}/storyline");
    let draft = app
        .post(
            &storyline,
            &w.a_agent.token,
            serde_json::json!({"title": "The car", "attachment_ids": [agents]}),
        )
        .await;
    let draft = id(draft.assert_status(201));
    assert_eq!(names(&w.client.token).await, ["report.png"]);
    let shared = || app.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'share'");
    assert_eq!(shared(), 0);

    // Published, the event shows its file; a message to the client shows its own.
    app.post(
        &format!("{storyline}/{draft}/publish"),
        &w.a_operator.token,
        serde_json::json!({}),
    )
    .await
    .assert_status(200);
    assert_eq!(names(&w.client.token).await, ["report.png", "agent.png"]);
    app.get(&format!("/v1/attachments/{agents}"), &w.client.token)
        .await
        .assert_status(200);
    let res = app
        .post(
            &format!("/v1/cases/{case}/messages"),
            &w.a_operator.token,
            serde_json::json!({"body": "Found this.", "attachment_ids": [kept]}),
        )
        .await;
    res.assert_status(201);
    assert_eq!(
        names(&w.client.token).await,
        ["report.png", "kept.png", "agent.png"]
    );
    assert_eq!(shared(), 2);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'share' AND entity_id IN ('{agents}', '{kept}') \
             AND field = 'internal' AND old_value = 'true' AND new_value = 'false'"
        )),
        2
    );

    // Created published, or edited while published: the event's files are shown as well.
    let shown = upload_as(&w.a_operator.token, None, "shown.png").await;
    let shown = id(shown.assert_status(201));
    app.post(
        &storyline,
        &w.a_operator.token,
        serde_json::json!({"title": "The house", "attachment_ids": [shown]}),
    )
    .await
    .assert_status(201);
    let added = upload_as(&w.a_operator.token, None, "added.png").await;
    let added = id(added.assert_status(201));
    app.patch(
        &format!("{storyline}/{draft}"),
        &w.a_operator.token,
        serde_json::json!({"attachment_ids": [agents, added]}),
    )
    .await
    .assert_status(200);
    assert_eq!(
        names(&w.client.token).await,
        [
            "added.png",
            "shown.png",
            "report.png",
            "kept.png",
            "agent.png"
        ]
    );
    assert_eq!(shared(), 4);

    // Deleting: an agent on the case only their own; the client their own; platform staff any.
    let delete = async |token: &str, attachment: &str| {
        app.call(
            "DELETE",
            &format!("/v1/attachments/{attachment}"),
            token,
            None,
            &[],
        )
        .await
    };
    delete(&w.a_agent.token, &report)
        .await
        .assert_problem(403, "forbidden");
    let mine = id(upload(&app, &w.client.token, &case, "mine.png", &png(300))
        .await
        .assert_status(201));
    let files = stored_files(app.files.path()).len();
    assert_eq!(delete(&w.client.token, &mine).await.status.as_u16(), 204);
    assert_eq!(
        delete(&w.platform.token, &report).await.status.as_u16(),
        204
    );
    assert_eq!(stored_files(app.files.path()).len(), files - 2);
    // What a message or a storyline event carries stays.
    for carried in [&agents, &kept] {
        delete(&w.a_operator.token, carried)
            .await
            .assert_problem(409, "attachment_in_use");
    }
    assert_eq!(
        names(&w.a_operator.token).await,
        ["added.png", "shown.png", "kept.png", "agent.png"]
    );
    // Taken off the event, the agent's file is still carried by the internal note.
    app.patch(
        &format!("{storyline}/{draft}"),
        &w.a_operator.token,
        serde_json::json!({"attachment_ids": []}),
    )
    .await
    .assert_status(200);
    let res = delete(&w.a_operator.token, &agents).await;
    let detail = res.assert_problem(409, "attachment_in_use")["detail"].clone();
    assert!(
        detail.as_str().unwrap().starts_with("a message"),
        "{detail}"
    );
}

/// An upload whose write loses the database's connection cannot tell whether its row
/// committed: its blob stays, listed loose, for housekeeping to remove only if no row took it.
/// (A refused upload's blob goes at once: `a_caller_deactivated_while_the_file_streams_in_…`.)
#[actix_web::test]
async fn an_upload_that_lost_its_database_keeps_its_blob_for_housekeeping() {
    use diesel::connection::SimpleConnection;

    let app = spawn().await;
    if !app._db.is_postgres() {
        eprintln!("SQLite's writer is in the process: its connection is not lost mid-write");
        return;
    }
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let before = stored_files(app.files.path()).len();
    // A change to the case in flight: the upload's write waits for the row, and its backend is
    // ended there, as a network or server failure would end it.
    let mut conn = app.state.pool.get().unwrap();
    conn.batch_execute(&format!(
        "BEGIN; UPDATE cases SET title = title WHERE id = '{case}'"
    ))
    .unwrap();
    let end_the_waiting = async {
        for _ in 0..250 {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
            // The waiting backends are found first (`OFFSET 0` keeps the planner from
            // evaluating the termination on every row), then ended.
            let ended = app.count(
                "SELECT COUNT(*) AS n FROM (SELECT pid FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND datname = current_database() \
                 AND pid <> pg_backend_pid() OFFSET 0) waiting \
                 WHERE pg_terminate_backend(waiting.pid)",
            );
            if ended > 0 {
                return true;
            }
        }
        false
    };
    let image = png(300);
    let sent = upload(&app, &w.client.token, &case, "a.png", &image);
    let (res, ended) = futures_util::future::join(sent, end_the_waiting).await;
    conn.batch_execute("ROLLBACK").unwrap();
    drop(conn);
    assert!(ended, "the upload never waited for the case's row");
    assert!(res.status.is_server_error(), "{}", res.status);
    assert_eq!(stored_files(app.files.path()).len(), before + 1);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM loose_blobs"), 1);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM attachments"), 0);
}

/// A deletion racing a write that cites the file waits for that write, then keeps the file: on
/// PostgreSQL (READ COMMITTED) through row locks, on SQLite through its single writer.
#[actix_web::test]
async fn a_deletion_racing_a_citing_write_waits_for_it_and_keeps_the_file() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let file = id(upload(&app, &w.client.token, &case, "a.png", &png(300))
        .await
        .assert_status(201));
    // A citing write in flight on a connection of its own: it holds the file as the server's
    // citing writes do, and has written its message, not committed yet. The deletion waits for
    // it (on PostgreSQL on the file's lock; SQLite's writer for the write lock).
    let message = format!(
        "INSERT INTO messages (id, case_id, sender_id, sender_role, direction, channel, internal, \
         body, attachment_ids, created_at) VALUES ('{}', '{case}', '{}', 'client', 'inbound', \
         'in_app', FALSE, 'Here it is', '[\"{file}\"]', '2026-12-05 10:00:00')",
        uuid::Uuid::now_v7(),
        w.client.id
    );
    let held = if app._db.is_postgres() {
        format!("SELECT id FROM attachments WHERE id = '{file}' FOR KEY SHARE; {message}")
    } else {
        message
    };
    let path = format!("/v1/attachments/{file}");
    let delete = app.call("DELETE", &path, &w.client.token, None, &[]);
    let res = app.while_held(&held, delete).await;
    res.assert_problem(409, "attachment_in_use");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM attachments WHERE id = '{file}'"
        )),
        1
    );

    // Two deletions of one file at once: one deletes it, the other finds nothing.
    let spare = id(upload(&app, &w.client.token, &case, "b.png", &png(300))
        .await
        .assert_status(201));
    let path = format!("/v1/attachments/{spare}");
    let twice = [0, 1].map(|_| app.call("DELETE", &path, &w.client.token, None, &[]));
    let mut statuses: Vec<u16> = futures_util::future::join_all(twice)
        .await
        .iter()
        .map(|res| res.status.as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [204, 404]);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'delete' AND entity_id = '{spare}'"
        )),
        1
    );
}

/// Messages to the client citing one internal file, sent at once, all go through and show it
/// once: on PostgreSQL each holds the file against deletion while it shares it, and those
/// holds must not wait for each other's update of the same row.
#[actix_web::test]
async fn messages_sharing_one_file_at_once_all_go_through() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let file = id(upload(&app, &w.a_operator.token, &case, "a.png", &png(300))
        .await
        .assert_status(201));
    let path = format!("/v1/cases/{case}/messages");
    let body = serde_json::json!({"body": "See the photo.", "attachment_ids": [file]});
    let sends = (0..8).map(|_| app.post(&path, &w.a_operator.token, body.clone()));
    for res in futures_util::future::join_all(sends).await {
        res.assert_status(201);
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'share' AND entity_id = '{file}'"
        )),
        1
    );
    app.get(&format!("/v1/attachments/{file}"), &w.client.token)
        .await
        .assert_status(200);
}

/// An agent changes a case's files only while it is in progress, as they write nothing else
/// while it is suspended; the agency still does.
#[actix_web::test]
async fn an_agent_changes_no_files_while_the_case_is_suspended() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    crate::world::start_case(&app, &w, &case).await;
    crate::world::assign_agent(&app, &w, &case).await;
    let own = id(upload(&app, &w.a_agent.token, &case, "own.png", &png(300))
        .await
        .assert_status(201));
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    let before = app.rows_in(&["attachments", "audit_log"]);
    let stored = stored_files(app.files.path()).len();
    let res = upload(&app, &w.a_agent.token, &case, "late.png", &png(300)).await;
    let detail = res.assert_problem(409, "wrong_state")["detail"].clone();
    assert!(detail.as_str().unwrap().contains("in_progress"), "{detail}");
    let delete = format!("/v1/attachments/{own}");
    app.call("DELETE", &delete, &w.a_agent.token, None, &[])
        .await
        .assert_problem(409, "wrong_state");
    assert_eq!(app.rows_in(&["attachments", "audit_log"]), before);
    assert_eq!(stored_files(app.files.path()).len(), stored);
    // The agency still adds files; once resumed, the agent deletes their own.
    upload(&app, &w.a_operator.token, &case, "agency.png", &png(300))
        .await
        .assert_status(201);
    act(&app, &w.a_operator.token, &case, "resume")
        .await
        .assert_status(200);
    let res = app
        .call("DELETE", &delete, &w.a_agent.token, None, &[])
        .await;
    assert_eq!(res.status.as_u16(), 204);
}

/// Bytes a dropped request left in storage (a deletion that committed, the removal after it
/// never run) are listed as loose and go at the next housekeeping; an upload still within its
/// window is left alone. A file uploaded or deleted through the API leaves nothing listed.
#[actix_web::test]
async fn blobs_a_dropped_request_left_behind_are_swept() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let mut files = Vec::new();
    for name in ["kept.png", "deleted.png", "dropped.png"] {
        let res = upload(&app, &w.client.token, &case, name, &png(20_000)).await;
        files.push(res.assert_status(201).clone());
    }
    let loose = || app.count("SELECT COUNT(*) AS n FROM loose_blobs");
    assert_eq!((loose(), stored_files(app.files.path()).len()), (0, 3));
    let deleted = format!("/v1/attachments/{}", id(&files[1]));
    let res = app
        .call("DELETE", &deleted, &w.client.token, None, &[])
        .await;
    res.assert_status(204);
    assert_eq!((loose(), stored_files(app.files.path()).len()), (0, 2));

    // The deletion's write as it commits, without the removal after it; an upload streaming in.
    let dropped = id(&files[2]);
    app.sql(&format!(
        "DELETE FROM attachments WHERE id = '{dropped}'; \
         INSERT INTO loose_blobs (storage_key, due_at) VALUES \
         ('attachments/{dropped}', '2026-01-01 00:00:00'), \
         ('attachments/streaming', '2999-01-01 00:00:00')"
    ));
    dossier::housekeeping::sweep(&app.state).await.unwrap();
    assert_eq!((loose(), stored_files(app.files.path()).len()), (1, 1));
    let still = "SELECT COUNT(*) AS n FROM loose_blobs WHERE storage_key = 'attachments/streaming'";
    assert_eq!(app.count(still), 1);
    let download = files[0]["download_url"].as_str().unwrap();
    app.get(download, &w.a_operator.token)
        .await
        .assert_status(200);

    // A whole round of blobs storage will not remove (here directories, which it cannot
    // delete as files) is due again later, and holds back none behind it.
    let root = app.files.path();
    let mut stuck = Vec::new();
    for i in 0..100 {
        std::fs::create_dir_all(root.join(format!("stuck-{i}/inside"))).unwrap();
        stuck.push(format!("('stuck-{i}', '2026-01-01 00:00:00')"));
    }
    // A copy of the kept file's bytes, loose and due after all of them.
    let kept_file = &stored_files(root)[0];
    let loose_copy = kept_file.with_extension("copy");
    std::fs::copy(kept_file, &loose_copy).unwrap();
    let key = format!("attachments/{}.copy", id(&files[0]));
    app.sql(&format!(
        "INSERT INTO loose_blobs (storage_key, due_at) VALUES {}, ('{key}', '2026-01-02 00:00:00')",
        stuck.join(", ")
    ));
    dossier::housekeeping::sweep(&app.state).await.unwrap();
    let copy = "SELECT COUNT(*) AS n FROM loose_blobs WHERE storage_key LIKE '%.copy'";
    assert_eq!(app.count(copy), 0);
    assert!(!loose_copy.exists());
    let postponed = format!(
        "SELECT COUNT(*) AS n FROM loose_blobs WHERE storage_key LIKE 'stuck-%' AND due_at > '{}'",
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")
    );
    assert_eq!(app.count(&postponed), 100);
}
