//! The conversation: who writes what, who reads what, read marks, filters, earlier cases.

use serde_json::{Value, json};

use crate::helpers::spawn;
use crate::world::{World, act, assign_agent, buy, close, id, post_message, start_case};

fn bodies(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn each_side_writes_its_own_kind_and_reads_only_its_part() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}/messages");
    let res = app
        .post(
            &p,
            &w.client.token,
            json!({"body": "Hello, when do you start?"}),
        )
        .await;
    let first = res.assert_status(201).clone();
    assert_eq!(first["direction"], "inbound");
    assert_eq!(first["channel"], "in_app");
    assert_eq!(first["sender_role"], "client");
    app.post(
        &p,
        &w.a_operator.token,
        json!({"body": "Tomorrow morning."}),
    )
    .await
    .assert_status(201);
    let res = app
        .post(&p, &w.a_operator.token, json!({"body": "Client phoned about the car.", "channel": "phone", "direction": "inbound"}))
        .await;
    assert_eq!(res.assert_status(201)["direction"], "inbound");
    let note = app
        .post(
            &p,
            &w.a_operator.token,
            json!({"body": "Careful: the client is nervous.", "internal": true}),
        )
        .await;
    let note = note.assert_status(201).clone();
    assert_eq!(note["direction"], "internal");

    // Wrong kinds from each side.
    app.post(&p, &w.client.token, json!({"body": "x", "internal": true}))
        .await
        .assert_problem(403, "forbidden");
    app.post(
        &p,
        &w.client.token,
        json!({"body": "x", "channel": "phone"}),
    )
    .await
    .assert_problem(422, "not_allowed");
    app.post(
        &p,
        &w.a_operator.token,
        json!({"body": "x", "direction": "inbound"}),
    )
    .await
    .assert_problem(422, "not_allowed");
    app.post(&p, &w.platform.token, json!({"body": "x"}))
        .await
        .assert_problem(403, "forbidden");
    app.post(&p, &w.client.token, json!({"body": "   "}))
        .await
        .assert_problem(422, "validation_failed");
    let marks = app.rows_in(&["message_reads"]);
    for token in [&w.client2.token, &w.b_operator.token, &w.a_agent.token] {
        app.post(&p, token, json!({"body": "x", "internal": true}))
            .await
            .assert_problem(404, "not_found");
        app.get(&p, token).await.assert_problem(404, "not_found");
        app.post(&format!("{p}/read"), token, json!({"up_to": first["id"]}))
            .await
            .assert_problem(404, "not_found");
    }
    assert_eq!(app.rows_in(&["message_reads"]), marks);

    // Agents on the case, in progress: internal notes only, and they read only those.
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    app.post(&p, &w.a_agent.token, json!({"body": "x"}))
        .await
        .assert_problem(403, "forbidden");
    app.post(
        &p,
        &w.a_agent.token,
        json!({"body": "Subject left at 14:00.", "internal": true}),
    )
    .await
    .assert_status(201);
    let res = app.get(&format!("{p}?order=asc"), &w.a_agent.token).await;
    assert_eq!(
        bodies(res.assert_status(200)),
        ["Careful: the client is nervous.", "Subject left at 14:00."]
    );
    // The client never sees internal notes, on any route.
    let res = app
        .get(&format!("{p}?order=asc&limit=100"), &w.client.token)
        .await;
    assert_eq!(
        bodies(res.assert_status(200)),
        [
            "Hello, when do you start?",
            "Tomorrow morning.",
            "Client phoned about the car."
        ]
    );
    app.post(
        &format!("{p}/read"),
        &w.client.token,
        json!({"up_to": note["id"]}),
    )
    .await
    .assert_problem(404, "not_found");
    let res = app
        .get(&format!("{p}?include=earlier_cases"), &w.client.token)
        .await;
    assert!(
        res.assert_status(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["internal"] == false)
    );
    // The agency reads everything.
    let res = app
        .get(&format!("{p}?limit=100"), &w.a_operator.token)
        .await;
    assert_eq!(res.assert_status(200)["items"].as_array().unwrap().len(), 5);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND entity = 'message'"
        )),
        5 * 2
    );

    // Nobody writes once the case is over.
    close(&app, &w, &case).await;
    for (token, internal) in [
        (&w.client.token, false),
        (&w.a_operator.token, false),
        (&w.a_operator.token, true),
    ] {
        app.post(
            &p,
            token,
            json!({"body": "After the end", "internal": internal}),
        )
        .await
        .assert_problem(409, "wrong_state");
    }
    // Nor on a cancelled case.
    let cancelled = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    app.post(
        &format!("/v1/cases/{cancelled}/transitions"),
        &w.client.token,
        json!({"action": "cancel", "reason": "Changed my mind."}),
    )
    .await
    .assert_status(200);
    let cp = format!("/v1/cases/{cancelled}/messages");
    let before = app.rows_in(&["messages"]);
    for token in [&w.client.token, &w.a_operator.token] {
        app.post(&cp, token, json!({"body": "Still there?"}))
            .await
            .assert_problem(409, "wrong_state");
    }
    assert_eq!(app.rows_in(&["messages"]), before);
    // Before payment the client cannot write; the agency can.
    let unpaid = id(&buy(&app, &w.client.token, &w.service_a, "bank_transfer").await);
    let up = format!("/v1/cases/{unpaid}/messages");
    app.post(&up, &w.client.token, json!({"body": "Paid yet?"}))
        .await
        .assert_problem(409, "wrong_state");
    app.post(
        &up,
        &w.a_operator.token,
        json!({"body": "Waiting for your transfer."}),
    )
    .await
    .assert_status(201);
}

