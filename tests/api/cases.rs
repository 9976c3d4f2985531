//! Buying, the card, the list, PATCH, assignment, visibility and the audit trail.

use std::collections::HashSet;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{AppService, Response, spawn};
use crate::world::{
    World, act, assign_agent, buy, close, create_service, id, ids, start_case, take,
};

#[actix_web::test]
async fn buying_creates_a_numbered_case_with_the_service_form() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let service = create_service(
        &app,
        &w.a_admin.token,
        "Vehicle tracking",
        json!([{"key": "plate", "label": "Plate", "type": "text", "required": true, "help": "As on the car"},
               {"key": "colour", "label": "Colour", "type": "choice", "options": ["red", "blue"]}]),
    )
    .await;
    let res = app
        .post(
            "/v1/cases",
            &w.client.token,
            json!({"service_id": service, "payment_method": "bank_transfer",
                   "title": "  Red car  ", "description": "Follow the red car please."}),
        )
        .await;
    let card = res.assert_status(201).clone();
    let case = id(&card);
    assert_eq!(
        res.header("location"),
        Some(format!("/v1/cases/{case}").as_str())
    );
    assert_eq!(res.header("etag"), Some("\"1\""));
    let year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(card["number"], format!("DOS-{year}-000001"));
    assert_eq!(card["title"], "Red car");
    assert_eq!(card["status"], "awaiting_payment");
    assert_eq!(card["status_label"], "Awaiting payment");
    assert_eq!(card["payment_method"], "bank_transfer");
    assert_eq!(card["payment_state"], "pending");
    assert_eq!(card["priority"], "normal");
    assert_eq!(card["agency"]["id"], w.agency_a.as_str());
    assert_eq!(card["agency"]["name"], "Agenzia Rossi");
    assert_eq!(card["service"]["title"], "Vehicle tracking");
    assert_eq!(card["client_open_cases"], 1);
    assert_eq!(
        card["client"],
        Value::Null,
        "clients do not get the identity block"
    );
    assert_eq!(card["assignee"], Value::Null);
    assert_eq!(card["disputed"], false);
    // The form is copied onto the case, in order.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM case_fields WHERE case_id = '{case}' AND key = 'colour' AND position = 1 AND options IS NOT NULL"
        )),
        1
    );
    // Audit rows for the creation, by the client, with the request id.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND action = 'create' AND actor_role = 'client' AND request_id IS NOT NULL"
        )),
        6
    );
    // Card payment starts in approval, numbered next.
    let second = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(second["number"], format!("DOS-{year}-000002"));
    assert_eq!(second["status"], "in_approval");
    assert_eq!(second["payment_state"], "paid");
    assert_eq!(second["client_open_cases"], 2);
    // The agency sees the client's identity.
    let res = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    assert_eq!(
        res.assert_status(200)["client"]["email"],
        "giulia@example.com"
    );
    assert!(res.body["client"]["identity"].is_object());
    assert_eq!(
        res.body["client_open_cases"], 2,
        "both open cases are agency A's"
    );
    let at_b = id(&buy(&app, &w.client.token, &w.service_b, "card").await);
    let res = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    assert_eq!(
        res.body["client_open_cases"], 2,
        "agency A does not count agency B's case"
    );
    let res = app
        .get(&format!("/v1/cases/{at_b}"), &w.b_operator.token)
        .await;
    assert_eq!(
        res.assert_status(200)["client_open_cases"],
        1,
        "agency B counts its own case only"
    );
    let res = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(res.body["client_open_cases"], 3);
    let res = app
        .get(&format!("/v1/cases/{case}"), &w.platform.token)
        .await;
    assert_eq!(
        res.body["client_open_cases"], 3,
        "platform staff count every agency's"
    );
    // A case in a terminal status is no longer open.
    act(&app, &w.client.token, &at_b, "cancel")
        .await
        .assert_status(200);
    let res = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(
        res.body["client_open_cases"], 2,
        "the cancelled case is not counted"
    );
}

