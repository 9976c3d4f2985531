//! A support ticket's files: uploaded by either side while the ticket is worked, seen by both
//! sides only, carried by its messages and then kept, deleted by their uploader or the platform.

use serde_json::{Value, json};

use crate::attachments::{png, stored_files, upload_keyed_to, upload_marked_to, upload_to};
use crate::helpers::{AppService, TestApp, spawn};
use crate::world::{World, id};

async fn open<S>(app: &TestApp<S>, token: &str, subject: &str) -> String
where
    S: AppService,
{
    let body = json!({"subject": subject, "description": "See the attached receipt."});
    id(app
        .post("/v1/tickets", token, body)
        .await
        .assert_status(201))
}

/// The names in a page of files, newest first.
fn names(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file_name"].as_str().unwrap())
        .collect()
}

#[actix_web::test]
async fn a_tickets_files_are_its_two_sides_and_stay_once_a_message_carries_them() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let ticket = open(&app, &w.client.token, "Refund").await;
    let files = format!("/v1/tickets/{ticket}/attachments");

    // The client uploads a receipt: stored whole, typed by its bytes, with its download URL.
    let bytes = png(12_000);
    let res = upload_to(&app, &w.client.token, &files, "../receipt.png", &bytes).await;
    let receipt = res.assert_status(201).clone();
    assert_eq!(receipt["ticket_id"], ticket.as_str());
    assert_eq!(receipt["file_name"], "receipt.png");
    assert_eq!(receipt["content_type"], "image/png");
    assert_eq!(receipt["size_bytes"], 12_000);
    assert_eq!(receipt["uploader_id"], w.client.id.as_str());
    use sha2::Digest;
    assert_eq!(
        receipt["sha256"],
        format!("{:x}", sha2::Sha256::digest(&bytes))
    );
    let download = format!("{files}/{}", id(&receipt));
    assert_eq!(receipt["download_url"], download.as_str());
    assert_eq!(res.header("location"), Some(download.as_str()));
    assert_eq!(stored_files(app.files.path()).len(), 1);

    // Platform staff download the very bytes, with the safe headers and the hash as ETag.
    let (status, headers, raw) = app.bytes(&download, &w.platform_staff.token).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(raw, bytes);
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"receipt.png\""
    );
    let etag = header("etag");
    assert_eq!(etag, format!("\"{}\"", receipt["sha256"].as_str().unwrap()));
    let res = app
        .call(
            "GET",
            &download,
            &w.client.token,
            None,
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!(res.status.as_u16(), 304);

    // Platform staff answer with a file; a ticket's files have no internal side.
    let res = upload_to(
        &app,
        &w.platform_staff.token,
        &files,
        "policy.pdf",
        b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n",
    )
    .await;
    let policy = res.assert_status(201)["id"].as_str().unwrap().to_owned();
    let refused = upload_marked_to(
        &app,
        &w.platform_staff.token,
        &files,
        "true",
        true,
        "secret.txt",
        b"hidden?",
    )
    .await;
    refused.assert_problem(422, "not_allowed");
    assert_eq!(refused.body["errors"][0]["pointer"], "/internal");
    assert_eq!(
        stored_files(app.files.path()).len(),
        2,
        "the streamed file aborted"
    );
    for token in [&w.client.token, &w.platform.token] {
        let list = app.get(&files, token).await;
        assert_eq!(
            names(list.assert_status(200)),
            ["policy.pdf", "receipt.png"]
        );
    }
    let page = app.get(&format!("{files}?limit=1"), &w.client.token).await;
    let cursor = page.assert_status(200)["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!("{files}?limit=1&cursor={cursor}"), &w.client.token)
        .await;
    assert_eq!(names(next.assert_status(200)), ["receipt.png"]);
    assert!(next.body["next_cursor"].is_null());

    // A message carries files of this ticket only; a refused one writes nothing.
    let messages = format!("/v1/tickets/{ticket}/messages");
    let other = open(&app, &w.client.token, "Another").await;
    let elsewhere = upload_to(
        &app,
        &w.client.token,
        &format!("/v1/tickets/{other}/attachments"),
        "other.txt",
        b"another ticket's file",
    )
    .await;
    let elsewhere = elsewhere.assert_status(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = app.get(&files, &w.client.token).await;
    assert_eq!(
        names(list.assert_status(200)),
        ["policy.pdf", "receipt.png"]
    );
    let before = app.rows_in(&["ticket_messages", "audit_log", "notifications"]);
    for foreign in [elsewhere.as_str(), "0193a6fe-8888-7c2d-8e3f-405162738495"] {
        let res = app
            .post(
                &messages,
                &w.platform_staff.token,
                json!({"body": "Our policy.", "attachment_ids": [policy, foreign]}),
            )
            .await;
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"].as_array().unwrap().len(), 1);
        assert_eq!(problem["errors"][0]["code"], "invalid_attachment");
        assert_eq!(problem["errors"][0]["pointer"], "/attachment_ids/1");
    }
    let many = vec![policy.clone(); 21];
    let res = app
        .post(
            &messages,
            &w.platform_staff.token,
            json!({"body": "Our policy.", "attachment_ids": many}),
        )
        .await;
    let problem = res.assert_problem(422, "validation_failed");
    assert_eq!(problem["errors"][0]["code"], "length");
    assert_eq!(problem["errors"][0]["detail"], "items must be at most 20");
    assert_eq!(
        app.rows_in(&["ticket_messages", "audit_log", "notifications"]),
        before
    );
    let res = app
        .post(
            &messages,
            &w.platform_staff.token,
            json!({"body": "Our policy.", "attachment_ids": [policy, policy]}),
        )
        .await;
    assert_eq!(res.assert_status(201)["attachment_ids"], json!([policy]));
    let list = app.get(&messages, &w.client.token).await;
    assert_eq!(
        list.assert_status(200)["items"][0]["attachment_ids"],
        json!([policy])
    );

    // The file a message carries stays; the other one goes, with its blob.
    let cited = format!("{files}/{policy}");
    app.call("DELETE", &cited, &w.platform_staff.token, None, &[])
        .await
        .assert_problem(409, "attachment_in_use");
    assert_eq!(app.bytes(&cited, &w.client.token).await.0.as_u16(), 200);
    // The requester's side deletes its own files only.
    app.call("DELETE", &cited, &w.client.token, None, &[])
        .await
        .assert_problem(403, "forbidden");
    let res = app
        .call("DELETE", &download, &w.platform_staff.token, None, &[])
        .await;
    assert_eq!(res.status.as_u16(), 204);
    app.get(&download, &w.client.token)
        .await
        .assert_problem(404, "not_found");
    app.call("DELETE", &download, &w.platform_staff.token, None, &[])
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        stored_files(app.files.path()).len(),
        2,
        "the pdf and the other"
    );

    // Each upload and the deletion are in the ticket's trail, by whoever did them.
    let trail = |action: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'ticket' AND entity_id = '{ticket}' \
             AND action = '{action}'"
        ))
    };
    // attachment id, file name, type and SHA-256 for two uploads; id and name for a deletion
    assert_eq!(trail("upload_attachment"), 8);
    assert_eq!(trail("delete_attachment"), 2);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{ticket}' \
             AND action = 'delete_attachment' AND field = 'attachment_id' \
             AND old_value = '{}' AND new_value IS NULL AND actor_id = '{}'",
            id(&receipt),
            w.platform_staff.id
        )),
        1
    );

    // Once resolved the files no longer change, but still download, closed too.
    let kept = format!("/v1/tickets/{other}/attachments/{elsewhere}");
    for resolved in [&ticket, &other] {
        let res = app
            .post(
                &format!("/v1/tickets/{resolved}/transitions"),
                &w.platform_staff.token,
                json!({"action": "resolve", "resolution_type": "answered", "resolution": "Refunded."}),
            )
            .await;
        res.assert_status(200);
    }
    upload_to(&app, &w.client.token, &files, "late.txt", b"too late")
        .await
        .assert_problem(409, "wrong_state");
    app.call("DELETE", &kept, &w.client.token, None, &[])
        .await
        .assert_problem(409, "wrong_state");
    app.post(
        &format!("/v1/tickets/{other}/transitions"),
        &w.client.token,
        json!({"action": "close"}),
    )
    .await
    .assert_status(200);
    assert_eq!(app.bytes(&kept, &w.client.token).await.0.as_u16(), 200);
    assert_eq!(app.bytes(&cited, &w.client.token).await.0.as_u16(), 200);
    assert_eq!(stored_files(app.files.path()).len(), 2);
}