/// Each role counts unread only the part of the conversation it reads, from the other side:
/// the card (one statement per role), the list and a read mark agree.
#[actix_web::test]
async fn unread_counts_follow_each_roles_part_of_the_conversation() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    let p = format!("/v1/cases/{case}/messages");
    let mut last = String::new();
    for (token, body) in [
        (&w.client.token, json!({"body": "Any news?"})),
        (
            &w.a_agent.token,
            json!({"body": "Subject left at 14:00.", "internal": true}),
        ),
        (&w.a_operator.token, json!({"body": "Soon."})),
        (
            &w.a_operator.token,
            json!({"body": "Check the car park.", "internal": true}),
        ),
    ] {
        last = id(app.post(&p, token, body).await.assert_status(201));
    }
    let unread = async |token: &str| {
        app.get(&format!("/v1/cases/{case}"), token)
            .await
            .assert_status(200)["unread_messages"]
            .as_i64()
            .unwrap()
    };
    // Writing marks the writer's own message read. The client: the operator's public reply.
    // Staff who read nothing: the client's question and the agent's note. The agent: the
    // operator's later note (public messages are not theirs).
    assert_eq!(unread(&w.client.token).await, 1);
    assert_eq!(unread(&w.a_admin.token).await, 2);
    assert_eq!(unread(&w.platform.token).await, 2);
    assert_eq!(unread(&w.a_agent.token).await, 1);
    // The client's identity, read with the case, is shown to staff only.
    let card_path = format!("/v1/cases/{case}");
    let client_of = async |token: &str| app.get(&card_path, token).await.body["client"].clone();
    assert_eq!(client_of(&w.a_agent.token).await, Value::Null);
    assert_eq!(client_of(&w.client.token).await, Value::Null);
    assert_eq!(
        client_of(&w.a_admin.token).await["id"],
        w.client.id.as_str()
    );
    let list = app.get("/v1/cases", &w.a_admin.token).await;
    assert_eq!(list.assert_status(200)["items"][0]["unread_messages"], 2);
    let res = app
        .post(
            &format!("{p}/read"),
            &w.a_admin.token,
            json!({"up_to": last}),
        )
        .await;
    assert_eq!(res.assert_status(200)["unread"], 0);
    assert_eq!(unread(&w.a_admin.token).await, 0);
}

/// Platform staff read conversations but answer through tickets: their read mark is not the
/// agency's, which the client sees as `read_by_agency`.
#[actix_web::test]
async fn only_an_agency_members_mark_is_the_agencys_read_status() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}/messages");
    let sent = app
        .post(&p, &w.client.token, json!({"body": "Any news?"}))
        .await;
    let message = id(sent.assert_status(201));
    for (token, read) in [(&w.platform.token, false), (&w.a_operator.token, true)] {
        app.post(&format!("{p}/read"), token, json!({"up_to": message}))
            .await
            .assert_status(200);
        let res = app.get(&p, &w.client.token).await;
        assert_eq!(res.assert_status(200)["items"][0]["read_by_agency"], read);
    }
}

