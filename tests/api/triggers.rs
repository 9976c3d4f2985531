//! Agencies' own triggers: who writes them, what is refused, and what they do on the events of
//! their agency's cases (each in the rule log and the audit trail, none set off by another).

use serde_json::{Value, json};

use crate::helpers::{AppService, TestApp, spawn};
use crate::world::{LONG_PAST, World, backdate_clocks, buy, id, start_case, take};

/// How many rows `query`'s WHERE clause finds in `table`.
fn rows<S>(app: &TestApp<S>, table: &str, filter: &str) -> i64
where
    S: AppService,
{
    app.count(&format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}"))
}

#[actix_web::test]
async fn triggers_are_their_agency_admins_and_bad_ones_are_refused() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let good = json!({
        "name": "Card cases to the operator",
        "event": "case_created",
        "conditions": [{"field": "payment_method", "op": "in", "values": ["card"]}],
        "actions": [{"type": "assign", "user_id": w.a_operator.id}],
    });

    let webhook = app
        .post(
            "/v1/webhooks",
            &w.b_admin.token,
            json!({"url": "https://crm.garcia.example/hooks", "events": ["assigned"]}),
        )
        .await
        .assert_status(201)
        .clone();

    // Nobody but an agency admin writes one; a refused body writes nothing.
    let before = app.rows_in(&["triggers", "audit_log"]);
    for token in [
        &w.a_operator.token,
        &w.a_agent.token,
        &w.client.token,
        &w.platform.token,
        &w.platform_staff.token,
    ] {
        let res = app.post("/v1/triggers", token, good.clone()).await;
        res.assert_problem(403, "forbidden");
    }
    // Nor reads them, save platform admins.
    for token in [
        &w.a_operator.token,
        &w.a_agent.token,
        &w.client.token,
        &w.platform_staff.token,
    ] {
        let res = app.get("/v1/triggers", token).await;
        res.assert_problem(403, "forbidden");
    }
    // The spec offers the events a trigger runs on, and no other.
    let spec: Value = serde_json::from_str(&dossier::openapi::spec_json()).unwrap();
    for body in ["CreateTrigger", "UpdateTrigger"] {
        let events = &spec["components"]["schemas"][body]["properties"]["event"]["enum"];
        let events: Vec<&str> = events
            .as_array()
            .unwrap()
            .iter()
            // A change's `null` leaves the event as it was.
            .filter(|e| !(body == "UpdateTrigger" && e.is_null()))
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(events.len(), 11, "{body}: {events:?}");
        assert!(events.contains(&"status_changed") && !events.contains(&"mentioned"));
        assert!(!events.contains(&"ticket_opened"), "{body}");
    }
    let with = |member: &str, value: Value| {
        let mut body = good.clone();
        body[member] = value;
        body
    };
    for (body, pointer) in [
        (with("event", json!("ticket_opened")), "/event"),
        (with("event", json!("mentioned")), "/event"),
        (with("event", json!("gossip")), "/event"),
        (
            with(
                "conditions",
                json!([{"field": "status", "op": "in", "values": ["lost"]}]),
            ),
            "/conditions/0/values/0",
        ),
        (
            with("conditions", json!([{"field": "priority", "op": "in"}])),
            "/conditions/0/values",
        ),
        (
            with("conditions", json!([{"field": "status", "op": "empty"}])),
            "/conditions/0/op",
        ),
        (
            with(
                "conditions",
                json!([{"field": "service_id", "op": "in", "values": [w.service_b]}]),
            ),
            "/conditions/0/values/0",
        ),
        (
            with(
                "actions",
                json!([{"type": "assign", "user_id": w.b_operator.id}]),
            ),
            "/actions/0/user_id",
        ),
        (
            with(
                "actions",
                json!([{"type": "notify", "user_id": w.a_agent.id}]),
            ),
            "/actions/0/user_id",
        ),
        (
            with("actions", json!([{"type": "add_tag", "tag": "Not A Tag"}])),
            "/actions/0/tag",
        ),
        (
            with(
                "actions",
                json!([{"type": "send_webhook", "webhook_id": id(&webhook)}]),
            ),
            "/actions/0/webhook_id",
        ),
        (with("actions", json!([])), "/actions"),
        (with("actions", json!([{"type": "explode"}])), "/actions/0"),
        (with("name", json!("  ")), "/name"),
    ] {
        let event = body["event"].clone();
        let res = app.post("/v1/triggers", &w.a_admin.token, body).await;
        let problem = res.assert_status(422);
        assert_eq!(
            problem["errors"][0]["pointer"]
                .as_str()
                .map(|p| p.starts_with(pointer)),
            Some(true),
            "{pointer}: {problem}"
        );
        if event == "mentioned" {
            assert_eq!(problem["errors"][0]["code"], "not_a_trigger_event");
        }
    }
    assert_eq!(app.rows_in(&["triggers", "audit_log"]), before);

    // Created, audited, read by its agency's admins and platform admins only.
    let res = app
        .post("/v1/triggers", &w.a_admin.token, good.clone())
        .await;
    let trigger = res.assert_status(201).clone();
    let path = format!("/v1/triggers/{}", id(&trigger));
    assert_eq!(res.header("location"), Some(path.as_str()));
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert_eq!(trigger["agency_id"], w.agency_a.as_str());
    assert_eq!(trigger["active"], true);
    assert_eq!(trigger["conditions"], good["conditions"]);
    assert_eq!(trigger["actions"], good["actions"]);
    let created = format!(
        "entity = 'trigger' AND entity_id = '{}' AND action = 'create' AND actor_id = '{}'",
        id(&trigger),
        w.a_admin.id
    );
    assert_eq!(rows(&app, "audit_log", &created), 5);
    app.get(&path, &w.platform.token).await.assert_status(200);
    app.get(&path, &w.a_admin.token).await.assert_status(200);
    for token in [&w.a_operator.token, &w.client.token] {
        app.get(&path, token).await.assert_problem(403, "forbidden");
    }
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"active": false}))),
        ("DELETE", None),
    ] {
        let res = app.call(method, &path, &w.b_admin.token, body, &[]).await;
        res.assert_problem(404, "not_found");
    }
    let listed = app.get("/v1/triggers", &w.b_admin.token).await;
    assert_eq!(listed.assert_status(200)["items"], json!([]));
    let own = format!("/v1/triggers?agency_id={}", w.agency_a);
    app.get(&own, &w.b_admin.token)
        .await
        .assert_problem(403, "forbidden");
    let listed = app.get(&own, &w.platform.token).await;
    assert_eq!(listed.assert_status(200)["items"][0]["id"], trigger["id"]);

    // Changed under If-Match, checked again, audited; then deleted.
    let stale = [("If-Match", "\"7\"")];
    let pause = Some(json!({"active": false}));
    let res = app
        .call("PATCH", &path, &w.a_admin.token, pause.clone(), &stale)
        .await;
    res.assert_problem(412, "precondition_failed");
    let bad = Some(json!({"actions": [{"type": "set_priority", "priority": "soon"}]}));
    let res = app.call("PATCH", &path, &w.a_admin.token, bad, &[]).await;
    res.assert_status(422);
    let current = [("If-Match", "\"1\"")];
    let res = app
        .call("PATCH", &path, &w.platform.token, pause, &current)
        .await;
    assert_eq!(res.assert_status(200)["active"], false);
    assert_eq!(res.header("etag"), Some("\"2\""));
    let paused = format!(
        "entity = 'trigger' AND action = 'update' AND field = 'active' AND new_value = 'false' \
         AND actor_id = '{}'",
        w.platform.id
    );
    assert_eq!(rows(&app, "audit_log", &paused), 1);
    // Its operator gone, it can still be renamed or paused, not rewritten.
    app.deactivate_user(&w.platform.token, &w.a_operator.id)
        .await;
    let rename = Some(json!({"name": "Left behind", "active": true}));
    let res = app
        .call("PATCH", &path, &w.a_admin.token, rename, &[])
        .await;
    assert_eq!(res.assert_status(200)["name"], "Left behind");
    let rewrite = Some(json!({"event": "assigned"}));
    let res = app
        .call("PATCH", &path, &w.a_admin.token, rewrite, &[])
        .await;
    assert_eq!(
        res.assert_status(422)["errors"][0]["pointer"],
        "/actions/0/user_id"
    );
    let res = app.call("DELETE", &path, &w.a_admin.token, None, &[]).await;
    res.assert_status(204);
    app.get(&path, &w.a_admin.token)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(rows(&app, "triggers", "1 = 1"), 0);
    assert_eq!(
        rows(
            &app,
            "audit_log",
            "entity = 'trigger' AND action = 'delete'"
        ),
        1
    );
}