/// An agent counts only the client's open cases they can see (assigned, in a status agents
/// see), not the agency's kept count; an agent off the case sees no card at all.
#[actix_web::test]
async fn an_agent_counts_only_the_clients_cases_they_work() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let mut cases = Vec::new();
    for _ in 0..3 {
        cases.push(id(&buy(&app, &w.client.token, &w.service_a, "card").await));
    }
    for case in &cases[..2] {
        start_case(&app, &w, case).await;
    }
    assign_agent(&app, &w, &cases[0]).await;
    let count = async |token: &str| {
        app.get(&format!("/v1/cases/{}", cases[0]), token)
            .await
            .assert_status(200)["client_open_cases"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(count(&w.a_operator.token).await, 3);
    assert_eq!(count(&w.a_agent.token).await, 1);
    assign_agent(&app, &w, &cases[1]).await;
    assert_eq!(count(&w.a_agent.token).await, 2);
    app.get(&format!("/v1/cases/{}", cases[0]), &w.a_agent2.token)
        .await
        .assert_problem(404, "not_found");
}

#[actix_web::test]
async fn buying_is_for_clients_and_active_services_only() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let body = json!({"service_id": w.service_a, "payment_method": "card", "title": "Title", "description": "Long enough text"});
    for token in [&w.a_operator.token, &w.platform.token, &w.a_agent.token] {
        app.post("/v1/cases", token, body.clone())
            .await
            .assert_problem(403, "forbidden");
    }
    let res = app
        .post(
            "/v1/cases",
            &w.client.token,
            json!({"service_id": w.service_a, "payment_method": "cash", "title": "", "description": "short"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let res = app
        .post(
            "/v1/cases",
            &w.client.token,
            json!({"service_id": w.service_a, "payment_method": "card", "title": "Title", "description": "Long enough text", "status": "closed"}),
        )
        .await;
    res.assert_problem(400, "unknown_field");
    // An inactive service cannot be bought.
    app.patch(
        &format!("/v1/services/{}", w.service_a),
        &w.a_admin.token,
        json!({"active": false}),
    )
    .await
    .assert_status(200);
    let res = app.post("/v1/cases", &w.client.token, body.clone()).await;
    res.assert_problem(422, "service_not_for_sale");
    let res = app
        .post(
            "/v1/cases",
            &w.client.token,
            json!({"service_id": uuid::Uuid::now_v7(), "payment_method": "card", "title": "Title", "description": "Long enough text"}),
        )
        .await;
    res.assert_problem(422, "service_not_for_sale");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM cases"), 0);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'case'"),
        0
    );
}

#[actix_web::test]
async fn idempotency_key_replays_refuses_other_bodies_and_is_per_user() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let body = json!({"service_id": w.service_a, "payment_method": "card", "title": "Title", "description": "Long enough text"});
    let key = [("idempotency-key", "buy-1")];
    let first = app
        .call(
            "POST",
            "/v1/cases",
            &w.client.token,
            Some(body.clone()),
            &key,
        )
        .await;
    first.assert_status(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = app
        .call(
            "POST",
            "/v1/cases",
            &w.client.token,
            Some(body.clone()),
            &key,
        )
        .await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    let mut other = body.clone();
    other["title"] = json!("Another title");
    let res = app
        .call("POST", "/v1/cases", &w.client.token, Some(other), &key)
        .await;
    res.assert_problem(422, "idempotency_key_reused");
    // Another client's key space is their own.
    let theirs = app
        .call(
            "POST",
            "/v1/cases",
            &w.client2.token,
            Some(body.clone()),
            &key,
        )
        .await;
    assert_ne!(theirs.assert_status(201)["id"], first.body["id"]);
    // No key: every call creates.
    app.post("/v1/cases", &w.client.token, body.clone())
        .await
        .assert_status(201);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM cases"), 3);
    // A bad key (empty, with a space, too long: the spec's pattern) is a 400 that buys nothing,
    // and expired keys are forgotten.
    for bad in [String::new(), "buy 2".into(), "k".repeat(256)] {
        let res = app
            .call(
                "POST",
                "/v1/cases",
                &w.client.token,
                Some(body.clone()),
                &[("idempotency-key", bad.as_str())],
            )
            .await;
        res.assert_problem(400, "invalid_header");
    }
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM cases"), 3);
    // A second key of the same client, to expire with the first.
    app.call(
        "POST",
        "/v1/cases",
        &w.client.token,
        Some(body.clone()),
        &[("idempotency-key", "buy-0")],
    )
    .await
    .assert_status(201);
    app.sql("UPDATE idempotency_keys SET created_at = '2000-01-01 00:00:00'");
    let expired = "SELECT COUNT(*) AS n FROM idempotency_keys WHERE created_at < '2001-01-01'";
    let (keys, stale) = (app.rows_in(&["idempotency_keys"]), app.count(expired));
    // An expired key is no key, whatever body it was used with: the new answer takes its place.
    let mut other = body.clone();
    other["title"] = json!("Bought again");
    let fresh = app
        .call("POST", "/v1/cases", &w.client.token, Some(other), &key)
        .await;
    assert_ne!(fresh.assert_status(201)["id"], first.body["id"]);
    assert_eq!(fresh.header("idempotent-replayed"), None);
    assert_eq!(app.rows_in(&["idempotency_keys"]), keys);
    // The other expired keys, the client's own among them, wait for the hourly sweep: a
    // request deletes (and locks) no key but its own.
    assert_eq!(app.count(expired), stale - 1);
    let again = app
        .call("POST", "/v1/cases", &w.client.token, Some(body), &key)
        .await;
    again.assert_problem(422, "idempotency_key_reused");
}

#[actix_web::test]
async fn concurrent_buyers_never_share_a_number() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let buys = join_all((0..12).map(|i| {
        let token = if i % 2 == 0 { &w.client.token } else { &w.client2.token };
        app.post(
            "/v1/cases",
            token,
            json!({"service_id": w.service_a, "payment_method": "card", "title": "Title", "description": "Long enough text"}),
        )
    }))
    .await;
    let numbers: HashSet<String> = buys
        .iter()
        .map(|r| r.assert_status(201)["number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(numbers.len(), 12);
    // Both clients' first purchases raced to make their open-case count rows.
    assert_eq!(app.open_case_counts_off(), 0);
    // Racing cancellations of one case close it once and count it out once.
    let case = id(&buys[0].body);
    let cancels = join_all((0..6).map(|_| act(&app, &w.client.token, &case, "cancel"))).await;
    assert_eq!(
        cancels.iter().filter(|r| r.status.as_u16() == 200).count(),
        1
    );
    assert_eq!(app.open_case_counts_off(), 0);
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(card.assert_status(200)["client_open_cases"], 5);
}

#[actix_web::test]
async fn each_role_sees_exactly_its_cases_and_foreign_ids_are_404_everywhere() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let mine = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let theirs = id(&buy(&app, &w.client2.token, &w.service_b, "card").await);
    let list = |token: &str| {
        let token = token.to_owned();
        let app = &app;
        async move { ids(app.get("/v1/cases", &token).await.assert_status(200)) }
    };
    assert_eq!(list(&w.client.token).await, [mine.as_str()]);
    assert_eq!(list(&w.client2.token).await, [theirs.as_str()]);
    assert_eq!(list(&w.a_operator.token).await, [mine.as_str()]);
    assert_eq!(list(&w.b_operator.token).await, [theirs.as_str()]);
    assert_eq!(
        list(&w.platform.token).await,
        [theirs.as_str(), mine.as_str()]
    );
    // Agents: not before assignment, nor while approved, only in progress or suspended.
    assert!(list(&w.a_agent.token).await.is_empty());
    start_case(&app, &w, &mine).await;
    assert!(list(&w.a_agent.token).await.is_empty());
    assign_agent(&app, &w, &mine).await;
    assert_eq!(list(&w.a_agent.token).await, [mine.as_str()]);
    assert!(list(&w.a_agent2.token).await.is_empty());
    act(&app, &w.a_operator.token, &mine, "suspend")
        .await
        .assert_status(200);
    assert_eq!(list(&w.a_agent.token).await, [mine.as_str()]);
    act(&app, &w.a_operator.token, &mine, "resume")
        .await
        .assert_status(200);
    act(&app, &w.a_operator.token, &mine, "complete")
        .await
        .assert_status(200);
    assert!(list(&w.a_agent.token).await.is_empty());
    app.get(&format!("/v1/cases/{mine}"), &w.a_agent.token)
        .await
        .assert_problem(404, "not_found");
    act(&app, &w.a_operator.token, &mine, "reopen")
        .await
        .assert_status(200);

    // Every route with a foreign case id: 404, and nothing changes.
    let version = app
        .get(&format!("/v1/cases/{mine}"), &w.platform.token)
        .await
        .body["version"]
        .clone();
    let audit_rows = app.count("SELECT COUNT(*) AS n FROM audit_log");
    for token in [
        &w.client2.token,
        &w.b_operator.token,
        &w.b_admin.token,
        &w.b_agent.token,
        &w.a_agent2.token,
    ] {
        let p = format!("/v1/cases/{mine}");
        app.get(&p, token).await.assert_problem(404, "not_found");
        app.patch(&p, token, json!({"title": "Hacked title"}))
            .await
            .assert_problem(404, "not_found");
        act(&app, token, &mine, "suspend")
            .await
            .assert_problem(404, "not_found");
        act(&app, token, &mine, "cancel")
            .await
            .assert_problem(404, "not_found");
        app.post(&format!("{p}/assignment"), token, json!({"action": "take"}))
            .await
            .assert_problem(404, "not_found");
        app.get(&format!("{p}/agents"), token)
            .await
            .assert_problem(404, "not_found");
        app.put(&format!("{p}/agents"), token, json!({"agent_ids": []}))
            .await
            .assert_problem(404, "not_found");
    }
    app.get(&format!("/v1/cases/{mine}/audit"), &w.b_admin.token)
        .await
        .assert_problem(404, "not_found");
    let after = app
        .get(&format!("/v1/cases/{mine}"), &w.platform.token)
        .await;
    assert_eq!(after.body["version"], version);
    assert_eq!(after.body["title"], "Where does he go on Fridays?");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM audit_log"), audit_rows);
    // An unknown id is the same 404 as a foreign one.
    app.get(
        &format!("/v1/cases/{}", uuid::Uuid::now_v7()),
        &w.client.token,
    )
    .await
    .assert_problem(404, "not_found");
}

#[actix_web::test]
async fn list_filters_combine_and_each_narrows() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let a1 = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let a2 = id(&buy(&app, &w.client2.token, &w.service_a, "bank_transfer").await);
    let a3 = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let b1 = id(&buy(&app, &w.client.token, &w.service_b, "card").await);
    take(&app, &w.a_operator.token, &a1).await;
    app.patch(
        &format!("/v1/cases/{a3}"),
        &w.a_operator.token,
        json!({"priority": "urgent", "title": "Blue van at night"}),
    )
    .await
    .assert_status(200);
    app.patch(
        &format!("/v1/cases/{a1}"),
        &w.a_operator.token,
        json!({"title": "Sprawa Łódź"}),
    )
    .await
    .assert_status(200);
    let q = |query: &str, token: &str| {
        let path = format!("/v1/cases?{query}");
        let token = token.to_owned();
        let app = &app;
        async move { ids(app.get(&path, &token).await.assert_status(200)) }
    };
    let op = &w.a_operator.token;
    assert_eq!(
        q("status=in_approval", op).await,
        [a3.as_str(), a1.as_str()]
    );
    assert_eq!(
        q("status=in_approval&status=awaiting_payment", op).await,
        [a3.as_str(), a2.as_str(), a1.as_str()]
    );
    assert_eq!(q("assignee=me", op).await, [a1.as_str()]);
    assert_eq!(
        q(&format!("assignee={}", w.a_operator.id), op).await,
        [a1.as_str()]
    );
    assert_eq!(q("assignee=none", op).await, [a3.as_str(), a2.as_str()]);
    assert_eq!(
        q(&format!("client_id={}", w.client2.id), op).await,
        [a2.as_str()]
    );
    assert_eq!(q("priority=urgent", op).await, [a3.as_str()]);
    assert_eq!(q("q=BLUE", op).await, [a3.as_str()]);
    assert_eq!(q("q=000002", op).await, [a2.as_str()]);
    // "SPRAWA Łódź": ASCII in another case, the rest as written (PostgreSQL's lower() folds Ł).
    assert_eq!(q("q=SPRAWA%20%C5%81%C3%B3d%C5%BA", op).await, [a1.as_str()]);
    assert_eq!(
        q("q=%25", op).await,
        Vec::<String>::new(),
        "LIKE wildcards are literal"
    );
    assert_eq!(
        q(&format!("service_id={}", w.service_b), &w.platform.token).await,
        [b1.as_str()]
    );
    assert_eq!(
        q(&format!("agency_id={}", w.agency_b), &w.platform.token).await,
        [b1.as_str()]
    );
    assert_eq!(
        q(&format!("agency_id={}", w.agency_b), op).await,
        Vec::<String>::new()
    );
    assert_eq!(
        q(
            "created_from=2000-01-01T00:00:00Z&created_to=2001-01-01T00:00:00Z",
            op
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        q(
            "created_from=2000-01-01T00:00:00Z&status=awaiting_payment",
            op
        )
        .await,
        [a2.as_str()]
    );
    // `created_from` takes its instant, `created_to` stops before its own.
    app.sql(&format!(
        "UPDATE cases SET created_at = '2026-03-01 10:00:00' WHERE id = '{a2}'"
    ));
    for (from, to, found) in [
        ("2026-03-01T10:00:00Z", "2026-03-01T10:00:01Z", true),
        ("2026-03-01T10:00:00.000001Z", "2026-03-01T10:00:01Z", false),
        ("2026-02-01T00:00:00Z", "2026-03-01T10:00:00Z", false),
        ("2026-02-01T00:00:00Z", "2026-03-01T10:00:00.000001Z", true),
    ] {
        let listed = q(&format!("created_from={from}&created_to={to}"), op).await;
        let expected = if found { vec![a2.clone()] } else { vec![] };
        assert_eq!(listed, expected, "from {from} to {to}");
    }
    // Bad filters are 400 problems.
    for bad in [
        "status=lost",
        "assignee=someone",
        "created_from=yesterday",
        // Past the year 9999 in UTC: SQLite's stored text would compare it wrongly.
        "created_from=9999-12-31T23:59:59-23:59",
        // chrono's last instant, whose rounding up to the microsecond would overflow (a panic
        // and no answer before the year was checked first), and its first.
        "created_from=%2B262142-12-31T23:59:59.9999991Z",
        "created_to=-262143-01-01T00:00:00.0000001Z",
        "created_to=-0001-01-01T00:00:00Z",
        "colour=red",
        "limit=0",
        "limit=101",
        "limit=",
        "cursor=xyz",
        // Well-formed keys of other lists: a sequence number, a negative one, a storyline key.
        "cursor=MTIz",
        "cursor=LTU",
        "cursor=MV8wMTkzYTZmOC05OTk5LTdjMmQtOGUzZi00MDUxNjI3Mzg0OTU",
        // An id in a form this API never hands out: braced (it would sort after every id and
        // serve the first page again), capitals, no hyphens.
        "cursor=ezAxOTNhNmYyLTJjNGUtN2I1MS05ZDBhLTNmMWUyYTRiNWM2ZH0",
        "cursor=MDE5M0E2RjItMkM0RS03QjUxLTlEMEEtM0YxRTJBNEI1QzZE",
        "cursor=MDE5M2E2ZjIyYzRlN2I1MTlkMGEzZjFlMmE0YjVjNmQ",
        "q=",
        "q=%20%C2%A0%E3%80%80",
    ] {
        app.get(&format!("/v1/cases?{bad}"), op)
            .await
            .assert_problem(
                400,
                if bad.starts_with("cursor") {
                    "invalid_cursor"
                } else {
                    "invalid_query"
                },
            );
    }
    // Labels follow Accept-Language, else the caller's locale.
    let res = app
        .call(
            "GET",
            "/v1/cases?status=awaiting_payment",
            op,
            None,
            &[("accept-language", "pl, it;q=0.5")],
        )
        .await;
    assert_eq!(
        res.assert_status(200)["items"][0]["status_label"],
        "Oczekuje na płatność"
    );
    // The "delegated" view: what the caller handed to another operator, until it is taken.
    let assign = |case: &str, token: &str, body: Value| {
        let path = format!("/v1/cases/{case}/assignment");
        let token = token.to_owned();
        let app = &app;
        async move {
            app.post(&path, &token, body)
                .await
                .assert_status(200)
                .clone()
        }
    };
    assign(
        &a3,
        op,
        json!({"action": "delegate", "user_id": w.a_admin.id}),
    )
    .await;
    let admin = &w.a_admin.token;
    assert_eq!(q("delegated_by=me", op).await, [a3.as_str()]);
    assert!(q("delegated_by=me", admin).await.is_empty());
    assert_eq!(q("assignee=me", admin).await, [a3.as_str()]);
    assert_eq!(
        q(
            &format!("delegated_by={}", w.a_operator.id),
            &w.platform.token
        )
        .await,
        [a3.as_str()]
    );
    // From another agency the same filter finds nothing: the scope comes first.
    let theirs = format!("delegated_by={}", w.a_operator.id);
    assert!(q(&theirs, &w.b_operator.token).await.is_empty());
    assert_eq!(q("delegated_by=none", op).await, [a2.as_str(), a1.as_str()]);
    // Taken by the operator it was handed to: no longer delegated, and the log says by whom
    // it had been; the case stays with its operator, so no one hears of an assignment.
    let hook = json!({"url": "https://hooks.example/assigned", "events": ["assigned"]});
    app.post("/v1/webhooks", admin, hook)
        .await
        .assert_status(201);
    let assigned = "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE event = 'assigned'";
    assign(&a3, admin, json!({"action": "take"})).await;
    assert_eq!(app.count(assigned), 0);
    assert!(q("delegated_by=me", op).await.is_empty());
    assert_eq!(q("assignee=me", admin).await, [a3.as_str()]);
    let taken = app.texts(&format!(
        "SELECT field || ' ' || COALESCE(old_value, '-') || ' ' || COALESCE(new_value, '-') \
         AS t FROM audit_log WHERE case_id = '{a3}' AND action = 'take'"
    ));
    let was = format!("delegated_by {} -", w.a_operator.id);
    assert_eq!(taken, [Some(was)]);
    // Taken again by the same: nothing changes, nothing is logged.
    assign(&a3, admin, json!({"action": "take"})).await;
    let takes = format!("case_id = '{a3}' AND action = 'take'");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE {takes}"
        )),
        1
    );
    // Delegated once more (a move, heard of), then taken by its new operator (not one): no
    // longer delegated.
    assign(
        &a3,
        admin,
        json!({"action": "delegate", "user_id": w.a_operator.id}),
    )
    .await;
    assert_eq!(q("delegated_by=me", admin).await, [a3.as_str()]);
    assert_eq!(app.count(assigned), 1);
    assign(&a3, op, json!({"action": "take"})).await;
    assert!(q("delegated_by=me", op).await.is_empty());
    assert!(q("delegated_by=me", admin).await.is_empty());
    assert_eq!(app.count(assigned), 1);
    // Who handed a case to whom is the agency's: clients and agents are not shown it, nor
    // filter by it.
    for token in [&w.client.token, &w.a_agent.token] {
        app.get("/v1/cases?delegated_by=none", token)
            .await
            .assert_problem(403, "forbidden");
    }
    assert_eq!(q("assignee=me", op).await, [a3.as_str(), a1.as_str()]);
    app.get("/v1/cases?delegated_by=somebody", op)
        .await
        .assert_problem(400, "invalid_query");
}