#[actix_web::test]
async fn unread_counts_read_marks_filters_and_paging_both_ways() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let earlier = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    post_message(&app, &w.client.token, &earlier, "Old question").await;
    let p = format!("/v1/cases/{case}/messages");
    let mut ids = Vec::new();
    for i in 0..5 {
        let (token, body) = if i % 2 == 0 {
            (&w.a_operator.token, json!({"body": format!("agency {i}")}))
        } else {
            (&w.client.token, json!({"body": format!("client {i}")}))
        };
        ids.push(id(app.post(&p, token, body).await.assert_status(201)));
    }
    app.post(
        &p,
        &w.a_operator.token,
        json!({"body": "called", "channel": "phone"}),
    )
    .await
    .assert_status(201);
    // Writing marks the writer's own message read: the client has read up to "client 3", so two
    // agency messages are unread; the agency admin, who read nothing, has the client's two.
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(card.assert_status(200)["unread_messages"], 2);
    // The list counts each case of the page on its own: the earlier case has the client's
    // one message.
    let unread_listed = |body: &Value| -> Vec<(String, i64)> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let id = c["id"].as_str().unwrap().to_owned();
                (id, c["unread_messages"].as_i64().unwrap())
            })
            .collect()
    };
    let list = app.get("/v1/cases", &w.a_admin.token).await;
    assert_eq!(
        unread_listed(list.assert_status(200)),
        [(case.clone(), 2), (earlier.clone(), 1)]
    );
    // The card counts its own case's messages only ("Old question" is the earlier case's).
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_admin.token)
        .await;
    assert_eq!(card.assert_status(200)["unread_messages"], 2);
    // Marking read moves forward only.
    let res = app
        .post(
            &format!("{p}/read"),
            &w.client.token,
            json!({"up_to": ids[0]}),
        )
        .await;
    assert_eq!(res.assert_status(200)["last_read_id"], ids[3].as_str());
    assert_eq!(res.body["unread"], 2);
    let res = app
        .post(
            &format!("{p}/read"),
            &w.client.token,
            json!({"up_to": ids[4]}),
        )
        .await;
    assert_eq!(res.assert_status(200)["unread"], 1);
    assert_eq!(res.body["last_read_id"], ids[4].as_str());
    // The list starts each case at the reader's own mark on it.
    let list = app.get("/v1/cases", &w.client.token).await;
    assert_eq!(
        unread_listed(list.assert_status(200)),
        [(case.clone(), 1), (earlier.clone(), 0)]
    );
    let res = app
        .get(&format!("{p}?order=asc"), &w.a_operator.token)
        .await;
    let flags: Vec<bool> = res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["read_by_client"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, [true, true, true, true, true, false]);
    // Filters and directions.
    assert_eq!(
        bodies(
            app.get(&format!("{p}?channel=phone"), &w.a_operator.token)
                .await
                .assert_status(200)
        ),
        ["called"]
    );
    // Several channels (API.md: the parameter repeats), whichever comes first.
    for channels in ["channel=phone&channel=email", "channel=email&channel=phone"] {
        let res = app
            .get(&format!("{p}?{channels}"), &w.a_operator.token)
            .await;
        assert_eq!(bodies(res.assert_status(200)), ["called"], "{channels}");
    }
    let mut listed = Vec::new();
    for query in [
        "channel=phone",
        "channel=in_app",
        "channel=phone&channel=in_app",
    ] {
        let res = app.get(&format!("{p}?{query}"), &w.a_operator.token).await;
        listed.push(bodies(res.assert_status(200)).len());
    }
    assert!(listed[1] > 0);
    assert_eq!(listed[2], listed[0] + listed[1]);
    assert!(
        bodies(
            app.get(&format!("{p}?to=2000-01-01T00:00:00Z"), &w.a_operator.token)
                .await
                .assert_status(200)
        )
        .is_empty()
    );
    // Bounds finer than the microseconds stored keep the same rows on both engines: a time
    // is before `to` (and not from `from` on) exactly as written.
    app.sql(&format!(
        "UPDATE messages SET created_at = '2001-02-03 04:05:06.123456' WHERE id = '{}'",
        ids[0]
    ));
    let within = |from: &str, to: &str| {
        let path = format!("{p}?from=2001-02-03T04:05:{from}Z&to=2001-02-03T04:05:{to}Z");
        let (app, token) = (&app, w.a_operator.token.clone());
        async move { app.listed(&path, &token).await }
    };
    assert_eq!(within("06.123456", "06.1234561").await, 1);
    assert_eq!(within("06", "06.1234565").await, 1);
    assert_eq!(within("06.1234561", "07").await, 0);
    assert_eq!(within("06", "06.123456").await, 0);
    assert_eq!(
        bodies(
            app.get(
                &format!("{p}?after={}&limit=2", ids[1]),
                &w.a_operator.token
            )
            .await
            .assert_status(200)
        ),
        ["agency 2", "client 3"]
    );
    assert_eq!(
        bodies(
            app.get(&format!("{p}?before={}", ids[2]), &w.a_operator.token)
                .await
                .assert_status(200)
        ),
        ["client 1", "agency 0"]
    );
    app.get(
        &format!("{p}?before={}&after={}", ids[2], ids[1]),
        &w.a_operator.token,
    )
    .await
    .assert_problem(400, "invalid_query");
    // Past the year 9999, as written or once rounded up to the microsecond.
    for late in [
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59.9999995Z",
        "%2B262142-12-31T23:59:59.9999991Z",
    ] {
        app.get(&format!("{p}?to={late}"), &w.a_operator.token)
            .await
            .assert_problem(400, "invalid_query");
    }
    // Newest first, page by page, no repeats.
    let mut seen = Vec::new();
    let mut path = format!("{p}?limit=4");
    loop {
        let body = app
            .get(&path, &w.a_operator.token)
            .await
            .assert_status(200)
            .clone();
        seen.extend(bodies(&body));
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("{p}?limit=4&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "called", "agency 4", "client 3", "agency 2", "client 1", "agency 0"
        ]
    );
    // Earlier cases: the client's other conversation, each message marked with its case.
    let res = app
        .get(
            &format!("{p}?include=earlier_cases&order=asc"),
            &w.a_operator.token,
        )
        .await;
    let items = res.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(items[0]["body"], "Old question");
    assert_eq!(items[0]["case_id"], earlier.as_str());
    assert!(
        items[0]["case_number"]
            .as_str()
            .unwrap()
            .ends_with("000001")
    );
    assert_eq!(items.len(), 7);
    // Agency B, with a case of the same client, does not see agency A's conversation.
    let theirs = id(&buy(&app, &w.client.token, &w.service_b, "card").await);
    let res = app
        .get(
            &format!("/v1/cases/{theirs}/messages?include=earlier_cases"),
            &w.b_operator.token,
        )
        .await;
    assert!(
        res.assert_status(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[actix_web::test]
async fn one_user_posting_and_reading_at_once_gets_no_error_and_a_mark_that_only_moves_forward() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let path = format!("/v1/cases/{case}/messages");
    // The sender's own read mark is written with each message: these race on that row.
    let posts = futures_util::future::join_all((0..8).map(|i| {
        app.post(
            &path,
            &w.a_operator.token,
            json!({ "body": format!("Update {i}") }),
        )
    }))
    .await;
    for res in &posts {
        res.assert_status(201);
    }
    let newest = posts
        .iter()
        .map(|r| r.body["id"].as_str().unwrap().to_owned())
        .max()
        .unwrap();
    let mark = format!(
        "SELECT COUNT(*) AS n FROM message_reads WHERE case_id = '{case}' AND user_id = '{}' \
         AND last_read_id = '{newest}'",
        w.a_operator.id
    );
    assert_eq!(app.count(&mark), 1);
    let rows = format!("SELECT COUNT(*) AS n FROM message_reads WHERE case_id = '{case}'");
    assert_eq!(app.count(&rows), 1);
}

/// The busiest writes (a message, a transition) look their caller up inside their own write
/// transaction: a caller deactivated since their token was issued gets 401 and writes nothing.
#[actix_web::test]
async fn a_caller_deactivated_after_login_writes_nothing() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let messages = format!("/v1/cases/{case}/messages");
    app.post(&messages, &w.client.token, json!({"body": "Any news?"}))
        .await
        .assert_status(201);
    let written = || {
        ["messages", "audit_log", "notifications"].map(|table| {
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE case_id = '{case}'"
            ))
        })
    };
    let before = written();
    for person in [&w.client, &w.a_operator] {
        app.deactivate_user(&w.platform.token, &person.id).await;
    }
    app.post(&messages, &w.client.token, json!({"body": "Hello again?"}))
        .await
        .assert_problem(401, "invalid_token");
    app.post(&messages, &w.a_operator.token, json!({"body": "Tomorrow."}))
        .await
        .assert_problem(401, "invalid_token");
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_problem(401, "invalid_token");
    // The lookup comes first in the write: 401, not the 404, 403 or 412 that the same request
    // from an active caller would get (no such case, a role that may never act, a stale version).
    let nowhere = uuid::Uuid::now_v7();
    app.post(
        &format!("/v1/cases/{nowhere}/messages"),
        &w.client.token,
        json!({"body": "Anyone?"}),
    )
    .await
    .assert_problem(401, "invalid_token");
    act(&app, &w.a_operator.token, &nowhere.to_string(), "suspend")
        .await
        .assert_problem(401, "invalid_token");
    act(&app, &w.client.token, &case, "suspend")
        .await
        .assert_problem(401, "invalid_token");
    app.call(
        "POST",
        &format!("/v1/cases/{case}/transitions"),
        &w.a_operator.token,
        Some(json!({"action": "suspend", "reason": "because"})),
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_problem(401, "invalid_token");
    assert_eq!(before, written());
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_admin.token)
        .await;
    assert_eq!(card.assert_status(200)["status"], "in_progress");
}