#[actix_web::test]
async fn triggers_act_on_the_events_whose_conditions_hold_and_set_off_no_other() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let hook = app
        .post(
            "/v1/webhooks",
            &w.a_admin.token,
            json!({"url": "https://crm.rossi.example/hooks", "events": ["status_changed"]}),
        )
        .await
        .assert_status(201)
        .clone();
    let create = |body: Value, token: String| {
        let app = &app;
        async move {
            let res = app.post("/v1/triggers", &token, body).await;
            res.assert_status(201).clone()
        }
    };
    let a_admin = || w.a_admin.token.clone();
    let intake = create(
        json!({
            "name": "Card intake",
            "event": "case_created",
            "conditions": [
                {"field": "payment_method", "op": "in", "values": ["card"]},
                {"field": "assignee_id", "op": "empty"},
            ],
            "actions": [
                {"type": "assign", "user_id": w.a_operator.id},
                {"type": "add_tag", "tag": "card-intake"},
                {"type": "notify", "user_id": w.a_admin.id},
                {"type": "send_webhook", "webhook_id": id(&hook)},
            ],
        }),
        a_admin(),
    )
    .await;
    // Runs after the first, and sees its tag.
    let urgent = create(
        json!({
            "name": "Card intake is urgent",
            "event": "case_created",
            "conditions": [{"field": "tags", "op": "in", "values": ["card-intake"]}],
            "actions": [{"type": "set_priority", "priority": "urgent"}],
        }),
        a_admin(),
    )
    .await;
    // Paused: never runs.
    create(
        json!({
            "name": "Paused", "event": "case_created", "active": false,
            "actions": [{"type": "add_tag", "tag": "paused"}],
        }),
        a_admin(),
    )
    .await;
    // On `assigned`: the intake's assignment must not set it off, a person's must.
    create(
        json!({
            "name": "Taken by hand", "event": "assigned",
            "actions": [{"type": "add_tag", "tag": "by-hand"}],
        }),
        a_admin(),
    )
    .await;
    // Another agency's: never runs on agency A's cases.
    create(
        json!({
            "name": "Garcia's", "event": "case_created",
            "actions": [{"type": "add_tag", "tag": "garcia"}],
        }),
        w.b_admin.token.clone(),
    )
    .await;

    let card = buy(&app, &w.client.token, &w.service_a, "card").await;
    let case = id(&card);
    // The purchase's answer is the card after the triggers (the client is not shown tags).
    assert_eq!(card["assignee"]["id"], w.a_operator.id.as_str());
    assert_eq!(card["priority"], "urgent");
    assert_eq!(card["tags"], Value::Null);
    let seen = app
        .get(&format!("/v1/cases/{case}"), &w.a_admin.token)
        .await;
    let seen = seen.assert_status(200).clone();
    assert_eq!(seen["tags"], json!(["card-intake"]));
    assert_eq!(seen["version"], card["version"]);
    let tagged = app.get("/v1/cases?tag=card-intake", &w.a_admin.token).await;
    let tagged = tagged.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(tagged.iter().map(id).collect::<Vec<_>>(), [case.as_str()]);

    // One rule-log entry per trigger that ran, with each action's outcome.
    let entries =
        format!("rule = 'trigger' AND case_id = '{case}' AND trigger_event = 'case_created'");
    assert_eq!(rows(&app, "rule_log", &entries), 2);
    let log = app
        .get(&format!("/v1/cases/{case}/rule-log"), &w.a_admin.token)
        .await;
    let items = log.assert_status(200)["items"].as_array().unwrap().clone();
    let intake_entry = items
        .iter()
        .find(|e| e["detail"].as_str().unwrap().contains(&id(&intake)))
        .expect("the intake trigger's entry");
    assert_eq!(intake_entry["action"], "assign,add_tag,notify,send_webhook");
    assert_eq!(intake_entry["outcome"], "applied");
    assert!(
        items
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains(&id(&urgent))),
        "{items:?}"
    );
    // Audited by the rule, no person as actor.
    let by_rule = format!("case_id = '{case}' AND action = 'trigger' AND actor_id IS NULL");
    assert_eq!(rows(&app, "audit_log", &by_rule), 3);
    for field in ["assignee_id", "tags", "priority"] {
        let one = format!("{by_rule} AND field = '{field}'");
        assert_eq!(rows(&app, "audit_log", &one), 1, "{field}");
    }
    // The operator is told of the assignment, the admin of the new case; the webhook gets the
    // event it never subscribed to, with the trigger.
    let told = |user: &str, event: &str| {
        rows(
            &app,
            "notifications",
            &format!("user_id = '{user}' AND case_id = '{case}' AND event = '{event}'"),
        )
    };
    assert_eq!(told(&w.a_operator.id, "assigned"), 1);
    assert_eq!(told(&w.a_admin.id, "case_created"), 1);
    let sent = format!(
        "webhook_id = '{}' AND case_id = '{case}' AND event = 'case_created'",
        id(&hook)
    );
    assert_eq!(rows(&app, "webhook_deliveries", &sent), 1);
    let payload = app
        .get(
            &format!("/v1/webhooks/{}/deliveries", id(&hook)),
            &w.a_admin.token,
        )
        .await;
    let payload = payload.assert_status(200)["items"][0]["payload"].clone();
    assert_eq!(payload["trigger"]["id"], intake["id"]);
    assert_eq!(payload["trigger"]["rule_log_id"], intake_entry["id"]);
    assert_eq!(payload["case"]["id"], case.as_str());

    // A person's assignment sets off the `assigned` trigger.
    take(&app, &w.a_admin.token, &case).await;
    let seen = app
        .get(&format!("/v1/cases/{case}"), &w.a_admin.token)
        .await;
    assert_eq!(
        seen.assert_status(200)["tags"],
        json!(["card-intake", "by-hand"])
    );

    // A case that does not meet the conditions: nothing happens to it.
    let transfer = buy(&app, &w.client.token, &w.service_a, "bank_transfer").await;
    let seen = app
        .get(&format!("/v1/cases/{}", id(&transfer)), &w.a_admin.token)
        .await;
    let seen = seen.assert_status(200).clone();
    assert_eq!(seen["tags"], json!([]));
    assert_eq!(seen["assignee"], Value::Null);
    assert_eq!(seen["priority"], "normal");
    assert_eq!(
        rows(&app, "rule_log", &format!("case_id = '{}'", id(&transfer))),
        0
    );
    // Agency B's trigger ran on neither.
    assert_eq!(
        rows(
            &app,
            "audit_log",
            "new_value LIKE '%garcia%' AND entity = 'case'"
        ),
        0
    );
}