#[actix_web::test]
async fn pagination_neither_skips_nor_repeats_while_cases_arrive() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(id(&buy(&app, &w.client.token, &w.service_a, "card").await));
    }
    let mut seen = Vec::new();
    let mut path = "/v1/cases?limit=3&status=in_approval".to_owned();
    loop {
        let res = app.get(&path, &w.a_operator.token).await;
        let body = res.assert_status(200).clone();
        seen.extend(ids(&body));
        // New cases arrive between pages; they are newer than the cursor and do not shift it.
        buy(&app, &w.client2.token, &w.service_a, "card").await;
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                let link = res.header("link").unwrap();
                assert!(
                    link.contains(&format!("cursor={cursor}")) && link.ends_with("rel=\"next\"")
                );
                assert!(link.contains("status=in_approval"));
                path = format!("/v1/cases?limit=3&status=in_approval&cursor={cursor}");
            }
            None => {
                assert!(res.header("link").is_none());
                break;
            }
        }
    }
    created.reverse();
    assert_eq!(seen, created);
}

#[actix_web::test]
async fn oldest_first_pages_on_by_its_link_and_newer_cases_join_the_end() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(id(&buy(&app, &w.client.token, &w.service_a, "card").await));
    }
    let mut seen = Vec::new();
    let mut path = "/v1/cases?sort=oldest&limit=2".to_owned();
    loop {
        let res = app.get(&path, &w.a_operator.token).await;
        seen.extend(ids(res.assert_status(200)));
        let Some(link) = res.header("link") else {
            break;
        };
        assert!(link.contains("sort=oldest"), "{link}");
        path = link
            .trim_start_matches('<')
            .split_once('>')
            .map(|(next, _)| next.to_owned())
            .unwrap();
        // Bought while the client pages: newer than every cursor, it comes at the end.
        if created.len() == 5 {
            created.push(id(&buy(&app, &w.client2.token, &w.service_a, "card").await));
        }
    }
    assert_eq!(seen, created);
    app.get("/v1/cases?sort=sideways", &w.a_operator.token)
        .await
        .assert_problem(400, "invalid_query");
    // A cursor is of its order: read in the other, it would page back over what was seen.
    let cursor = |path: &'static str| {
        let res = app.get(path, &w.a_operator.token);
        async move {
            res.await.assert_status(200)["next_cursor"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let upwards = cursor("/v1/cases?sort=oldest&limit=2").await;
    let downwards = cursor("/v1/cases?limit=2").await;
    for path in [
        format!("/v1/cases?cursor={upwards}"),
        format!("/v1/cases?sort=newest&cursor={upwards}"),
        format!("/v1/cases?sort=oldest&cursor={downwards}"),
    ] {
        app.get(&path, &w.a_operator.token)
            .await
            .assert_problem(400, "invalid_cursor");
    }
}

#[actix_web::test]
async fn patch_changes_title_description_priority_with_the_rules() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}");
    // The client edits title and description before acceptance; never the priority.
    let res = app
        .patch(&p, &w.client.token, json!({"title": "Better title"}))
        .await;
    assert_eq!(res.assert_status(200)["title"], "Better title");
    assert_eq!(res.header("etag"), Some("\"2\""));
    app.patch(&p, &w.client.token, json!({"priority": "high"}))
        .await
        .assert_problem(403, "forbidden");
    app.patch(&p, &w.a_agent.token, json!({"title": "Agent title"}))
        .await
        .assert_problem(404, "not_found");
    // Read-only and unknown members.
    let res = app
        .patch(
            &p,
            &w.a_operator.token,
            json!({"status": "closed", "number": "X"}),
        )
        .await;
    let errors: Vec<(&str, &str)> = res.assert_problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["pointer"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            ("/status", "read_only_field"),
            ("/number", "read_only_field")
        ]
    );
    app.patch(&p, &w.a_operator.token, json!({"colour": "red"}))
        .await
        .assert_problem(400, "unknown_field");
    app.patch(&p, &w.a_operator.token, json!({"title": "x"}))
        .await
        .assert_problem(422, "validation_failed");
    // If-Match.
    let res = app
        .call(
            "PATCH",
            &p,
            &w.a_operator.token,
            Some(json!({"priority": "high"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    res.assert_problem(412, "precondition_failed");
    // A weak tag is a tag, but never the strong version; a value that is no tag at all is the
    // client's mistake, not a stale version.
    let change = json!({"priority": "high"});
    let weak = [("if-match", "W/\"2\"")];
    let res = app.call(
        "PATCH",
        &p,
        &w.a_operator.token,
        Some(change.clone()),
        &weak,
    );
    res.await.assert_problem(412, "precondition_failed");
    for sent in ["2", "\"2", "", "\"1\" \"2\"", "\"2\",,x"] {
        let bad = [("if-match", sent)];
        let res = app.call("PATCH", &p, &w.a_operator.token, Some(change.clone()), &bad);
        let problem = res.await.assert_problem(400, "invalid_header").clone();
        assert_eq!(problem["errors"][0]["pointer"], "/If-Match", "{sent}");
    }
    let res = app
        .call(
            "PATCH",
            &p,
            &w.a_operator.token,
            Some(json!({"priority": "high", "description": "A new and longer description"})),
            &[("if-match", "\"9\", \"2\"")],
        )
        .await;
    assert_eq!(res.assert_status(200)["priority"], "high");
    assert_eq!(res.body["version"], 3);
    // One audit row per changed field, with old and new values.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND action = 'update' AND field = 'priority' AND old_value = 'normal' AND new_value = 'high'"
        )),
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND action = 'update'"
        )),
        3
    );
    // If-None-Match: 304 while unchanged.
    let res = app
        .call(
            "GET",
            &p,
            &w.a_operator.token,
            None,
            &[("if-none-match", "\"3\"")],
        )
        .await;
    assert_eq!(res.status.as_u16(), 304);
    // After acceptance the client can no longer edit; after a terminal status nobody can.
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    let res = app
        .patch(&p, &w.client.token, json!({"title": "Too late"}))
        .await;
    res.assert_problem(409, "wrong_state");
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    app.patch(&p, &w.a_operator.token, json!({"title": "Still fine"}))
        .await
        .assert_status(200);
    // Platform staff edit any case; another agency and another client see none.
    let res = app
        .patch(&p, &w.platform_staff.token, json!({"priority": "urgent"}))
        .await;
    assert_eq!(res.assert_status(200)["priority"], "urgent");
    for outsider in [&w.b_operator, &w.client2] {
        app.patch(&p, &outsider.token, json!({"title": "Not mine"}))
            .await
            .assert_problem(404, "not_found");
    }
    // Before payment the client can only read and cancel.
    let unpaid = id(&buy(&app, &w.client.token, &w.service_a, "bank_transfer").await);
    app.patch(
        &format!("/v1/cases/{unpaid}"),
        &w.client.token,
        json!({"title": "Unpaid title"}),
    )
    .await
    .assert_problem(409, "wrong_state");
    let other = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.client.token, &other, "cancel")
        .await
        .assert_status(200);
    app.patch(
        &format!("/v1/cases/{other}"),
        &w.a_operator.token,
        json!({"priority": "low"}),
    )
    .await
    .assert_problem(409, "wrong_state");
}