#[actix_web::test]
async fn a_message_carries_attachments_of_its_own_case_only() {
    use crate::attachments::{png, upload};

    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let other = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    start_case(&app, &w, &other).await;
    let theirs = id(
        upload(&app, &w.a_operator.token, &other, "car.png", &png(500))
            .await
            .assert_status(201),
    );
    let ours = id(
        upload(&app, &w.a_operator.token, &case, "car.png", &png(500))
            .await
            .assert_status(201),
    );
    let p = format!("/v1/cases/{case}/messages");
    let written = |app: &crate::helpers::TestApp<_>| {
        (
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM messages WHERE case_id = '{case}'"
            )),
            app.count("SELECT COUNT(*) AS n FROM notifications"),
            app.count("SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'message'"),
        )
    };
    let before = written(&app);

    let res = app
        .post(
            &p,
            &w.a_operator.token,
            json!({"body": "The photo.", "attachment_ids": [ours, theirs, ours, theirs]}),
        )
        .await;
    // Each foreign id where it was sent.
    let errors = &res.assert_problem(422, "validation_failed")["errors"];
    let pointers: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .inspect(|e| assert_eq!(e["code"], "invalid_attachment"))
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/attachment_ids/1", "/attachment_ids/3"]);
    assert_eq!(written(&app), before);

    let res = app
        .post(
            &p,
            &w.a_operator.token,
            json!({"body": "The photo.", "attachment_ids": [ours, ours]}),
        )
        .await;
    assert_eq!(res.assert_status(201)["attachment_ids"], json!([ours]));
    // One message, the client's notification, and an audit row for each of its fields
    // (direction and channel).
    assert_eq!(written(&app), (before.0 + 1, before.1 + 1, before.2 + 2));
}