#[actix_web::test]
async fn staff_tag_cases_and_clients_cannot() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let path = format!("/v1/cases/{case}");
    let before = app.rows_in(&["audit_log"]);
    // Letters without upper case in any script are tags (`日本` below); capitals are not.
    for (tags, code) in [
        (json!(["ok", "Not OK"]), "validation_failed"),
        (json!(["VIP"]), "validation_failed"),
        (json!(["twice", "twice"]), "validation_failed"),
        (json!("one"), "validation_failed"),
    ] {
        let res = app
            .patch(&path, &w.a_operator.token, json!({"tags": tags}))
            .await;
        res.assert_problem(422, code);
    }
    let res = app
        .patch(&path, &w.client.token, json!({"tags": ["mine"]}))
        .await;
    res.assert_problem(403, "forbidden");
    let res = app
        .patch(&path, &w.b_operator.token, json!({"tags": ["theirs"]}))
        .await;
    res.assert_problem(404, "not_found");
    assert_eq!(app.rows_in(&["audit_log"]), before);

    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let res = app
        .patch(&path, &w.a_operator.token, json!({"tags": many}))
        .await;
    res.assert_problem(422, "too_long");
    assert_eq!(app.rows_in(&["audit_log"]), before);
    let res = app
        .patch(
            &path,
            &w.a_operator.token,
            json!({"tags": ["vip", "łódź", "日本"]}),
        )
        .await;
    assert_eq!(
        res.assert_status(200)["tags"],
        json!(["vip", "łódź", "日本"])
    );
    let audited = format!(
        "case_id = '{case}' AND field = 'tags' AND actor_id = '{}'",
        w.a_operator.id
    );
    assert_eq!(rows(&app, "audit_log", &audited), 1);
    let listed = app.get("/v1/cases", &w.a_operator.token).await;
    assert_eq!(
        listed.assert_status(200)["items"][0]["tags"],
        json!(["vip", "łódź", "日本"])
    );
    let listed = app.get("/v1/cases", &w.client.token).await;
    assert_eq!(listed.assert_status(200)["items"][0]["tags"], Value::Null);

    // The list filters by tag (any of those given), for staff only.
    let other = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let found = |query: &'static str| {
        let app = &app;
        let token = w.a_operator.token.clone();
        async move {
            let res = app.get(&format!("/v1/cases?{query}"), &token).await;
            let items = res.assert_status(200)["items"].as_array().unwrap().clone();
            items.iter().map(id).collect::<Vec<_>>()
        }
    };
    assert_eq!(found("tag=vip").await, [case.as_str()]);
    assert_eq!(
        found("tag=other&tag=%C5%82%C3%B3d%C5%BA").await,
        [case.as_str()]
    );
    assert!(found("tag=other").await.is_empty());
    assert_eq!(found("").await, [other.as_str(), case.as_str()]);
    app.get("/v1/cases?tag=vip", &w.client.token)
        .await
        .assert_problem(403, "forbidden");
    app.get("/v1/cases?tag=Not%20a%20tag", &w.a_operator.token)
        .await
        .assert_problem(400, "invalid_query");
    let res = app
        .patch(&path, &w.a_operator.token, json!({"tags": ["łódź"]}))
        .await;
    res.assert_status(200);
    assert!(found("tag=vip").await.is_empty());
    let listed = app.get("/v1/cases?tag=vip", &w.b_operator.token).await;
    assert_eq!(listed.assert_status(200)["items"], json!([]));
}