#[actix_web::test]
async fn take_delegate_and_agents_follow_the_agency_rules() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}");
    let res = app
        .post(
            &format!("{p}/assignment"),
            &w.a_operator.token,
            json!({"action": "take"}),
        )
        .await;
    assert_eq!(
        res.assert_status(200)["assignee"]["id"],
        w.a_operator.id.as_str()
    );
    let res = app
        .post(
            &format!("{p}/assignment"),
            &w.a_operator.token,
            json!({"action": "delegate", "user_id": w.a_admin.id}),
        )
        .await;
    assert_eq!(
        res.assert_status(200)["assignee"]["id"],
        w.a_admin.id.as_str()
    );
    // Only other active operators of the same agency (not the caller: that is a `take`); `take`
    // names nobody; clients and agents may not.
    let gone = app.create_user("gone@a.example", "agency", Some(&w.agency_a), false);
    let gone_agent = app.create_user("gone-agent@a.example", "agent", Some(&w.agency_a), false);
    for user in [&gone, &gone_agent] {
        app.deactivate_user(&w.a_admin.token, user).await;
    }
    for bad in [
        &w.a_agent.id,
        &w.b_operator.id,
        &w.client.id,
        &w.a_admin.id,
        &gone,
    ] {
        let res = app
            .post(
                &format!("{p}/assignment"),
                &w.a_admin.token,
                json!({"action": "delegate", "user_id": bad}),
            )
            .await;
        res.assert_problem(422, "invalid_assignee");
    }
    app.post(
        &format!("{p}/assignment"),
        &w.a_operator.token,
        json!({"action": "delegate"}),
    )
    .await
    .assert_problem(422, "required");
    app.post(
        &format!("{p}/assignment"),
        &w.a_operator.token,
        json!({"action": "take", "user_id": w.a_admin.id}),
    )
    .await
    .assert_problem(422, "not_allowed");
    app.post(
        &format!("{p}/assignment"),
        &w.client.token,
        json!({"action": "take"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post(
        &format!("{p}/assignment"),
        &w.platform.token,
        json!({"action": "take"}),
    )
    .await
    .assert_problem(403, "forbidden");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND field = 'assignee_id' AND action IN ('take', 'delegate')"
        )),
        2
    );
    // Agents only while in progress, only agents of the agency.
    app.put(
        &format!("{p}/agents"),
        &w.a_operator.token,
        json!({"agent_ids": [w.a_agent.id]}),
    )
    .await
    .assert_problem(409, "wrong_state");
    start_case(&app, &w, &case).await;
    for bad in [&w.b_agent.id, &w.a_operator.id, &w.client.id, &gone_agent] {
        let res = app
            .put(
                &format!("{p}/agents"),
                &w.a_operator.token,
                json!({"agent_ids": [w.a_agent.id, bad]}),
            )
            .await;
        let error = &res.assert_problem(422, "validation_failed")["errors"][0];
        assert_eq!(error["code"], "invalid_agent");
        assert_eq!(
            error["pointer"], "/agent_ids/1",
            "the position in the body as sent"
        );
    }
    app.put(
        &format!("{p}/agents"),
        &w.client.token,
        json!({"agent_ids": []}),
    )
    .await
    .assert_problem(403, "forbidden");
    let version = |res: &Response| res.header("etag").unwrap().to_owned();
    let before = version(&app.get(&p, &w.a_operator.token).await);
    // Names a database's collation orders otherwise than bytes do.
    for (agent, name) in [(&w.a_agent, "Conti"), (&w.a_agent2, "bianchi")] {
        app.patch(
            &format!("/v1/users/{}", agent.id),
            &w.platform.token,
            json!({"name": name}),
        )
        .await
        .assert_status(200);
    }
    let res = app
        .put(
            &format!("{p}/agents"),
            &w.a_operator.token,
            json!({"agent_ids": [w.a_agent.id, w.a_agent2.id, w.a_agent.id]}),
        )
        .await;
    assert_eq!(
        res.assert_status(200)["agents"].as_array().unwrap().len(),
        2
    );
    // A new set moves the case's version; the same set again does not.
    let after = version(&app.get(&p, &w.a_operator.token).await);
    let number = |tag: &str| tag.trim_matches('"').parse::<i64>().unwrap();
    assert_eq!(number(&after), number(&before) + 1);
    app.put(
        &format!("{p}/agents"),
        &w.a_operator.token,
        json!({"agent_ids": [w.a_agent2.id, w.a_agent.id]}),
    )
    .await
    .assert_status(200);
    assert_eq!(version(&app.get(&p, &w.a_operator.token).await), after);
    let res = app.get(&format!("{p}/agents"), &w.a_agent2.token).await;
    let listed = res.assert_status(200)["agents"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // The list carries the case's version, the tag `PUT` takes in `If-Match`.
    assert_eq!(res.header("etag"), Some(after.as_str()));
    let revalidated = app
        .call(
            "GET",
            &format!("{p}/agents"),
            &w.a_agent2.token,
            None,
            &[("if-none-match", after.as_str())],
        )
        .await;
    assert_eq!(revalidated.status.as_u16(), 304);
    // The card reads its agents inside its own statement: the same people, names and order.
    let card = app.get(&p, &w.client.token).await;
    assert_eq!(card.assert_status(200)["agents"], listed);
    // Its client reads the list as the card shows it; another client and agency learn nothing.
    let res = app.get(&format!("{p}/agents"), &w.client.token).await;
    assert_eq!(res.assert_status(200)["agents"], listed);
    for outsider in [&w.client2, &w.b_operator] {
        app.get(&format!("{p}/agents"), &outsider.token)
            .await
            .assert_problem(404, "not_found");
    }
    assert!(
        listed[0]["name"].as_str() <= listed[1]["name"].as_str(),
        "ordered by name: {listed}"
    );
    // Taking someone off (leaving only the first agent) removes their view of the case.
    assign_agent(&app, &w, &case).await;
    let card = app.get(&p, &w.a_operator.token).await;
    let agents = card.assert_status(200)["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["id"], w.a_agent.id.as_str());
    app.get(&p, &w.a_agent2.token)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND action = 'set_agents'"
        )),
        2
    );
    // Agents on the case may not edit it, move it, nor assign.
    app.patch(&p, &w.a_agent.token, json!({"title": "Agent title"}))
        .await
        .assert_problem(403, "forbidden");
    act(&app, &w.a_agent.token, &case, "suspend")
        .await
        .assert_problem(403, "forbidden");
    app.post(
        &format!("{p}/assignment"),
        &w.a_agent.token,
        json!({"action": "take"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // A closed case is nobody's to take or hand on; the problem lists what is still allowed.
    close(&app, &w, &case).await;
    for body in [
        json!({"action": "take"}),
        json!({"action": "delegate", "user_id": w.a_operator.id}),
    ] {
        let res = app
            .post(&format!("{p}/assignment"), &w.a_admin.token, body)
            .await;
        assert!(res.assert_problem(409, "wrong_state")["allowed_actions"].is_array());
    }
    let card = app.get(&p, &w.a_operator.token).await;
    assert_eq!(
        card.assert_status(200)["assignee"]["id"],
        w.a_admin.id.as_str()
    );
}

/// The README's rule: SHA-256 (hex) of the previous hash followed by the row's content as a
/// compact JSON array, its time with six fractional digits and no zone; rule 2 (`hash_version`)
/// adds the row's `agency_id` at the end.
fn audit_hash(row: &Value) -> String {
    use sha2::{Digest, Sha256};
    let created_at = chrono::DateTime::parse_from_rfc3339(row["created_at"].as_str().unwrap())
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let content = json!([
        row["seq"],
        row["id"],
        row["entity"],
        row["entity_id"],
        row["case_id"],
        row["action"],
        row["field"],
        row["old_value"],
        row["new_value"],
        row["actor_id"],
        row["actor_role"],
        row["request_id"],
        created_at,
    ]);
    let content = match row["hash_version"].as_i64().unwrap() {
        1 => content,
        2 => {
            let mut members = content.as_array().unwrap().clone();
            members.push(row["agency_id"].clone());
            Value::Array(members)
        }
        other => panic!("no hash rule {other}"),
    };
    let mut hasher = Sha256::new();
    hasher.update(row["prev_hash"].as_str().unwrap());
    hasher.update(content.to_string());
    format!("{:x}", hasher.finalize())
}

#[actix_web::test]
async fn the_audit_trail_is_for_admins_filtered_paginated_and_chained() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    let p = format!("/v1/cases/{case}/audit");
    for token in [
        &w.a_operator.token,
        &w.client.token,
        &w.a_agent.token,
        &w.platform_staff.token,
    ] {
        app.get(&p, token).await.assert_problem(403, "forbidden");
    }
    app.get(&p, &w.b_admin.token)
        .await
        .assert_problem(404, "not_found");
    let all = app.get(&format!("{p}?limit=100"), &w.a_admin.token).await;
    let rows = all.assert_status(200)["items"].as_array().unwrap().clone();
    // 6 for the creation; status and reason for accept and for suspend; the storyline events
    // they wrote (the required-data snapshot, the suspension's reason).
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0]["entity"], "storyline_event");
    let newest = &rows[1];
    assert_eq!(newest["action"], "suspend");
    assert_eq!(newest["actor_id"], w.a_operator.id.as_str());
    assert_eq!(newest["actor_role"], "agency");
    let status_row = rows
        .iter()
        .find(|r| r["action"] == "suspend" && r["field"] == "status")
        .unwrap();
    assert_eq!(status_row["old_value"], "approved");
    assert_eq!(status_row["new_value"], "suspended");
    for pair in rows.windows(2) {
        assert_eq!(
            pair[0]["prev_hash"], pair[1]["hash"],
            "each row chains to the one before"
        );
    }
    // Anyone can recompute a hash by the README's rule: stored chains must stay verifiable.
    for row in &rows {
        assert_eq!(row["hash"], audit_hash(row), "{row}");
    }
    // Pages of 4, no repeats, no gaps.
    let mut seen = Vec::new();
    let mut path = format!("{p}?limit=4");
    loop {
        let body = app
            .get(&path, &w.platform.token)
            .await
            .assert_status(200)
            .clone();
        seen.extend(ids(&body));
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("{p}?limit=4&cursor={c}"),
            None => break,
        }
    }
    let all_ids: Vec<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, all_ids);
    // Date range: nothing before 2000, everything since.
    let res = app
        .get(&format!("{p}?to=2000-01-01T00:00:00Z"), &w.a_admin.token)
        .await;
    assert!(
        res.assert_status(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let res = app
        .get(
            &format!("{p}?from=2000-01-01T00:00:00Z&limit=100"),
            &w.a_admin.token,
        )
        .await;
    assert_eq!(
        res.assert_status(200)["items"].as_array().unwrap().len(),
        12
    );
    // The chain verifies, and a tampered row is found.
    let res = app.get("/v1/audit/verify", &w.platform.token).await;
    assert_eq!(res.assert_status(200)["intact"], true);
    assert!(res.body["rows_checked"].as_i64().unwrap() >= 12);
    // Platform admins only: not the platform's other staff, not an agency's admin.
    for token in [&w.platform_staff.token, &w.a_admin.token] {
        app.get("/v1/audit/verify", token)
            .await
            .assert_problem(403, "forbidden");
    }
    let verify = || async {
        let res = app.get("/v1/audit/verify", &w.platform.token).await;
        res.assert_status(200).clone()
    };
    let value = match &app.texts("SELECT new_value AS t FROM audit_log WHERE seq = 5")[0] {
        Some(value) => format!("'{value}'"),
        None => "NULL".to_owned(),
    };
    app.sql("UPDATE audit_log SET new_value = 'closed' WHERE seq = 5");
    let report = verify().await;
    assert_eq!(report["intact"], false);
    assert_eq!(report["first_broken_seq"], 5);
    app.sql(&format!(
        "UPDATE audit_log SET new_value = {value} WHERE seq = 5"
    ));
    assert_eq!(verify().await["intact"], true);
    // Rows taken out: the newest (the head still names it), then one before it.
    let last = app.count("SELECT MAX(seq) AS n FROM audit_log");
    app.sql(&format!("DELETE FROM audit_log WHERE seq = {last}"));
    let report = verify().await;
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["first_broken_seq"], last);
    assert_eq!(report["rows_checked"], last - 1);
    app.sql("DELETE FROM audit_log WHERE seq = 7");
    let report = verify().await;
    assert_eq!(report["first_broken_seq"], 7, "{report}");
}