/// Agents write internal notes only while the case is in progress: they still read a suspended
/// case, and this rule alone keeps them from writing to it. They hear of the agency's notes only
/// while they can see the case. Interactions the agency logs from other channels are its own
/// record and notify nobody; its in-app messages notify the client.
#[actix_web::test]
async fn agents_note_and_hear_only_while_they_see_the_case_and_logged_interactions_notify_nobody() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    let p = format!("/v1/cases/{case}/messages");
    let notifications = || app.count("SELECT COUNT(*) AS n FROM notifications");
    let messages = || app.count("SELECT COUNT(*) AS n FROM messages");

    let before = notifications();
    for direction in ["inbound", "outbound"] {
        app.post(
            &p,
            &w.a_operator.token,
            json!({"body": "Called about the car.", "channel": "phone", "direction": direction}),
        )
        .await
        .assert_status(201);
    }
    assert_eq!(notifications(), before, "a logged call notified someone");
    post_message(&app, &w.a_operator.token, &case, "We start tomorrow.").await;
    assert_eq!(
        notifications(),
        before + 1,
        "the client hears of in-app messages"
    );

    let note = json!({"body": "Subject left at 14:00.", "internal": true});
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    let written = messages();
    app.post(&p, &w.a_agent.token, note.clone())
        .await
        .assert_problem(409, "wrong_state");
    assert_eq!(messages(), written);
    app.get(&p, &w.a_agent.token).await.assert_status(200);
    act(&app, &w.a_operator.token, &case, "resume")
        .await
        .assert_status(200);
    app.post(&p, &w.a_agent.token, note)
        .await
        .assert_status(201);
    assert_eq!(messages(), written + 1);

    // The agency's notes reach the agents while they see the case, and not once it is completed
    // (its completion does).
    let agents_bell = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{}'",
            w.a_agent.id
        ))
    };
    let heard = agents_bell();
    let agency_note = json!({"body": "Check the garage too.", "internal": true});
    app.post(&p, &w.a_operator.token, agency_note.clone())
        .await
        .assert_status(201);
    assert_eq!(agents_bell(), heard + 1);
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    assert_eq!(
        agents_bell(),
        heard + 2,
        "the agents hear their case left them"
    );
    app.get(&format!("/v1/cases/{case}"), &w.a_agent.token)
        .await
        .assert_problem(404, "not_found");
    app.post(&p, &w.a_operator.token, agency_note)
        .await
        .assert_status(201);
    assert_eq!(
        agents_bell(),
        heard + 2,
        "an agent heard of a case they cannot see"
    );
}