#[actix_web::test]
async fn a_breach_escalates_through_a_trigger_and_the_new_assignee_hears_of_it() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let each = |first_response: i64| json!({"first_response": first_response, "decision": 240, "resolution": 2880});
    app.post(
        "/v1/sla-policies",
        &w.platform.token,
        json!({"name": "Platform default", "targets": {
            "low": each(10), "normal": each(10), "high": each(10), "urgent": each(5)}}),
    )
    .await
    .assert_status(201);
    app.post(
        "/v1/triggers",
        &w.a_admin.token,
        json!({
            "name": "Escalate breaches",
            "event": "sla_breached",
            "conditions": [{"field": "priority", "op": "not_in", "values": ["urgent"]}],
            "actions": [
                {"type": "set_priority", "priority": "urgent"},
                {"type": "assign", "user_id": w.a_operator.id},
                {"type": "add_tag", "tag": "escalated"},
            ],
        }),
    )
    .await
    .assert_status(201);
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);

    // The first-response clock's warning and target pass (as if 20 minutes went by).
    backdate_clocks(&app, &case, &["first_response"], LONG_PAST);
    let round = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!((round.done, round.failed), (1, 0));
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_admin.token)
        .await;
    let card = card.assert_status(200).clone();
    assert_eq!(card["priority"], "urgent");
    assert_eq!(card["assignee"]["id"], w.a_operator.id.as_str());
    assert_eq!(card["tags"], json!(["escalated"]));
    assert_eq!(card["sla"]["state"], "breached");
    // The clock follows the new priority; the breach is recorded once, the trigger once.
    let sla = app
        .get(&format!("/v1/cases/{case}/sla"), &w.a_admin.token)
        .await;
    let clocks = sla.assert_status(200)["clocks"].as_array().unwrap().clone();
    let first = clocks
        .iter()
        .find(|c| c["clock"] == "first_response")
        .unwrap();
    assert_eq!(first["target_seconds"], 300);
    assert_eq!(first["breached"], true);
    let logged = |rule: &str| {
        rows(
            &app,
            "rule_log",
            &format!("case_id = '{case}' AND rule = '{rule}'"),
        )
    };
    assert_eq!((logged("sla_breach"), logged("trigger")), (1, 1));
    // The warning, before the trigger, reached both of the agency's staff; the breach only the
    // operator the trigger made responsible.
    let told = |user: &str, event: &str| {
        rows(
            &app,
            "notifications",
            &format!("user_id = '{user}' AND case_id = '{case}' AND event = '{event}'"),
        )
    };
    assert_eq!(told(&w.a_admin.id, "sla_warning"), 1);
    assert_eq!(told(&w.a_operator.id, "sla_warning"), 1);
    assert_eq!(told(&w.a_operator.id, "sla_breached"), 1);
    assert_eq!(told(&w.a_admin.id, "sla_breached"), 0);
    assert_eq!(told(&w.a_operator.id, "assigned"), 1);
}

