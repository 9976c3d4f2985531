//! The services catalog: who sells, who sees, what a template may hold.

use serde_json::json;

use crate::helpers::spawn;
use crate::world::{World, id};

#[actix_web::test]
async fn agency_admins_sell_and_everyone_browses_the_active_catalog() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let res = app
        .post(
            "/v1/services",
            &w.a_admin.token,
            json!({"title": "Tracking", "description": "GPS", "price_minor": 99900, "currency": "EUR", "default_priority": "high",
                   "required_data_template": [{"key": "plate", "label": "Plate", "type": "text", "required": true}]}),
        )
        .await;
    let body = res.assert_status(201).clone();
    assert_eq!(body["agency"]["name"], "Agenzia Rossi");
    assert_eq!(body["price_minor"], 99900);
    assert_eq!(body["default_priority"], "high");
    assert_eq!(body["required_data_template"][0]["key"], "plate");
    let tracking = id(&body);
    // Operators, agents, clients and platform staff do not sell.
    let input = json!({"title": "X", "description": "Y", "price_minor": 1, "currency": "EUR"});
    for token in [
        &w.a_operator.token,
        &w.a_agent.token,
        &w.client.token,
        &w.platform.token,
    ] {
        app.post("/v1/services", token, input.clone())
            .await
            .assert_problem(403, "forbidden");
    }
    // Templates are checked.
    let res = app
        .post(
            "/v1/services",
            &w.a_admin.token,
            json!({"title": "X", "description": "Y", "price_minor": -1, "currency": "euro",
                   "required_data_template": [
                       {"key": "Bad Key", "label": "L", "type": "text"},
                       {"key": "c", "label": "C", "type": "choice"},
                       {"key": "c", "label": "D", "type": "text", "options": ["a"]}]}),
        )
        .await;
    let codes: Vec<&str> = res.assert_problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["currency", "range"]);
    let res = app
        .post(
            "/v1/services",
            &w.a_admin.token,
            json!({"title": "X", "description": "Y", "price_minor": 1, "currency": "EUR",
                   "required_data_template": [
                       {"key": "Bad Key", "label": "L", "type": "text"},
                       {"key": "c", "label": "C", "type": "choice"},
                       {"key": "c", "label": "D", "type": "text", "options": ["a"]}]}),
        )
        .await;
    let codes: Vec<&str> = res.assert_problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["invalid_key", "required", "duplicate_key", "not_allowed"]
    );

    // Deactivated: gone from the catalog for clients and other agencies, still there for its own.
    let res = app
        .call(
            "PATCH",
            &format!("/v1/services/{tracking}"),
            &w.a_admin.token,
            Some(json!({"active": false})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(res.assert_status(200)["active"], false);
    let listed = |token: &str| {
        let token = token.to_owned();
        let app = &app;
        async move {
            app.get("/v1/services", &token).await.assert_status(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["title"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(&w.client.token).await,
        ["Background check", "Surveillance"]
    );
    assert_eq!(
        listed(&w.b_operator.token).await,
        ["Background check", "Surveillance"]
    );
    assert_eq!(
        listed(&w.a_operator.token).await,
        ["Tracking", "Background check", "Surveillance"]
    );
    assert_eq!(
        listed(&w.platform.token).await,
        ["Tracking", "Background check", "Surveillance"]
    );
    app.get(&format!("/v1/services/{tracking}"), &w.client.token)
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/v1/services/{tracking}"), &w.a_operator.token)
        .await
        .assert_status(200);
    app.get(&format!("/v1/services/{tracking}"), &w.a_agent.token)
        .await
        .assert_problem(404, "not_found");
    // Another agency's admin cannot change it; a stale If-Match is 412.
    app.patch(
        &format!("/v1/services/{tracking}"),
        &w.b_admin.token,
        json!({"active": true}),
    )
    .await
    .assert_problem(404, "not_found");
    app.call(
        "PATCH",
        &format!("/v1/services/{tracking}"),
        &w.a_admin.token,
        Some(json!({"active": true})),
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_problem(412, "precondition_failed");
    // Services of a deactivated agency leave the catalog.
    app.patch(
        &format!("/v1/agencies/{}", w.agency_b),
        &w.platform.token,
        json!({"active": false}),
    )
    .await
    .assert_status(200);
    assert_eq!(listed(&w.client.token).await, ["Surveillance"]);
    // Audit rows for the creation, a row per member it set, and for the change.
    let rows = app.texts(&format!(
        "SELECT action || ' ' || field || ' ' || COALESCE(new_value, '-') AS t FROM audit_log \
         WHERE entity = 'service' AND entity_id = '{tracking}' AND field <> 'description' \
         AND field <> 'required_data_template' ORDER BY seq"
    ));
    let rows: Vec<String> = rows.into_iter().map(Option::unwrap).collect();
    assert_eq!(
        rows,
        [
            "create title Tracking",
            "create price_minor 99900",
            "create currency EUR",
            "create active true",
            "create default_priority high",
            "update active false",
        ]
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'service' AND entity_id = '{tracking}'")),
        8
    );
}

/// JSON Schema counts `150000.0` as an integer (Python's `json` writes floats that way), so the
/// price takes it; a fraction or a number past 64 bits is refused and writes nothing.
#[actix_web::test]
async fn prices_are_whole_numbers_however_they_are_written() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let res = app
        .post(
            "/v1/services",
            &w.a_admin.token,
            json!({"title": "Tracking", "description": "GPS", "price_minor": 150000.0, "currency": "EUR"}),
        )
        .await;
    let body = res.assert_status(201).clone();
    assert_eq!(body["price_minor"], json!(150000));
    let tracking = id(&body);
    let services = || app.count("SELECT COUNT(*) AS n FROM services");
    let before = services();
    // 2^63 as a float is one past i64::MAX: refused as a value, not clamped to i64::MAX.
    for price in [
        json!(150000.5),
        json!(1e30),
        json!(9_223_372_036_854_775_808.0),
        json!("150000"),
    ] {
        let res = app
            .post(
                "/v1/services",
                &w.a_admin.token,
                json!({"title": "Bad", "description": "GPS", "price_minor": price, "currency": "EUR"}),
            )
            .await;
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], "/price_minor", "{price}");
        assert_eq!(problem["errors"][0]["code"], "invalid_value", "{price}");
    }
    assert_eq!(services(), before);

    let path = format!("/v1/services/{tracking}");
    let res = app
        .patch(&path, &w.a_admin.token, json!({"price_minor": 180000.0}))
        .await;
    assert_eq!(res.assert_status(200)["price_minor"], json!(180000));
    app.patch(&path, &w.a_admin.token, json!({"price_minor": 0.25}))
        .await
        .assert_problem(422, "validation_failed");
    let res = app.get(&path, &w.a_admin.token).await;
    assert_eq!(res.assert_status(200)["price_minor"], json!(180000));
    assert_eq!(res.body["version"], json!(2));
}

#[actix_web::test]
async fn agencies_take_idempotency_keys() {
    let app = spawn().await;
    let admin = app.admin().await;
    let body = json!({"name": "Rossi"});
    let key = [("idempotency-key", "agency-1")];
    let first = app
        .call("POST", "/v1/agencies", &admin, Some(body.clone()), &key)
        .await;
    let again = app
        .call("POST", "/v1/agencies", &admin, Some(body), &key)
        .await;
    assert_eq!(
        first.assert_status(201)["id"],
        again.assert_status(201)["id"]
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    app.call(
        "POST",
        "/v1/agencies",
        &admin,
        Some(json!({"name": "Other"})),
        &key,
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    // Without a key the name rule still answers.
    app.post("/v1/agencies", &admin, json!({"name": "Rossi"}))
        .await
        .assert_problem(409, "agency_name_taken");
}

/// A create request looks its caller up inside its write, before any replay: a retry is
/// authorized again. The agency admin whose flag was taken away gets 403 for a retry of the
/// service they created, and the client deactivated since buying gets 401 for a retry of the
/// purchase, not the first answers again. Neither retry writes anything.
#[actix_web::test]
async fn a_retry_is_authorized_again_before_it_is_replayed() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let service =
        json!({"title": "Tracking", "description": "GPS", "price_minor": 99900, "currency": "EUR"});
    let purchase = json!({"service_id": w.service_a, "payment_method": "card", "title": "Title", "description": "Long enough text"});
    let key = [("idempotency-key", "retry-1")];
    app.call(
        "POST",
        "/v1/services",
        &w.a_admin.token,
        Some(service.clone()),
        &key,
    )
    .await
    .assert_status(201);
    app.call(
        "POST",
        "/v1/cases",
        &w.client.token,
        Some(purchase.clone()),
        &key,
    )
    .await
    .assert_status(201);
    app.patch(
        &format!("/v1/users/{}", w.a_admin.id),
        &w.platform.token,
        json!({"admin": false}),
    )
    .await
    .assert_status(200);
    app.deactivate_user(&w.platform.token, &w.client.id).await;
    let written = ["services", "cases", "audit_log", "idempotency_keys"];
    let before = app.rows_in(&written);

    let res = app
        .call(
            "POST",
            "/v1/services",
            &w.a_admin.token,
            Some(service),
            &key,
        )
        .await;
    res.assert_problem(403, "forbidden");
    assert_eq!(res.header("idempotent-replayed"), None);
    let res = app
        .call("POST", "/v1/cases", &w.client.token, Some(purchase), &key)
        .await;
    res.assert_problem(401, "invalid_token");
    assert_eq!(res.header("idempotent-replayed"), None);
    assert_eq!(app.rows_in(&written), before);
}