/// Every POST that creates something on a case takes `Idempotency-Key`: a retried send is the
/// first one replayed, with no second message, event, request or room, audit row or
/// notification; another body under the same key is 422.
#[actix_web::test]
async fn retried_creations_on_a_case_are_replayed_not_repeated() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    // Where each sends its text (a video call has no body).
    let creations = [
        ("messages", &w.client.token, "body", "messages"),
        (
            "storyline",
            &w.a_operator.token,
            "title",
            "storyline_events",
        ),
        ("requests", &w.a_operator.token, "prompt", "client_requests"),
        ("video-calls", &w.client.token, "", "video_calls"),
    ];
    for (path, token, text, table) in creations {
        let with = |words: &str| match (path, text) {
            (_, "") => None,
            ("requests", _) => Some(json!({"kind": "question", text: words})),
            _ => Some(json!({ text: words })),
        };
        let body = with("Sent once?");
        let p = format!("/v1/cases/{case}/{path}");
        let rows = || {
            let count = |t: &str| {
                app.count(&format!(
                    "SELECT COUNT(*) AS n FROM {t} WHERE case_id = '{case}'"
                ))
            };
            (
                count(table),
                count("audit_log"),
                app.count("SELECT COUNT(*) AS n FROM notifications"),
            )
        };
        let before = rows();
        let key = format!("{path}-1");
        let key = [("idempotency-key", key.as_str())];
        let first = app.call("POST", &p, token, body.clone(), &key).await;
        first.assert_status(201);
        let after = rows();
        assert_eq!(after.0, before.0 + 1, "{path}");
        // The retry may write the case's id in capitals: the same case, the same request.
        let shouted = format!("/v1/cases/{}/{path}", case.to_uppercase());
        let again = app.call("POST", &shouted, token, body.clone(), &key).await;
        again.assert_status(201);
        assert_eq!(again.header("idempotent-replayed"), Some("true"), "{path}");
        assert_eq!(again.body, first.body, "{path}");
        assert_eq!(again.header("location"), first.header("location"), "{path}");
        assert_eq!(rows(), after, "{path}: the replay wrote nothing");
        if let Some(other) = with("Another text") {
            app.call("POST", &p, token, Some(other), &key)
                .await
                .assert_problem(422, "idempotency_key_reused");
            assert_eq!(rows(), after, "{path}");
        }
        // Without a key, each send is its own.
        for _ in 0..2 {
            app.call("POST", &p, token, body.clone(), &[])
                .await
                .assert_status(201);
        }
        assert_eq!(rows().0, after.0 + 2, "{path}");
    }
    // Once the case is completed, the storyline is frozen and calls are off: the storyline's
    // retry still gets its first answer, but a call's replay would hand out a dead room's URL.
    act(&app, &w.a_operator.token, &case, "start")
        .await
        .assert_status(200);
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    let retry = |path: &str, token: &str, body: Option<Value>| {
        let key = format!("{path}-1");
        let path = format!("/v1/cases/{case}/{path}");
        let token = token.to_owned();
        let app = &app;
        async move {
            app.call(
                "POST",
                &path,
                &token,
                body,
                &[("idempotency-key", key.as_str())],
            )
            .await
        }
    };
    let replayed = retry(
        "storyline",
        &w.a_operator.token,
        Some(json!({"title": "Sent once?"})),
    )
    .await;
    replayed.assert_status(201);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    retry("video-calls", &w.client.token, None)
        .await
        .assert_problem(409, "wrong_state");
}

/// A message or a video call racing the transition that shuts them out lands before it or not
/// at all (on PostgreSQL the write waits on the case's lock, then reads the new status).
#[actix_web::test]
async fn a_message_or_a_call_racing_a_transition_that_shuts_them_out_is_refused() {
    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let rejection =
        format!("UPDATE cases SET status = 'rejected', version = version + 1 WHERE id = '{case}'");
    let path = format!("/v1/cases/{case}/messages");
    let post = app.post(&path, &w.client.token, json!({"body": "Any news?"}));
    app.while_held(&rejection, post)
        .await
        .assert_problem(409, "wrong_state");
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let completion =
        format!("UPDATE cases SET status = 'completed', version = version + 1 WHERE id = '{case}'");
    let path = format!("/v1/cases/{case}/video-calls");
    let call = app.post(&path, &w.client.token, json!({}));
    app.while_held(&completion, call)
        .await
        .assert_problem(409, "wrong_state");
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM messages WHERE body = 'Any news?'")
            + app.count("SELECT COUNT(*) AS n FROM video_calls"),
        0
    );
}