/// Two warnings found at once, the first of which runs a trigger that raises the priority
/// and so breaches both clocks: the audit trail ends as the case does. Before, the second
/// warning's rows (and the state `at_risk`) were written after the breaches the trigger's
/// sync had recorded.
#[actix_web::test]
async fn a_trigger_on_a_warning_leaves_the_audit_trail_ending_as_the_case_does() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let each =
        |minutes: i64| json!({"first_response": minutes, "decision": minutes, "resolution": 2880});
    app.post(
        "/v1/sla-policies",
        &w.platform.token,
        json!({"name": "Platform default", "targets": {
            "low": each(600), "normal": each(600), "high": each(600), "urgent": each(5)}}),
    )
    .await
    .assert_status(201);
    app.post(
        "/v1/triggers",
        &w.a_admin.token,
        json!({"name": "Hurry", "event": "sla_warning",
               "conditions": [{"field": "priority", "op": "not_in", "values": ["urgent"]}],
               "actions": [{"type": "set_priority", "priority": "urgent"}]}),
    )
    .await
    .assert_status(201);
    let hook =
        json!({"url": "https://hooks.example/sla", "events": ["sla_warning", "sla_breached"]});
    app.post("/v1/webhooks", &w.a_admin.token, hook)
        .await
        .assert_status(201);
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    // Both clocks past their warning, long before their targets; begun long enough ago that
    // urgent targets have passed.
    let times = [
        "2026-01-01 09:00:00",
        "2026-01-01 09:08:00",
        "2999-01-01 00:00:00",
    ];
    backdate_clocks(&app, &case, &["first_response", "decision"], times);
    let round = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!((round.done, round.failed), (1, 0));
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_admin.token)
        .await;
    let card = card.assert_status(200).clone();
    assert_eq!(card["priority"], "urgent");
    assert_eq!(card["sla"]["state"], "breached");
    let last = |field: &str| {
        app.texts(&format!(
            "SELECT new_value AS t FROM audit_log WHERE case_id = '{case}' AND field = '{field}' \
             ORDER BY seq DESC LIMIT 1"
        ))
    };
    assert_eq!(last("sla_state"), [Some("breached".to_owned())]);
    for clock in ["first_response", "decision"] {
        assert_eq!(
            last(&format!("sla.{clock}")),
            [Some("breached".to_owned())],
            "{clock}"
        );
    }
    // Each warning and each breach once, the trigger once.
    let logged = |rule: &str| {
        rows(
            &app,
            "rule_log",
            &format!("case_id = '{case}' AND rule = '{rule}'"),
        )
    };
    assert_eq!(
        (
            logged("sla_warning"),
            logged("sla_breach"),
            logged("trigger")
        ),
        (2, 2, 1)
    );
    // A receiver hears of them in the same order: both warnings, then the breaches the
    // trigger's change found (in the order the deliveries are sent).
    let heard = app.texts(&format!(
        "SELECT event || ' ' || payload AS t FROM webhook_deliveries \
         WHERE case_id = '{case}' ORDER BY next_attempt_at, id"
    ));
    let heard: Vec<String> = heard.into_iter().flatten().collect();
    assert_eq!(heard.len(), 4, "{heard:?}");
    for (i, clock) in [(0, "first response"), (1, "decision")] {
        let told = format!("The {clock} clock was at risk");
        assert!(
            heard[i].starts_with("sla_warning ") && heard[i].contains(&told),
            "{heard:?}"
        );
    }
    assert!(
        heard[2..].iter().all(|h| h.starts_with("sla_breached ")),
        "{heard:?}"
    );
    let verified = app.get("/v1/audit/verify", &w.platform.token).await;
    assert_eq!(verified.assert_status(200)["intact"], true);
}