/// DESIGN: the client's identity (document type and number, account number) is shown to
/// agency and platform users only: the card of a client's case carries it exactly for the
/// agency's staff and platform staff, and no `client` at all for the client or an agent on it.
#[actix_web::test]
async fn the_clients_identity_is_on_the_card_for_agency_and_platform_only() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let identity = json!({"id_document_type": "passport", "id_document_number": "YA1234567",
                          "account_number": "IT60X0542811101000000123456"});
    app.patch(
        &format!("/v1/users/{}", w.client.id),
        &w.platform.token,
        identity.clone(),
    )
    .await
    .assert_status(200);
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    let card = |token: &str| {
        let (app, path, token) = (&app, format!("/v1/cases/{case}"), token.to_owned());
        async move { app.get(&path, &token).await.assert_status(200).clone() }
    };
    for token in [&w.a_operator.token, &w.platform_staff.token] {
        let seen = card(token).await;
        assert_eq!(seen["client"]["identity"], identity);
        assert_eq!(seen["client"]["id"], w.client.id.as_str());
    }
    for token in [&w.client.token, &w.a_agent.token] {
        assert_eq!(card(token).await["client"], Value::Null);
    }
}

/// Every row of the log, oldest first, as platform admins read it.
async fn whole_audit_log<S>(app: &crate::helpers::TestApp<S>, token: &str) -> Vec<Value>
where
    S: AppService,
{
    let mut rows = app.every_item("/v1/audit?limit=100", token).await;
    rows.reverse();
    rows
}