#[actix_web::test]
async fn a_tickets_files_are_hidden_from_everyone_off_the_ticket() {
    let app = spawn().await;
    let w = World::new(&app).await;
    // An agency's ticket: its staff share it, the uploader's colleague may not delete.
    let ticket = open(&app, &w.a_operator.token, "Payout").await;
    let files = format!("/v1/tickets/{ticket}/attachments");
    let res = upload_to(
        &app,
        &w.a_operator.token,
        &files,
        "payout.txt",
        b"IBAN statement",
    )
    .await;
    let file = format!("{files}/{}", id(res.assert_status(201)));
    let list = app.get(&files, &w.a_admin.token).await;
    assert_eq!(names(list.assert_status(200)), ["payout.txt"]);
    assert_eq!(app.bytes(&file, &w.a_admin.token).await.0.as_u16(), 200);
    app.call("DELETE", &file, &w.a_admin.token, None, &[])
        .await
        .assert_problem(403, "forbidden");

    // Another agency, the clients: 404 on every route, nothing changes.
    let own = open(&app, &w.b_operator.token, "Elsewhere").await;
    let before = app.rows_in(&["ticket_attachments", "audit_log"]);
    for token in [&w.b_admin.token, &w.b_operator.token, &w.client.token] {
        app.get(&files, token)
            .await
            .assert_problem(404, "not_found");
        app.get(&file, token).await.assert_problem(404, "not_found");
        upload_to(&app, token, &files, "x.txt", b"hello")
            .await
            .assert_problem(404, "not_found");
        app.call("DELETE", &file, token, None, &[])
            .await
            .assert_problem(404, "not_found");
    }
    // Agents have no tickets.
    app.get(&files, &w.a_agent.token)
        .await
        .assert_problem(403, "forbidden");
    upload_to(&app, &w.a_agent.token, &files, "x.txt", b"hello")
        .await
        .assert_problem(403, "forbidden");
    app.get(&file, &w.a_agent.token)
        .await
        .assert_problem(403, "forbidden");
    app.call("DELETE", &file, &w.a_agent.token, None, &[])
        .await
        .assert_problem(403, "forbidden");
    // A file is found through its own ticket only.
    let (_, file_id) = file.rsplit_once('/').unwrap();
    let astray = format!("/v1/tickets/{own}/attachments/{file_id}");
    app.get(&astray, &w.b_operator.token)
        .await
        .assert_problem(404, "not_found");
    app.call("DELETE", &astray, &w.b_operator.token, None, &[])
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.rows_in(&["ticket_attachments", "audit_log"]), before);
    assert_eq!(stored_files(app.files.path()).len(), 1);

    // The uploader deletes their own.
    let res = app
        .call("DELETE", &file, &w.a_operator.token, None, &[])
        .await;
    assert_eq!(res.status.as_u16(), 204);
    assert!(stored_files(app.files.path()).is_empty());
}