/// DESIGN.md's built-in rule "notify on mention": a message names users who read it, and each
/// gets `mentioned` in place of `message_received`. Anyone who would not read the message (the
/// client in an internal note, an agent in a public one or off the case, another agency,
/// platform staff, nobody) is 422 `invalid_mention`, a repeat 422 `repeated`: nothing written.
#[actix_web::test]
async fn a_message_tells_the_readers_it_mentions_and_no_one_else() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    let told = |user: &str, event: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{user}' AND event = '{event}' \
             AND case_id = '{case}'"
        ))
    };
    let path = format!("/v1/cases/{case}/messages");
    let send = |token: &str, body: Value| {
        let (app, path, token) = (&app, path.clone(), token.to_owned());
        async move { app.post(&path, &token, body).await }
    };
    let before = (
        told(&w.a_agent.id, "message_received"),
        told(&w.a_admin.id, "mentioned"),
    );

    // The agent reads Italian.
    app.patch(
        &format!("/v1/users/{}", w.a_agent.id),
        &w.a_admin.token,
        json!({"locale": "it"}),
    )
    .await
    .assert_status(200);
    // An internal note naming the agent on the case and the agency's admin.
    let note = json!({"body": "See the photos", "internal": true,
                      "mentions": [w.a_agent.id, w.a_admin.id]});
    let res = send(&w.a_operator.token, note).await;
    let mut expected = vec![w.a_agent.id.clone(), w.a_admin.id.clone()];
    expected.sort();
    assert_eq!(res.assert_status(201)["mentions"], json!(expected));
    assert_eq!(told(&w.a_agent.id, "mentioned"), 1);
    assert_eq!(told(&w.a_admin.id, "mentioned"), before.1 + 1);
    assert_eq!(
        told(&w.a_agent.id, "message_received"),
        before.0,
        "the mention in place of the message's own"
    );
    let title = format!(
        "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{}' AND event = 'mentioned' \
         AND title LIKE 'You were mentioned on %' AND body = 'See the photos'",
        w.a_admin.id
    );
    assert_eq!(app.count(&title), 1);
    let italian = format!(
        "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{}' AND event = 'mentioned' \
         AND title LIKE 'Sei stato menzionato su %'",
        w.a_agent.id
    );
    assert_eq!(app.count(&italian), 1);
    let audited = format!(
        "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'message' AND field = 'mentions' \
         AND new_value = '{}'",
        json!(expected)
    );
    assert_eq!(app.count(&audited), 1);
    // A message naming nobody tells its audience as before: the agent hears of the note.
    let plain = json!({"body": "And the receipts", "internal": true});
    send(&w.a_operator.token, plain).await.assert_status(201);
    assert_eq!(told(&w.a_agent.id, "message_received"), before.0 + 1);

    // The sender may name themselves: they are told nothing.
    let mentioned = told(&w.a_operator.id, "mentioned");
    let own = json!({"body": "Note to self", "internal": true, "mentions": [w.a_operator.id]});
    send(&w.a_operator.token, own).await.assert_status(201);
    assert_eq!(told(&w.a_operator.id, "mentioned"), mentioned);

    // The client names the operator, who hears of it once, as a mention.
    let received = told(&w.a_operator.id, "message_received");
    let asks = json!({"body": "Any news?", "mentions": [w.a_operator.id]});
    send(&w.client.token, asks).await.assert_status(201);
    assert_eq!(told(&w.a_operator.id, "mentioned"), 1);
    assert_eq!(told(&w.a_operator.id, "message_received"), received);
    let listed = app.get(&path, &w.client.token).await;
    let items = listed.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .clone();
    let mine = items.iter().find(|m| m["body"] == "Any news?").unwrap();
    assert_eq!(mine["mentions"], json!([w.a_operator.id]));

    // Whoever would not read the message cannot be named in it.
    let written = || app.rows_in(&["messages", "notifications", "audit_log"]);
    let after = written();
    let unknown = "00000000-0000-7000-8000-00000000beef".to_owned();
    let refused = [
        (
            &w.a_operator.token,
            true,
            vec![w.client.id.clone()],
            "/mentions/0",
            "invalid_mention",
        ),
        (
            &w.a_operator.token,
            false,
            vec![w.a_agent.id.clone()],
            "/mentions/0",
            "invalid_mention",
        ),
        (
            &w.a_operator.token,
            true,
            vec![w.a_admin.id.clone(), w.a_agent2.id.clone()],
            "/mentions/1",
            "invalid_mention",
        ),
        (
            &w.a_operator.token,
            true,
            vec![w.b_admin.id.clone()],
            "/mentions/0",
            "invalid_mention",
        ),
        (
            &w.client.token,
            false,
            vec![w.platform_staff.id.clone()],
            "/mentions/0",
            "invalid_mention",
        ),
        (
            &w.client.token,
            false,
            vec![unknown],
            "/mentions/0",
            "invalid_mention",
        ),
        (
            &w.client.token,
            false,
            vec![w.client2.id.clone()],
            "/mentions/0",
            "invalid_mention",
        ),
        (
            &w.client.token,
            false,
            vec![w.a_admin.id.clone(), w.a_admin.id.clone()],
            "/mentions/1",
            "repeated",
        ),
    ];
    for (token, internal, mentions, pointer, code) in refused {
        let mut body = json!({"body": "Hello", "mentions": mentions});
        if internal {
            body["internal"] = json!(true);
        }
        let res = send(token, body.clone()).await;
        let problem = res.assert_problem(422, code);
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{body}");
        assert_eq!(written(), after, "{body}");
    }
    // Nor someone deactivated, nor an agent once the case is past their statuses.
    app.deactivate_user(&w.platform.token, &w.a_admin.id).await;
    let after = written();
    let to_admin = json!({"body": "Hello", "internal": true, "mentions": [w.a_admin.id]});
    send(&w.a_operator.token, to_admin)
        .await
        .assert_problem(422, "invalid_mention");
    assert_eq!(written(), after);
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    let after_completion = written();
    let to_agent = json!({"body": "Thanks", "internal": true, "mentions": [w.a_agent.id]});
    send(&w.a_operator.token, to_agent)
        .await
        .assert_problem(422, "invalid_mention");
    assert_eq!(written(), after_completion);
}