/// Rule 2 hashes the agency whose admins read a row: a row moved into another agency's view
/// breaks the chain. Rows hashed by rule 1 (written before migration 46, or by a node of the
/// previous version during a rolling deploy) still verify, and the chain goes on past them.
#[actix_web::test]
async fn the_audit_hash_covers_whose_agency_reads_the_row() {
    let app = spawn().await;
    let w = World::new(&app).await;
    // A creation, a message and a transition name their case's agency; a request's rows are
    // given it at the append.
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    crate::world::post_message(&app, &w.client.token, &case, "Hello").await;
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    app.post(
        &format!("/v1/cases/{case}/requests"),
        &w.a_operator.token,
        json!({"kind": "question", "prompt": "Since when?"}),
    )
    .await
    .assert_status(201);
    let verify = || async {
        let res = app.get("/v1/audit/verify", &w.platform.token).await;
        res.assert_status(200).clone()
    };
    let rows = whole_audit_log(&app, &w.platform.token).await;
    for row in &rows {
        assert_eq!(row["hash_version"], 2, "{row}");
        assert_eq!(row["hash"], audit_hash(row), "{row}");
    }
    let of_case: Vec<&Value> = rows
        .iter()
        .filter(|r| r["case_id"] == case.as_str())
        .collect();
    for entity in ["case", "message", "request"] {
        assert!(of_case.iter().any(|r| r["entity"] == entity), "{entity}");
    }
    assert!(
        of_case
            .iter()
            .all(|r| r["agency_id"] == w.agency_a.as_str())
    );
    assert_eq!(verify().await["intact"], true);

    // Moved into agency B's view: B's admin would read it, and the chain says so.
    let moved = of_case[2]["seq"].as_i64().unwrap();
    let agency_of = |seq: i64, agency: &str| {
        app.sql(&format!(
            "UPDATE audit_log SET agency_id = '{agency}' WHERE seq = {seq}"
        ))
    };
    agency_of(moved, &w.agency_b);
    let b_reads = app
        .get(&format!("/v1/audit?case_id={case}"), &w.b_admin.token)
        .await;
    assert_eq!(
        b_reads.assert_status(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let report = verify().await;
    assert_eq!(report["intact"], false);
    assert_eq!(report["first_broken_seq"], moved);
    agency_of(moved, &w.agency_a);
    assert_eq!(verify().await["intact"], true);
    // A rule no server has is no rule.
    app.sql(&format!(
        "UPDATE audit_log SET hash_version = 3 WHERE seq = {moved}"
    ));
    assert_eq!(verify().await["first_broken_seq"], moved);
    app.sql(&format!(
        "UPDATE audit_log SET hash_version = 2 WHERE seq = {moved}"
    ));
    assert_eq!(verify().await["intact"], true);

    // The same log as rule 1 hashed it: each row rehashed without its agency, in order.
    let mut prev = "0".repeat(64);
    for row in &rows {
        let mut old = row.clone();
        old["hash_version"] = 1.into();
        old["prev_hash"] = prev.clone().into();
        let hash = audit_hash(&old);
        app.sql(&format!(
            "UPDATE audit_log SET hash_version = 1, prev_hash = '{prev}', hash = '{hash}' \
             WHERE seq = {}",
            row["seq"]
        ));
        prev = hash;
    }
    app.sql(&format!(
        "UPDATE audit_head SET hash = '{prev}' WHERE id = 1"
    ));
    let report = verify().await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["rows_checked"], rows.len());
    // What rule 1 missed: the same move goes unnoticed there.
    agency_of(moved, &w.agency_b);
    assert_eq!(verify().await["intact"], true);
    agency_of(moved, &w.agency_a);
    // A node of the previous version, during a rolling deploy, appends as it always did: its
    // insert names no `hash_version`, and the column's default must be its rule.
    let old_node = json!({
        "seq": rows.len() + 1, "id": uuid::Uuid::now_v7().to_string(), "entity": "case",
        "entity_id": case, "case_id": case, "action": "old_node", "field": null,
        "old_value": null, "new_value": null, "actor_id": null, "actor_role": null,
        "request_id": null, "created_at": "2026-12-07T10:00:00Z", "prev_hash": prev,
        "hash_version": 1,
    });
    let hash = audit_hash(&old_node);
    app.sql(&format!(
        "UPDATE audit_head SET seq = seq + 1, hash = '{hash}' WHERE id = 1; \
         INSERT INTO audit_log (id, seq, entity, entity_id, case_id, action, created_at, \
         prev_hash, hash, agency_id) VALUES ('{}', {}, 'case', '{case}', '{case}', 'old_node', \
         '2026-12-07 10:00:00', '{prev}', '{hash}', '{}')",
        old_node["id"].as_str().unwrap(),
        rows.len() + 1,
        w.agency_a
    ));
    let prev = hash;
    let report = verify().await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["rows_checked"], rows.len() + 1);
    let rows = whole_audit_log(&app, &w.platform.token).await;
    assert_eq!(rows.last().unwrap()["hash_version"], 1);

    // New rows follow rule 2 after rule 1's, in one chain.
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    let now = whole_audit_log(&app, &w.platform.token).await;
    let added = &now[rows.len()..];
    assert!(!added.is_empty());
    assert_eq!(added[0]["prev_hash"], prev.as_str());
    for row in added {
        assert_eq!(row["hash_version"], 2, "{row}");
        assert_eq!(row["agency_id"], w.agency_a.as_str());
        assert_eq!(row["hash"], audit_hash(row), "{row}");
    }
    let report = verify().await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["rows_checked"], now.len());
}

