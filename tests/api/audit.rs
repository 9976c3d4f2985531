//! The audit log across cases: who reads which rows, its filters and pages, the CSV export.

use serde_json::{Value, json};

use crate::helpers::spawn;
use crate::world::{World, act, buy, id, start_case};

/// The `seq`s of a JSON page's rows, and its next cursor.
fn seqs(body: &Value) -> (Vec<i64>, Option<String>) {
    let seqs = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    (seqs, body["next_cursor"].as_str().map(str::to_owned))
}

#[actix_web::test]
async fn admins_read_their_scope_of_the_log_filtered_and_paged() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let a_case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let b_case = id(&buy(&app, &w.client2.token, &w.service_b, "card").await);
    start_case(&app, &w, &a_case).await;
    act(&app, &w.a_operator.token, &a_case, "suspend")
        .await
        .assert_status(200);
    act(&app, &w.b_operator.token, &b_case, "accept")
        .await
        .assert_status(200);
    app.patch(
        &format!("/v1/services/{}", w.service_a),
        &w.a_admin.token,
        json!({"title": "Background checks, renamed"}),
    )
    .await
    .assert_status(200);
    let all = |query: &str| format!("SELECT COUNT(*) AS n FROM audit_log {query}");
    let count = |query: &str| app.count(&all(query)) as usize;

    // Platform admins: every row, newest first.
    let every: Vec<i64> = app
        .every_item("/v1/audit?limit=100", &w.platform.token)
        .await
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(every.len(), count(""));
    assert!(every.windows(2).all(|p| p[0] > p[1]), "{every:?}");
    // Agency A's admin: its cases' rows, its service's, its users' and its own, nothing of B's.
    let a_rows = count(&format!(
        "WHERE case_id IN (SELECT id FROM cases WHERE agency_id = '{a}') \
         OR (entity = 'service' AND entity_id IN (SELECT id FROM services WHERE agency_id = '{a}')) \
         OR (entity = 'user' AND entity_id IN (SELECT id FROM users WHERE agency_id = '{a}')) \
         OR (entity = 'agency' AND entity_id = '{a}')",
        a = w.agency_a
    ));
    let a_users: Vec<String> = app
        .texts(&format!(
            "SELECT id AS t FROM users WHERE agency_id = '{}'",
            w.agency_a
        ))
        .into_iter()
        .flatten()
        .collect();
    let res = app.get("/v1/audit?limit=100", &w.a_admin.token).await;
    let body = res.assert_status(200).clone();
    assert_eq!(seqs(&body).0.len(), a_rows);
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| [&a_case, &w.service_a, &w.agency_a]
                .into_iter()
                .chain(&a_users)
                .any(|ours| r["case_id"] == ours.as_str() || r["entity_id"] == ours.as_str())),
        "{body}"
    );
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["entity"] == "service" && r["action"] == "update")
    );
    let res = app
        .get(&format!("/v1/audit?case_id={b_case}"), &w.a_admin.token)
        .await;
    assert_eq!(res.assert_status(200)["items"], json!([]), "B's case");

    // Each filter narrows to what it names.
    for (query, rows) in [
        (
            format!("case_id={b_case}"),
            format!("WHERE case_id = '{b_case}'"),
        ),
        (
            format!("actor_id={}", w.a_operator.id),
            format!("WHERE actor_id = '{}'", w.a_operator.id),
        ),
        (
            "action=suspend".to_owned(),
            "WHERE action = 'suspend'".to_owned(),
        ),
        (
            "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z".to_owned(),
            String::new(),
        ),
        (
            "from=2100-01-01T00:00:00Z".to_owned(),
            "WHERE created_at >= '2100-01-01'".to_owned(),
        ),
    ] {
        let found = app
            .every_item(&format!("/v1/audit?limit=100&{query}"), &w.platform.token)
            .await;
        assert_eq!(found.len(), count(&rows), "{query}");
    }
    // A time range holds the rows whose time is in it whatever their place in the chain (the
    // nodes' clocks differ): rows moved into 2001 out of `seq` order, two to a page.
    app.sql(
        "UPDATE audit_log SET created_at = CASE seq WHEN 2 THEN '2001-03-01 00:00:00' \
         WHEN 5 THEN '2001-01-01 00:00:00' WHEN 3 THEN '2002-01-01 00:00:00' \
         ELSE created_at END",
    );
    let range = "from=2001-01-01T00:00:00Z&to=2002-01-01T00:00:00Z";
    let mut in_range = Vec::new();
    let mut path = format!("/v1/audit?limit=1&{range}");
    loop {
        let res = app.get(&path, &w.platform.token).await;
        let (page, next) = seqs(res.assert_status(200));
        in_range.extend(page);
        match next {
            Some(cursor) => path = format!("/v1/audit?limit=1&{range}&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(in_range, [5, 2]);
    let res = app.get("/v1/audit?action=suspend", &w.platform.token).await;
    let items = res.assert_status(200)["items"].as_array().unwrap().clone();
    assert!(items.iter().all(|r| r["action"] == "suspend"));
    assert!(
        items
            .iter()
            .any(|r| r["field"] == "status" && r["new_value"] == "suspended")
    );

    // Pages of 4 walk the same rows once each.
    let mut walked = Vec::new();
    let mut path = "/v1/audit?limit=4".to_owned();
    loop {
        let res = app.get(&path, &w.platform.token).await;
        let (page, next) = seqs(res.assert_status(200));
        walked.extend(page);
        match next {
            Some(cursor) => path = format!("/v1/audit?limit=4&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, every);

    // Only admins read it; bad filters are 400.
    for token in [
        &w.platform_staff.token,
        &w.a_operator.token,
        &w.a_agent.token,
        &w.client.token,
    ] {
        app.get("/v1/audit", token)
            .await
            .assert_problem(403, "forbidden");
    }
    let long = "x".repeat(101);
    for bad in [
        "case_id=nope",
        "actor_id=1",
        "format=xml",
        "colour=red",
        "action=",
        &format!("action={long}"),
        "from=9999-12-31T23:59:59-23:59",
        "to=%2B262142-12-31T23:59:59.9999991Z",
    ] {
        app.get(&format!("/v1/audit?{bad}"), &w.platform.token)
            .await
            .assert_problem(400, "invalid_query");
    }
    app.get("/v1/audit?cursor=LTU", &w.platform.token)
        .await
        .assert_problem(400, "invalid_cursor");
}

/// Each row names the request that made it: the `X-Request-Id` the caller sent.
#[actix_web::test]
async fn audit_rows_carry_the_request_id_the_caller_sent() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    app.call(
        "POST",
        &format!("/v1/cases/{case}/transitions"),
        &w.a_operator.token,
        Some(json!({"action": "accept"})),
        &[("x-request-id", "trace-42")],
    )
    .await
    .assert_status(200);
    let rows = app
        .every_item(
            &format!("/v1/cases/{case}/audit?action=accept"),
            &w.a_admin.token,
        )
        .await;
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["request_id"] == "trace-42"),
        "{rows:?}"
    );
    // The purchase's rows name its own request, made up by the server.
    let bought = app
        .every_item(
            &format!("/v1/cases/{case}/audit?action=create"),
            &w.a_admin.token,
        )
        .await;
    // (The acceptance's storyline event is a `create` of that request's.)
    let bought: Vec<_> = bought.iter().filter(|r| r["entity"] == "case").collect();
    assert!(!bought.is_empty());
    for row in bought {
        assert!(row["request_id"].is_string(), "{row}");
        assert_ne!(row["request_id"], "trace-42", "{row}");
    }
}

/// The export is every row the filters keep, however many, in batches the server streams; a
/// value with a comma, a quote or a line break is quoted, so each row reads back whole.
#[actix_web::test]
async fn the_log_exports_as_csv_whole_and_quoted() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let reason = "Waiting, as agreed, for \"the\" documents\nfrom the bank";
    app.post(
        &format!("/v1/cases/{case}/transitions"),
        &w.a_operator.token,
        json!({"action": "reject", "reason": reason}),
    )
    .await
    .assert_status(200);
    // More rows than one batch of the export reads (1 000), chained like any others.
    let existing = app.count("SELECT COUNT(*) AS n FROM audit_log");
    let values: Vec<String> = (0..2_345)
        .map(|i| {
            format!(
                "('00000000-0000-7000-9200-{i:012}', {seq}, 'case', '{case}', '{case}', 'seeded', \
                 NULL, NULL, NULL, NULL, 'agency', 'seed', '2026-01-01 00:00:00', 'x', 'x', '{a}')",
                seq = existing + 1 + i,
                a = w.agency_a
            )
        })
        .collect();
    app.sql(&format!(
        "INSERT INTO audit_log (id, seq, entity, entity_id, case_id, action, field, old_value, \
         new_value, actor_id, actor_role, request_id, created_at, prev_hash, hash, agency_id) \
         VALUES {}",
        values.join(", ")
    ));
    let total = app.count("SELECT COUNT(*) AS n FROM audit_log") as usize;

    let (status, headers, bytes) = app.bytes("/v1/audit?format=csv", &w.platform.token).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(
        headers.get("content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        headers.get("content-disposition").unwrap(),
        "attachment; filename=\"audit.csv\""
    );
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>()[..3],
        ["seq", "id", "created_at"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), total);
    let seqs: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|p| p[0] > p[1]),
        "newest first, once each"
    );
    assert!(
        rows.iter()
            .any(|r| &r[6] == "reject" && &r[7] == "reason" && &r[9] == reason),
        "the reason reads back whole"
    );

    // `Accept: text/csv` asks the same; a case's log and an agency admin's scope export too.
    let res = app
        .call(
            "GET",
            &format!("/v1/cases/{case}/audit?action=reject"),
            &w.a_admin.token,
            None,
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(res.status.as_u16(), 200);
    let number = app
        .get(&format!("/v1/cases/{case}"), &w.a_admin.token)
        .await
        .body["number"]
        .clone();
    assert_eq!(
        res.header("content-disposition"),
        Some(
            format!(
                "attachment; filename=\"audit-{}.csv\"",
                number.as_str().unwrap()
            )
            .as_str()
        ),
        "named after the case"
    );
    let text = res.body.as_str().unwrap().to_owned();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rejected: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(!rejected.is_empty());
    assert!(
        rejected
            .iter()
            .all(|r| &r[6] == "reject" && &r[5] == case.as_str())
    );
    let (status, _, bytes) = app.bytes("/v1/audit?format=csv", &w.b_admin.token).await;
    assert_eq!(status.as_u16(), 200);
    let b_rows = csv::Reader::from_reader(bytes.as_slice()).records().count();
    // Counted from the cases and services themselves, not from the column the scope reads.
    assert_eq!(
        b_rows,
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log \
             WHERE case_id IN (SELECT id FROM cases WHERE agency_id = '{b}') \
             OR (entity = 'service' AND entity_id IN (SELECT id FROM services WHERE agency_id = '{b}')) \
             OR (entity = 'user' AND entity_id IN (SELECT id FROM users WHERE agency_id = '{b}')) \
             OR (entity = 'agency' AND entity_id = '{b}')",
            b = w.agency_b
        )) as usize
    );
    assert!(b_rows > 0);
    app.get("/v1/audit?format=csv", &w.a_operator.token)
        .await
        .assert_problem(403, "forbidden");
}