/// `include=earlier_cases` reads every case of the client's the caller sees (another agency's
/// not), each message with its case's number and read flags, page by page.
#[actix_web::test]
async fn earlier_cases_carry_their_own_numbers_and_read_marks() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let mut cases = Vec::new();
    for service in [&w.service_a, &w.service_a, &w.service_b, &w.service_a] {
        cases.push(buy(&app, &w.client.token, service, "card").await);
    }
    for (i, card) in cases.iter().enumerate() {
        let path = format!("/v1/cases/{}/messages", id(card));
        let res = app
            .post(&path, &w.client.token, json!({"body": format!("case {i}")}))
            .await;
        let message = id(res.assert_status(201));
        if i == 1 {
            let read = json!({"up_to": message});
            app.post(&format!("{path}/read"), &w.a_operator.token, read)
                .await
                .assert_status(200);
        }
    }
    let asked = id(&cases[3]);
    let mut seen = Vec::new();
    let mut path = format!("/v1/cases/{asked}/messages?include=earlier_cases&limit=2");
    loop {
        let res = app.get(&path, &w.a_operator.token).await;
        let page = res.assert_status(200).clone();
        for m in page["items"].as_array().unwrap() {
            seen.push((
                m["body"].as_str().unwrap().to_owned(),
                m["case_number"].as_str().unwrap().to_owned(),
                m["read_by_agency"] == true,
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                path =
                    format!("/v1/cases/{asked}/messages?include=earlier_cases&limit=2&cursor={c}")
            }
            None => break,
        }
    }
    let number = |i: usize| cases[i]["number"].as_str().unwrap().to_owned();
    assert_eq!(
        seen,
        [
            ("case 3".to_owned(), number(3), false),
            ("case 1".to_owned(), number(1), true),
            ("case 0".to_owned(), number(0), false),
        ],
        "agency B's case 2 is not agency A's to read"
    );
    // An agent reads the internal notes of the client's cases they are on while they see them:
    // not those of another case in progress, nor those of a case of theirs once completed.
    let worked = id(&cases[1]);
    let completed = id(&cases[3]);
    for case in [&worked, &id(&cases[0]), &completed] {
        start_case(&app, &w, case).await;
    }
    assign_agent(&app, &w, &worked).await;
    assign_agent(&app, &w, &completed).await;
    for i in [0, 1, 3] {
        let path = format!("/v1/cases/{}/messages", id(&cases[i]));
        let note = json!({"body": format!("note {i}"), "internal": true});
        app.post(&path, &w.a_operator.token, note)
            .await
            .assert_status(201);
    }
    let path = format!("/v1/cases/{worked}/messages?include=earlier_cases");
    let res = app.get(&path, &w.a_agent.token).await;
    assert_eq!(bodies(res.assert_status(200)), ["note 3", "note 1"]);
    act(&app, &w.a_operator.token, &completed, "complete")
        .await
        .assert_status(200);
    let res = app.get(&path, &w.a_agent.token).await;
    assert_eq!(bodies(res.assert_status(200)), ["note 1"]);
}