#[actix_web::test]
async fn labels_come_in_four_languages() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    for (lang, status, action) in [
        ("it-IT", "In approvazione", "Accetta"),
        ("en;q=0.2, es-MX;q=0.8, xx;q=NaN", "En revisión", "Aceptar"),
        ("es", "En revisión", "Aceptar"),
        ("pl", "W weryfikacji", "Przyjmij"),
        ("fr, de;q=0.5", "Under review", "Accept"),
    ] {
        let res = app
            .call(
                "GET",
                &format!("/v1/cases/{case}"),
                &w.a_operator.token,
                None,
                &[("accept-language", lang)],
            )
            .await;
        let body = res.assert_status(200);
        assert_eq!(body["status_label"], status, "{lang}");
        assert_eq!(body["allowed_actions"][0]["label"], action, "{lang}");
        let wf = app
            .call(
                "GET",
                "/v1/workflow",
                &w.client.token,
                None,
                &[("accept-language", lang)],
            )
            .await;
        assert_eq!(wf.assert_status(200)["states"][2]["label"], status);
    }
    // The writes that answer a card label it in the language asked for too.
    let italian = [("accept-language", "it")];
    let bought = json!({"service_id": w.service_a, "payment_method": "card",
                        "title": "Il venerdì", "description": "Dove va il venerdì?"});
    let res = app
        .call("POST", "/v1/cases", &w.client.token, Some(bought), &italian)
        .await;
    assert_eq!(res.assert_status(201)["status_label"], "In approvazione");
    let take = Some(json!({"action": "take"}));
    let path = format!("/v1/cases/{case}/assignment");
    let res = app
        .call("POST", &path, &w.a_operator.token, take, &italian)
        .await;
    assert_eq!(
        res.assert_status(200)["allowed_actions"][0]["label"],
        "Accetta"
    );
}

#[actix_web::test]
async fn localized_answers_vary_by_accept_language_and_others_do_not() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let language = "accept-language".to_owned();
    let card_path = format!("/v1/cases/{case}");
    let card = app.get(&card_path, &w.client.token).await;
    card.assert_status(200);
    assert!(
        card.varies().contains(&language),
        "card: {:?}",
        card.varies()
    );
    // The 304 names what the 200 would have varied by (RFC 9110 15.4.5).
    let tag = card.header("etag").unwrap().to_owned();
    let unchanged = app
        .call(
            "GET",
            &card_path,
            &w.client.token,
            None,
            &[("if-none-match", &tag)],
        )
        .await;
    assert_eq!(unchanged.status.as_u16(), 304);
    assert!(unchanged.varies().contains(&language));
    // An answer to a token is that token's: kept only to be revalidated, and apart from
    // another token's; one without an `ETag` is not kept at all.
    let authorization = "authorization".to_owned();
    for res in [&card, &unchanged] {
        assert_eq!(res.header("cache-control"), Some("private, no-cache"));
        assert!(res.varies().contains(&authorization));
    }
    let anonymous = app
        .send(actix_web::test::TestRequest::get().uri("/health/live"))
        .await;
    assert_eq!(anonymous.header("cache-control"), None);
    assert!(!anonymous.varies().contains(&authorization));
    for path in ["/v1/cases?status=in_approval", "/v1/workflow"] {
        let res = app.get(path, &w.client.token).await;
        res.assert_status(200);
        assert_eq!(res.header("cache-control"), Some("no-store"), "{path}");
        assert!(res.varies().contains(&authorization), "{path}");
        assert!(
            res.varies().contains(&language),
            "{path}: {:?}",
            res.varies()
        );
    }
    // A versioned resource without labels keeps one representation.
    let service = app
        .get(&format!("/v1/services/{}", w.service_a), &w.client.token)
        .await;
    service.assert_status(200);
    assert!(
        !service.varies().contains(&language),
        "{:?}",
        service.varies()
    );
}

#[actix_web::test]
async fn racing_retries_with_one_key_create_one_case() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let body = json!({"service_id": w.service_a, "payment_method": "card", "title": "Title", "description": "Long enough text"});
    let key = [("idempotency-key", "race-1")];
    let results = join_all((0..6).map(|_| {
        app.call(
            "POST",
            "/v1/cases",
            &w.client.token,
            Some(body.clone()),
            &key,
        )
    }))
    .await;
    let mut created = HashSet::new();
    for res in &results {
        match res.status.as_u16() {
            201 => {
                created.insert(res.body["id"].as_str().unwrap().to_owned());
            }
            _ => {
                res.assert_problem(409, "idempotency_key_in_use");
            }
        }
    }
    assert_eq!(created.len(), 1, "every success is the same case");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM cases"), 1);
    assert_eq!(app.open_case_counts_off(), 0, "replays count nothing");
    // Services take keys too.
    let service =
        json!({"title": "Tracking", "description": "GPS", "price_minor": 1, "currency": "EUR"});
    let key = [("idempotency-key", "svc-1")];
    let first = app
        .call(
            "POST",
            "/v1/services",
            &w.a_admin.token,
            Some(service.clone()),
            &key,
        )
        .await;
    let again = app
        .call(
            "POST",
            "/v1/services",
            &w.a_admin.token,
            Some(service),
            &key,
        )
        .await;
    assert_eq!(
        first.assert_status(201)["id"],
        again.assert_status(201)["id"]
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
}