/// A deletion racing a message that cites the file waits for the message, then keeps the file:
/// on PostgreSQL (READ COMMITTED) through the file's row lock, on SQLite through its single
/// writer. Two deletions at once: one deletes, the other finds nothing.
#[actix_web::test]
async fn a_deletion_racing_a_citing_message_waits_for_it_and_keeps_the_file() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let ticket = open(&app, &w.client.token, "Refund").await;
    let files = format!("/v1/tickets/{ticket}/attachments");
    let file = id(upload_to(&app, &w.client.token, &files, "a.png", &png(300))
        .await
        .assert_status(201));
    // The message in flight, as the server writes one: the file held KEY SHARE, the ticket's
    // row updated, the message written; not committed yet.
    let message = format!(
        "UPDATE tickets SET version = version + 1 WHERE id = '{ticket}'; \
         INSERT INTO ticket_messages (id, ticket_id, author_id, author_role, body, created_at, \
         attachment_ids) VALUES ('{}', '{ticket}', '{}', 'client', 'Here it is', \
         '2026-12-06 10:00:00', '[\"{file}\"]')",
        uuid::Uuid::now_v7(),
        w.client.id
    );
    let held = if app._db.is_postgres() {
        format!("SELECT id FROM ticket_attachments WHERE id = '{file}' FOR KEY SHARE; {message}")
    } else {
        message
    };
    let path = format!("{files}/{file}");
    let delete = app.call("DELETE", &path, &w.client.token, None, &[]);
    let res = app.while_held(&held, delete).await;
    res.assert_problem(409, "attachment_in_use");
    assert_eq!(app.rows_in(&["ticket_attachments"]), [1]);
    assert_eq!(stored_files(app.files.path()).len(), 1);

    let spare = id(upload_to(&app, &w.client.token, &files, "b.png", &png(300))
        .await
        .assert_status(201));
    let path = format!("{files}/{spare}");
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
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'delete_attachment' \
             AND field = 'attachment_id' AND old_value = '{spare}'"
        )),
        1
    );
}