#[actix_web::test]
async fn putting_agents_on_a_case_answers_the_version_its_triggers_left() {
    let app = spawn().await;
    let w = World::new(&app).await;
    app.post(
        "/v1/triggers",
        &w.a_admin.token,
        json!({"name": "Staffed", "event": "assigned",
               "actions": [{"type": "add_tag", "tag": "staffed"}]}),
    )
    .await
    .assert_status(201);
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let res = app
        .put(
            &format!("/v1/cases/{case}/agents"),
            &w.a_operator.token,
            json!({"agent_ids": [w.a_agent.id]}),
        )
        .await;
    res.assert_status(200);
    let etag = res.header("etag").unwrap().to_owned();
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    assert_eq!(card.assert_status(200)["tags"], json!(["staffed"]));
    assert_eq!(card.header("etag"), Some(etag.as_str()));
}

/// An agency holds at most 50 triggers. A change that loses a race to another (PostgreSQL,
/// where both read before either writes) is 412 for a caller who sent `If-Match` and 409
/// `concurrent_update` for one who did not, and writes nothing; on SQLite the one writer runs
/// them in turn, so the `If-Match` is simply stale. A deletion that lost leaves the trigger
/// and writes no audit row.
#[actix_web::test]
async fn triggers_are_capped_and_a_lost_race_writes_nothing() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let rule = |i: usize| {
        json!({
            "name": format!("Rule {i}"), "event": "case_created",
            "actions": [{"type": "add_tag", "tag": "new"}],
        })
    };
    let mut first = None;
    for i in 0..49 {
        let res = app.post("/v1/triggers", &w.a_admin.token, rule(i)).await;
        let created = id(res.assert_status(201));
        first.get_or_insert(created);
    }
    let first = first.unwrap();
    // A creation racing another for the last place (held, uncommitted, under the agency's
    // lock as a concurrent creation holds it) waits for it and is refused.
    let racing = app.under_lock(
        &format!("triggers:{}", w.agency_a),
        &format!(
            "INSERT INTO triggers (id, agency_id, name, event, conditions, actions, active, \
             version, created_by, created_at, updated_at) SELECT '{}', agency_id, 'Racing', \
             event, conditions, actions, active, 1, created_by, created_at, updated_at \
             FROM triggers WHERE id = '{first}'",
            uuid::Uuid::now_v7()
        ),
    );
    let create = app.post("/v1/triggers", &w.a_admin.token, rule(49));
    let res = app.while_held(&racing, create).await;
    res.assert_problem(422, "too_many_triggers");
    let before = app.rows_in(&["triggers", "audit_log"]);
    let res = app.post("/v1/triggers", &w.a_admin.token, rule(50)).await;
    res.assert_problem(422, "too_many_triggers");
    assert_eq!(app.rows_in(&["triggers", "audit_log"]), before);
    // Another agency's count is its own.
    let res = app.post("/v1/triggers", &w.b_admin.token, rule(0)).await;
    res.assert_status(201);
    assert_eq!(
        rows(&app, "triggers", &format!("agency_id = '{}'", w.agency_a)),
        50
    );

    let path = format!("/v1/triggers/{first}");
    let bump =
        format!("UPDATE triggers SET version = version + 1, name = 'Renamed' WHERE id = '{first}'");
    let postgres = app._db.is_postgres();
    let pause = || Some(json!({"active": false}));
    let v1 = [("If-Match", "\"1\"")];
    let patch = app.call("PATCH", &path, &w.a_admin.token, pause(), &v1);
    app.while_held(&bump, patch)
        .await
        .assert_problem(412, "precondition_failed");
    let patch = app.call("PATCH", &path, &w.a_admin.token, pause(), &[]);
    let res = app.while_held(&bump, patch).await;
    if postgres {
        res.assert_problem(409, "concurrent_update");
    } else {
        assert_eq!(res.assert_status(200)["version"], 4);
    }
    let version = if postgres { "3" } else { "4" };
    let stale = format!("\"{version}\"");
    let stale = [("If-Match", stale.as_str())];
    let delete = app.call("DELETE", &path, &w.a_admin.token, None, &stale);
    app.while_held(&bump, delete)
        .await
        .assert_problem(412, "precondition_failed");
    let deleted = "entity = 'trigger' AND action = 'delete'";
    assert_eq!(rows(&app, "audit_log", deleted), 0);
    app.get(&path, &w.a_admin.token).await.assert_status(200);
}