#[actix_web::test]
async fn hostile_headers_and_blank_text_get_clear_answers() {
    let app = spawn().await;
    let w = World::new(&app).await;
    // Weights that are not numbers, and more entries than any browser sends: labels still come.
    let header = (0..40)
        .map(|i| format!("x{i};q=NaN"))
        .chain(["pl;q=0.5".to_owned(), "zz;q=inf".to_owned()])
        .collect::<Vec<_>>()
        .join(", ");
    let res = app
        .call(
            "GET",
            "/v1/workflow",
            &w.client.token,
            None,
            &[("accept-language", header.as_str())],
        )
        .await;
    assert_eq!(
        res.assert_status(200)["states"][0]["label"],
        "Oczekuje na płatność"
    );
    // A title of blanks is empty once trimmed: 422, nothing created.
    let res = app
        .post(
            "/v1/cases",
            &w.client.token,
            json!({"service_id": w.service_a, "payment_method": "card", "title": "      ", "description": "Long enough text"}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["pointer"],
        "/title"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM cases"), 0);
}

/// The card is read as the database has the caller now, not as their token claimed them when
/// it was issued: their locale, role and agency, and whether they and their agency are active.
/// (A card read by the token's claims alone would fail each check below.)
#[actix_web::test]
async fn the_card_follows_the_callers_row_not_their_tokens_claims() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case_a = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let case_b = id(&buy(&app, &w.client2.token, &w.service_b, "card").await);
    let card = |token: &str, case: &str| {
        let (token, path) = (token.to_owned(), format!("/v1/cases/{case}"));
        let app = &app;
        async move { app.get(&path, &token).await }
    };

    // Labels in the caller's own locale, read with the card.
    app.patch(
        &format!("/v1/users/{}", w.a_operator.id),
        &w.platform.token,
        json!({"locale": "it"}),
    )
    .await
    .assert_status(200);
    let seen = card(&w.a_operator.token, &case_a).await;
    assert_eq!(seen.assert_status(200)["status_label"], "In approvazione");

    // Changed behind the token's back, straight in the database.
    let operator_set = |assignment: String| {
        app.sql(&format!(
            "UPDATE users SET {assignment} WHERE id = '{}'",
            w.a_operator.id
        ))
    };
    // Moved to agency B: B's case, not A's.
    operator_set(format!("agency_id = '{}'", w.agency_b));
    card(&w.a_operator.token, &case_a)
        .await
        .assert_problem(404, "not_found");
    let seen = card(&w.a_operator.token, &case_b).await;
    assert_eq!(seen.assert_status(200)["id"], case_b.as_str());
    operator_set(format!("agency_id = '{}'", w.agency_a));

    // Made an agent: only the cases they work.
    operator_set("role = 'agent'".into());
    card(&w.a_operator.token, &case_a)
        .await
        .assert_problem(404, "not_found");
    operator_set("role = 'agency'".into());
    card(&w.a_operator.token, &case_a).await.assert_status(200);

    // Deactivated, or of a deactivated agency: the token is refused, not the case.
    app.deactivate_user(&w.platform.token, &w.client.id).await;
    card(&w.client.token, &case_a)
        .await
        .assert_problem(401, "invalid_token");
    app.patch(
        &format!("/v1/agencies/{}", w.agency_a),
        &w.platform.token,
        json!({"active": false}),
    )
    .await
    .assert_status(200);
    card(&w.a_operator.token, &case_a)
        .await
        .assert_problem(401, "invalid_token");
    // Nobody's token changed what anyone else sees.
    let seen = card(&w.client2.token, &case_b).await;
    assert_eq!(seen.assert_status(200)["id"], case_b.as_str());
}

/// Timestamps come back as stored, to the microsecond, whichever layout the row holds: the one
/// diesel writes (read by `db::timestamps`' own items), and others (read by diesel's formats).
#[actix_web::test]
async fn timestamps_read_back_exactly_in_every_stored_layout() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    app.sql(&format!(
        "UPDATE cases SET created_at = '2026-11-20 10:00:00.123456', \
         updated_at = '2026-11-20 10:00:01', closed_at = '2026-11-20T10:00:02.5' \
         WHERE id = '{case}'"
    ));
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    let card = card.assert_status(200);
    assert_eq!(card["created_at"], "2026-11-20T10:00:00.123456Z");
    assert_eq!(card["updated_at"], "2026-11-20T10:00:01Z");
    assert_eq!(card["closed_at"], "2026-11-20T10:00:02.500Z");
    let list = app.get("/v1/cases", &w.client.token).await;
    let row = &list.assert_status(200)["items"][0];
    assert_eq!(row["created_at"], "2026-11-20T10:00:00.123456Z");
    assert_eq!(row["updated_at"], "2026-11-20T10:00:01Z");
}

/// Expired keys are swept whoever's they are: a user who sends no further keyed request keeps
/// none past its lifetime (their own requests only clear their own).
#[actix_web::test]
async fn the_sweep_forgets_every_expired_key_and_no_live_one() {
    let app = spawn().await;
    let w = World::new(&app).await;
    for (token, key) in [(&w.client.token, "old-1"), (&w.client2.token, "new-1")] {
        let body = json!({"service_id": w.service_a, "payment_method": "card", "title": "Title", "description": "Long enough text"});
        app.call(
            "POST",
            "/v1/cases",
            token,
            Some(body),
            &[("idempotency-key", key)],
        )
        .await
        .assert_status(201);
    }
    app.sql("UPDATE idempotency_keys SET created_at = '2026-01-01 00:00:00' WHERE key = 'old-1'");
    assert_eq!(dossier::housekeeping::sweep(&app.state).await.unwrap(), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM idempotency_keys WHERE key = 'new-1'"),
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM idempotency_keys"), 1);
    assert_eq!(dossier::housekeeping::sweep(&app.state).await.unwrap(), 0);
}

/// Platform staff read every case but write none of the agency's parts (the form's fields,
/// requests to the client, the agents) nor the client's (the form's values, answers).
#[actix_web::test]
async fn the_platform_reads_a_case_but_writes_neither_sides_parts() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}");
    let audit_rows = format!("SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}'");
    let platform = [&w.platform.token, &w.platform_staff.token];
    // While in approval the form is open to both sides, but not to the platform.
    let rows = app.count(&audit_rows);
    let fields = json!({"fields": [{"key": "subject", "label": "Subject", "type": "text"}]});
    for token in platform {
        app.get(&p, token).await.assert_status(200);
        app.put(&format!("{p}/required-data/fields"), token, fields.clone())
            .await
            .assert_problem(403, "forbidden");
        app.patch(
            &format!("{p}/required-data/values"),
            token,
            json!({"values": {}}),
        )
        .await
        .assert_problem(403, "forbidden");
    }
    assert_eq!(app.count(&audit_rows), rows);
    let form = app
        .get(&format!("{p}/required-data"), &w.a_operator.token)
        .await;
    assert_eq!(form.assert_status(200)["fields"], json!([]));

    start_case(&app, &w, &case).await;
    let question = json!({"kind": "question", "prompt": "Does he own a car?"});
    let request = id(app
        .post(
            &format!("{p}/requests"),
            &w.a_operator.token,
            question.clone(),
        )
        .await
        .assert_status(201));
    let rows = app.count(&audit_rows);
    let before = app.get(&p, &w.a_operator.token).await;
    for token in platform {
        app.post(&format!("{p}/requests"), token, question.clone())
            .await
            .assert_problem(403, "forbidden");
        let answer = format!("{p}/requests/{request}/answer");
        app.post(&answer, token, json!({"text": "Yes"}))
            .await
            .assert_problem(403, "forbidden");
        app.post(&format!("{p}/requests/{request}/cancel"), token, json!({}))
            .await
            .assert_problem(403, "forbidden");
        app.put(
            &format!("{p}/agents"),
            token,
            json!({"agent_ids": [w.a_agent.id]}),
        )
        .await
        .assert_problem(403, "forbidden");
    }
    assert_eq!(app.count(&audit_rows), rows);
    let card = app.get(&p, &w.a_operator.token).await;
    assert_eq!(card.header("etag"), before.header("etag"));
    assert_eq!(card.body["agents"], json!([]));
    let open = &card.body["open_requests"];
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["id"], request.as_str());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM client_requests WHERE case_id = '{case}'"
        )),
        1
    );
}

/// Agents are assigned only while the case is in progress: not while it is suspended, nor once
/// it is completed (the workflow says so too), and a refused assignment changes nothing.
#[actix_web::test]
async fn agents_are_assigned_only_while_in_progress() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let workflow = app.get("/v1/workflow", &w.a_operator.token).await;
    let assignable: Vec<String> = workflow.assert_status(200)["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["agents_assignable"] == true)
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(assignable, ["in_progress"]);
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}");
    start_case(&app, &w, &case).await;
    let agents = json!({"agent_ids": [w.a_agent.id]});
    let notified = format!(
        "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{}'",
        w.a_agent.id
    );
    for action in ["suspend", "resume", "complete"] {
        act(&app, &w.a_operator.token, &case, action)
            .await
            .assert_status(200);
        if action == "resume" {
            continue;
        }
        let before = app.get(&p, &w.a_operator.token).await;
        let audit_rows = format!("SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}'");
        let rows = app.count(&audit_rows);
        let notifications = app.count(&notified);
        app.put(&format!("{p}/agents"), &w.a_operator.token, agents.clone())
            .await
            .assert_problem(409, "wrong_state");
        let card = app.get(&p, &w.a_operator.token).await;
        assert_eq!(card.header("etag"), before.header("etag"), "after {action}");
        assert_eq!(card.body["agents"], json!([]));
        assert_eq!(app.count(&audit_rows), rows);
        assert_eq!(app.count(&notified), notifications);
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM case_agents WHERE case_id = '{case}'"
            )),
            0
        );
    }
}