/// A ticket's upload takes `Idempotency-Key` as a case's does: the retry is the first upload
/// replayed, keeping no row, audit entry or blob of its own; another file under the key is 422.
#[actix_web::test]
async fn a_retried_ticket_upload_is_replayed_not_stored_twice() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let ticket = open(&app, &w.client.token, "Refund").await;
    let files = format!("/v1/tickets/{ticket}/attachments");
    let written = || {
        let rows = app.rows_in(&["ticket_attachments", "audit_log", "idempotency_keys"]);
        (rows, stored_files(app.files.path()).len())
    };
    let (token, bytes) = (w.client.token.as_str(), png(3_000));
    let first = upload_keyed_to(&app, token, &files, "receipt-1", "receipt.png", &bytes).await;
    first.assert_status(201);
    let after = written();
    assert_eq!(after.1, 1);
    let again = upload_keyed_to(&app, token, &files, "receipt-1", "receipt.png", &bytes).await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(written(), after);
    upload_keyed_to(&app, token, &files, "receipt-1", "receipt.png", &png(3_001))
        .await
        .assert_problem(422, "idempotency_key_reused");
    assert_eq!(written(), after);
    // Another client under the same key and body is refused the ticket they cannot see, and
    // keeps nothing.
    let other = w.client2.token.as_str();
    upload_keyed_to(&app, other, &files, "receipt-1", "receipt.png", &bytes)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(written(), after);
    // Once the ticket is resolved, the retry is refused as a new upload would be.
    app.post(
        &format!("/v1/tickets/{ticket}/transitions"),
        &w.platform.token,
        json!({"action": "resolve", "resolution_type": "answered", "resolution": "Refunded."}),
    )
    .await
    .assert_status(200);
    let resolved = written();
    upload_keyed_to(&app, token, &files, "receipt-1", "receipt.png", &bytes)
        .await
        .assert_problem(409, "wrong_state");
    assert_eq!(written(), resolved);
}