#[actix_web::test]
async fn a_tickets_log_is_every_row_about_it_for_the_admins_who_see_it() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let open = |token: &str, subject: &str| {
        let body = json!({"subject": subject, "description": "Words of the requester."});
        let token = token.to_owned();
        let app = &app;
        async move {
            id(app
                .post("/v1/tickets", &token, body)
                .await
                .assert_status(201))
        }
    };
    let agency_ticket = open(&w.a_operator.token, "Payout").await;
    let client_ticket = open(&w.client.token, "Refund").await;
    // A client's ticket about agency A's case is the platform's, not the agency's.
    let a_case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let body = json!({"subject": "Charged twice", "description": "Words of the client.",
                      "case_id": a_case});
    let about_a_case = id(app
        .post("/v1/tickets", &w.client.token, body)
        .await
        .assert_status(201));
    let other_agency = open(&w.b_operator.token, "Invoices").await;
    let path = format!("/v1/tickets/{agency_ticket}");
    app.post(
        &format!("{path}/messages"),
        &w.platform_staff.token,
        json!({"body": "We are on it."}),
    )
    .await
    .assert_status(201);
    app.patch(&path, &w.platform_staff.token, json!({"priority": "high"}))
        .await
        .assert_status(200);
    app.post(
        &format!("{path}/transitions"),
        &w.platform_staff.token,
        json!({"action": "resolve", "resolution_type": "answered", "resolution": "Paid."}),
    )
    .await
    .assert_status(200);
    let log = format!("{path}/audit");
    // The same rows through the ticket's log and through the whole log's filter.
    let whole_log = format!("/v1/audit?entity_id={agency_ticket}&limit=100");
    let read_both = |token: &str| {
        let (app, token) = (&app, token.to_owned());
        let urls = [format!("{log}?limit=100"), whole_log.clone()];
        async move {
            let mut pages = Vec::new();
            for url in urls {
                pages.push(seqs(app.get(&url, &token).await.assert_status(200)).0);
            }
            pages
        }
    };
    let about = |ticket: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{ticket}'"
        )) as usize
    };

    // A platform admin: every row with the ticket's id, newest first, nothing of the others.
    let res = app
        .get(&format!("{log}?limit=100"), &w.platform.token)
        .await;
    let body = res.assert_status(200).clone();
    let items = body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), about(&agency_ticket));
    assert!(items.iter().all(|r| r["entity"] == "ticket"
        && r["entity_id"] == agency_ticket.as_str()
        && r["case_id"].is_null()));
    let (every, _) = seqs(&body);
    assert!(every.windows(2).all(|p| p[0] > p[1]), "{every:?}");
    let actions: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in ["create", "post_message", "update", "resolve"] {
        assert!(actions.contains(action), "{action} in {actions:?}");
    }
    // Filtered, and paged without a row twice.
    let res = app
        .get(&format!("{log}?action=post_message"), &w.platform.token)
        .await;
    let body = res.assert_status(200).clone();
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["field"], "message_id");
    let mut paged = Vec::new();
    let mut next = Some(format!("{log}?limit=2"));
    while let Some(url) = next.take() {
        let res = app.get(&url, &w.platform.token).await;
        let (page, cursor) = seqs(res.assert_status(200));
        paged.extend(page);
        next = cursor.map(|c| format!("{log}?limit=2&cursor={c}"));
    }
    assert_eq!(paged, every);
    assert_eq!(
        read_both(&w.platform.token).await,
        [every.clone(), every.clone()]
    );
    // As CSV: a header and one line per row.
    let (status, headers, bytes) = app
        .bytes(&format!("{log}?format=csv"), &w.platform.token)
        .await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(
        headers.get("content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    let csv = String::from_utf8(bytes).unwrap();
    assert_eq!(csv.lines().count(), every.len() + 1);
    assert!(csv.starts_with("seq,id,created_at,entity,entity_id,"));
    let number = app.get(&path, &w.platform.token).await.body["number"].clone();
    assert_eq!(
        headers
            .get("content-disposition")
            .unwrap()
            .to_str()
            .unwrap(),
        format!(
            "attachment; filename=\"audit-{}.csv\"",
            number.as_str().unwrap()
        ),
        "named after the ticket"
    );

    // The requesting agency's admin reads the same rows; no other ticket.
    assert_eq!(
        read_both(&w.a_admin.token).await,
        [every.clone(), every.clone()]
    );
    for ticket in [&client_ticket, &other_agency, &about_a_case] {
        let res = app
            .get(&format!("/v1/tickets/{ticket}/audit"), &w.a_admin.token)
            .await;
        res.assert_problem(404, "not_found");
    }
    // Through the whole log, a ticket that is not theirs has no rows for them.
    for ticket in [&other_agency, &about_a_case] {
        let res = app
            .get(&format!("/v1/audit?entity_id={ticket}"), &w.a_admin.token)
            .await;
        assert_eq!(res.assert_status(200)["items"], json!([]));
        assert!(about(ticket) > 0);
    }
    let (status, _, _) = app
        .bytes(
            &format!("/v1/tickets/{other_agency}/audit?format=csv"),
            &w.a_admin.token,
        )
        .await;
    assert_eq!(status.as_u16(), 404);
    let res = app.get(&log, &w.b_admin.token).await;
    res.assert_problem(404, "not_found");
    let unknown = "/v1/tickets/00000000-0000-7000-8000-00000000dead/audit";
    app.get(unknown, &w.platform.token)
        .await
        .assert_problem(404, "not_found");
    // Who is not an admin reads no log, their own ticket's included.
    for token in [
        &w.platform_staff.token,
        &w.a_operator.token,
        &w.a_agent.token,
        &w.client.token,
    ] {
        app.get(&log, token).await.assert_problem(403, "forbidden");
    }
    let res = app
        .get(
            &format!("/v1/tickets/{client_ticket}/audit"),
            &w.client.token,
        )
        .await;
    res.assert_problem(403, "forbidden");
    app.get(unknown, &w.platform_staff.token)
        .await
        .assert_problem(403, "forbidden");
    // The path names the ticket: no other thing's filter.
    let res = app
        .get(
            &format!("{log}?entity_id={other_agency}"),
            &w.platform.token,
        )
        .await;
    res.assert_problem(400, "invalid_query");
    let res = app.get("/v1/audit?entity_id=42", &w.platform.token).await;
    res.assert_problem(400, "invalid_query");
}
