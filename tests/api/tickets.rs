//! Support tickets: opened by clients and agencies, seen by their side and the platform only,
//! worked by platform staff through their lifecycle, and closed by rule once resolved.

use serde_json::{Value, json};

use crate::helpers::{AppService, TestApp, spawn};
use crate::world::{World, buy, id};

async fn open<S>(app: &TestApp<S>, token: &str, body: Value) -> Value
where
    S: AppService,
{
    let res = app.post("/v1/tickets", token, body).await;
    res.assert_status(201).clone()
}

fn ticket_body(subject: &str) -> Value {
    json!({"subject": subject, "description": "The agency has not answered for a week."})
}

/// The actions a ticket offers its viewer, by code.
fn actions(ticket: &Value) -> Vec<String> {
    ticket["allowed_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect()
}

/// This user's notifications about the ticket, as `(event, title)`.
async fn notified<S>(app: &TestApp<S>, token: &str, ticket: &str) -> Vec<(String, String)>
where
    S: AppService,
{
    let res = app.get("/v1/notifications?limit=100", token).await;
    res.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["ticket_id"] == ticket)
        .map(|n| {
            assert_eq!(n["link"], format!("/v1/tickets/{ticket}"));
            assert_eq!(n["app_link"], format!("dossier://tickets/{ticket}"));
            assert!(n["case_id"].is_null());
            (
                n["event"].as_str().unwrap().to_owned(),
                n["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn a_client_ticket_is_worked_from_new_to_closed_with_notifications_and_audit() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);

    // Opened about the client's own case: `new`, unassigned, every platform member told.
    let res = app
        .call(
            "POST",
            "/v1/tickets",
            &w.client.token,
            Some(json!({
                "subject": "The agency stopped answering",
                "description": "No answer on my case for a week.",
                "case_id": case,
            })),
            &[("accept-language", "it")],
        )
        .await;
    let ticket = res.assert_status(201).clone();
    let t = id(&ticket);
    assert_eq!(
        res.header("location"),
        Some(format!("/v1/tickets/{t}").as_str())
    );
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert_eq!(ticket["status"], "new");
    assert_eq!(ticket["status_label"], "Nuovo");
    assert_eq!(ticket["priority"], "normal");
    assert_eq!(ticket["case_id"], case.as_str());
    assert_eq!(ticket["requester"]["id"], w.client.id.as_str());
    assert_eq!(ticket["requester"]["name"], "giulia");
    assert!(ticket["assignee"].is_null() && ticket["agency_id"].is_null());
    assert_eq!(actions(&ticket), Vec::<String>::new());
    for staff in [&w.platform.token, &w.platform_staff.token] {
        let seen = notified(&app, staff, &t).await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, "ticket_opened");
        assert!(
            seen[0].1.contains("The agency stopped answering"),
            "{seen:?}"
        );
    }
    assert!(notified(&app, &w.client.token, &t).await.is_empty());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'ticket' AND entity_id = '{t}' \
             AND action = 'create' AND case_id IS NULL AND agency_id IS NULL \
             AND actor_id = '{}'",
            w.client.id
        )),
        5,
        "number, subject, status, priority and case_id"
    );

    // Platform staff take it: it opens, and is theirs.
    let path = format!("/v1/tickets/{t}");
    let res = app
        .post(
            &format!("{path}/assignment"),
            &w.platform_staff.token,
            json!({"action": "take"}),
        )
        .await;
    let taken = res.assert_status(200);
    assert_eq!(taken["status"], "open");
    assert_eq!(taken["assignee"]["id"], w.platform_staff.id.as_str());
    assert_eq!(taken["version"], 2);
    assert_eq!(
        actions(taken),
        ["wait_on_requester", "resolve"].map(String::from)
    );

    // They answer and wait on the client; the client hears of both.
    let res = app
        .post(
            &format!("{path}/messages"),
            &w.platform_staff.token,
            json!({"body": "Which messages went unanswered?"}),
        )
        .await;
    let message = res.assert_status(201);
    assert_eq!(message["author"]["id"], w.platform_staff.id.as_str());
    assert_eq!(message["author_role"], "platform");
    let res = app
        .post(
            &format!("{path}/transitions"),
            &w.platform_staff.token,
            json!({"action": "wait_on_requester"}),
        )
        .await;
    assert_eq!(res.assert_status(200)["status"], "waiting_on_requester");
    let seen = notified(&app, &w.client.token, &t).await;
    let events: Vec<&str> = seen.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(events, ["status_changed", "message_received"]);

    // The client's answer reopens it, and reaches the assignee alone.
    let res = app
        .post(
            &format!("{path}/messages"),
            &w.client.token,
            json!({"body": "All three since Monday."}),
        )
        .await;
    assert_eq!(res.assert_status(201)["author_role"], "client");
    let res = app.get(&path, &w.client.token).await;
    assert_eq!(res.assert_status(200)["status"], "open");
    let to_assignee = notified(&app, &w.platform_staff.token, &t).await;
    assert_eq!(to_assignee[0].0, "message_received");
    assert_eq!(notified(&app, &w.platform.token, &t).await.len(), 1);
    let res = app.get(&format!("{path}/messages"), &w.client.token).await;
    let bodies: Vec<&str> = res.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["Which messages went unanswered?", "All three since Monday."]
    );

    // Resolving needs a resolution.
    let resolve = format!("{path}/transitions");
    let res = app
        .post(
            &resolve,
            &w.platform_staff.token,
            json!({"action": "resolve"}),
        )
        .await;
    let problem = res.assert_problem(422, "validation_failed");
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/resolution_type", "/resolution"]);
    let res = app
        .post(
            &resolve,
            &w.platform_staff.token,
            json!({"action": "resolve", "resolution_type": "answered", "resolution": "The agency has answered."}),
        )
        .await;
    let resolved = res.assert_status(200);
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolution"]["type"], "answered");
    assert!(resolved["resolution"]["resolved_at"].is_string());

    // A resolved ticket takes no messages: the client may reactivate or close it.
    let res = app
        .post(
            &format!("{path}/messages"),
            &w.client.token,
            json!({"body": "Thanks"}),
        )
        .await;
    let problem = res.assert_problem(409, "wrong_state");
    let offered: Vec<&str> = problem["allowed_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["reactivate", "close"]);

    // Reactivating needs a reason and clears the resolution.
    let res = app
        .post(&resolve, &w.client.token, json!({"action": "reactivate"}))
        .await;
    res.assert_problem(422, "validation_failed");
    let res = app
        .post(
            &resolve,
            &w.client.token,
            json!({"action": "reactivate", "reason": "They went silent again."}),
        )
        .await;
    let reactivated = res.assert_status(200);
    assert_eq!(reactivated["status"], "open");
    assert!(reactivated["resolution"].is_null());

    // Resolved again and closed by the client: nothing left to do.
    app.post(
        &resolve,
        &w.platform_staff.token,
        json!({"action": "resolve", "resolution_type": "answered", "resolution": "Answered again."}),
    )
    .await
    .assert_status(200);
    let res = app
        .post(&resolve, &w.client.token, json!({"action": "close"}))
        .await;
    let closed = res.assert_status(200);
    assert_eq!(closed["status"], "closed");
    assert_eq!(actions(closed), Vec::<String>::new());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'ticket' AND entity_id = '{t}' \
             AND field = 'status'"
        )),
        8,
        "create, take, wait, the client's answer, resolve, reactivate, resolve, close"
    );
}

#[actix_web::test]
async fn tickets_are_seen_by_their_requesters_side_and_the_platform_only() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let client_ticket = id(&open(&app, &w.client.token, ticket_body("Refund")).await);
    let agency_ticket = id(&open(&app, &w.a_operator.token, ticket_body("Invoices")).await);

    let visible = |token: &str, ticket: &str| {
        let (token, path) = (token.to_owned(), format!("/v1/tickets/{ticket}"));
        let app = &app;
        async move { app.get(&path, &token).await.status.as_u16() }
    };
    // The client's: the client and the platform.
    assert_eq!(visible(&w.client.token, &client_ticket).await, 200);
    assert_eq!(visible(&w.platform_staff.token, &client_ticket).await, 200);
    assert_eq!(visible(&w.client2.token, &client_ticket).await, 404);
    assert_eq!(visible(&w.a_admin.token, &client_ticket).await, 404);
    // The agency's: all its staff, and the platform.
    assert_eq!(visible(&w.a_admin.token, &agency_ticket).await, 200);
    assert_eq!(visible(&w.platform.token, &agency_ticket).await, 200);
    assert_eq!(visible(&w.b_operator.token, &agency_ticket).await, 404);
    assert_eq!(visible(&w.client.token, &agency_ticket).await, 404);
    app.get(
        &format!("/v1/tickets/{agency_ticket}/messages"),
        &w.b_admin.token,
    )
    .await
    .assert_problem(404, "not_found");
    // Nor may they write on it: another agency, another client; nothing is written.
    let untouched = app.rows_in(&["ticket_messages", "audit_log", "notifications"]);
    for (token, ticket) in [
        (&w.b_operator.token, &agency_ticket),
        (&w.client2.token, &client_ticket),
    ] {
        let path = format!("/v1/tickets/{ticket}");
        app.post(&format!("{path}/messages"), token, json!({"body": "Hello"}))
            .await
            .assert_problem(404, "not_found");
        app.patch(&path, token, json!({"subject": "Taken over"}))
            .await
            .assert_problem(404, "not_found");
        app.post(
            &format!("{path}/transitions"),
            token,
            json!({"action": "close"}),
        )
        .await
        .assert_problem(404, "not_found");
    }
    assert_eq!(
        app.rows_in(&["ticket_messages", "audit_log", "notifications"]),
        untouched
    );

    // Lists hold what their reader sees.
    let listed = |token: &str| {
        let token = token.to_owned();
        let app = &app;
        async move {
            let res = app.get("/v1/tickets", &token).await;
            res.assert_status(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(&w.client.token).await,
        std::slice::from_ref(&client_ticket)
    );
    assert_eq!(
        listed(&w.a_admin.token).await,
        std::slice::from_ref(&agency_ticket)
    );
    assert!(listed(&w.client2.token).await.is_empty());
    assert!(listed(&w.b_operator.token).await.is_empty());
    assert_eq!(
        listed(&w.platform_staff.token).await,
        [agency_ticket.clone(), client_ticket.clone()]
    );

    // Agents have no tickets; the platform opens none.
    app.get("/v1/tickets", &w.a_agent.token)
        .await
        .assert_problem(403, "forbidden");
    app.get(&format!("/v1/tickets/{agency_ticket}"), &w.a_agent.token)
        .await
        .assert_problem(403, "forbidden");
    let before = app.rows_in(&["tickets", "notifications", "audit_log"]);
    app.post("/v1/tickets", &w.a_agent.token, ticket_body("Help"))
        .await
        .assert_problem(403, "forbidden");
    app.post("/v1/tickets", &w.platform.token, ticket_body("Help"))
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(
        app.rows_in(&["tickets", "notifications", "audit_log"]),
        before
    );

    // The requester does not choose the priority.
    let mut urgent = ticket_body("Help");
    urgent["priority"] = json!("urgent");
    app.post("/v1/tickets", &w.client.token, urgent)
        .await
        .assert_problem(400, "unknown_field");

    // A case the requester cannot see is refused, and nothing is written.
    let other_case = id(&buy(&app, &w.client2.token, &w.service_a, "card").await);
    let before_case = app.rows_in(&["tickets", "notifications"]);
    let mut body = ticket_body("About someone else's case");
    body["case_id"] = json!(other_case);
    let res = app.post("/v1/tickets", &w.client.token, body.clone()).await;
    let problem = res.assert_problem(422, "case_unavailable");
    assert_eq!(problem["errors"][0]["pointer"], "/case_id");
    let res = app.post("/v1/tickets", &w.b_operator.token, body).await;
    res.assert_problem(422, "case_unavailable");
    assert_eq!(app.rows_in(&["tickets", "notifications"]), before_case);
}

#[actix_web::test]
async fn only_the_platform_assigns_resolves_and_sets_priority() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let t = id(&open(&app, &w.client.token, ticket_body("Refund")).await);
    let path = format!("/v1/tickets/{t}");
    let before = app.rows_in(&["tickets", "audit_log", "notifications"]);

    let res = app
        .post(
            &format!("{path}/transitions"),
            &w.client.token,
            json!({"action": "resolve", "resolution_type": "answered", "resolution": "Done."}),
        )
        .await;
    res.assert_problem(403, "forbidden");
    app.post(
        &format!("{path}/transitions"),
        &w.platform.token,
        json!({"action": "auto_close"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post(
        &format!("{path}/assignment"),
        &w.client.token,
        json!({"action": "take"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.patch(&path, &w.client.token, json!({"priority": "urgent"}))
        .await
        .assert_problem(403, "forbidden");
    // Closing is for resolved tickets: the problem offers what the platform may do instead.
    let res = app
        .post(
            &format!("{path}/transitions"),
            &w.platform.token,
            json!({"action": "close"}),
        )
        .await;
    assert_eq!(
        res.assert_problem(409, "wrong_state")["allowed_actions"][0]["action"],
        "wait_on_requester"
    );
    // Delegation goes to other active platform staff only.
    for bad in [&w.a_operator.id, &w.platform.id] {
        let res = app
            .post(
                &format!("{path}/assignment"),
                &w.platform.token,
                json!({"action": "delegate", "user_id": bad}),
            )
            .await;
        res.assert_problem(422, "invalid_assignee");
    }
    // A stale If-Match changes nothing.
    let res = app
        .call(
            "PATCH",
            &path,
            &w.client.token,
            Some(json!({"subject": "Refund, please"})),
            &[("if-match", "\"7\"")],
        )
        .await;
    res.assert_problem(412, "precondition_failed");
    assert_eq!(
        app.rows_in(&["tickets", "audit_log", "notifications"]),
        before
    );

    // Unassigned and new, it is in the platform's unassigned queue.
    let unassigned = "/v1/tickets?assignee=none&status=new&status=open&status=waiting_on_requester";
    assert_eq!(app.listed(unassigned, &w.platform.token).await, 1);

    // The platform's webhook hears of assignments.
    let hook = json!({"url": "https://hooks.example/tickets", "events": ["ticket_assigned"]});
    app.post("/v1/webhooks", &w.platform.token, hook)
        .await
        .assert_status(201);
    let assigned = "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE event = 'ticket_assigned'";

    // The client edits the subject; the platform sets the priority and delegates.
    let res = app
        .call(
            "PATCH",
            &path,
            &w.client.token,
            Some(json!({"subject": "Refund, please"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(res.assert_status(200)["subject"], "Refund, please");
    assert_eq!(res.header("etag"), Some("\"2\""));
    let res = app
        .patch(&path, &w.platform.token, json!({"priority": "high"}))
        .await;
    assert_eq!(res.assert_status(200)["priority"], "high");
    let res = app
        .post(
            &format!("{path}/assignment"),
            &w.platform.token,
            json!({"action": "delegate", "user_id": w.platform_staff.id}),
        )
        .await;
    let delegated = res.assert_status(200);
    assert_eq!(delegated["assignee"]["id"], w.platform_staff.id.as_str());
    assert_eq!(delegated["delegated_by"], w.platform.id.as_str());
    assert_eq!(delegated["status"], "open");
    let seen = notified(&app, &w.platform_staff.token, &t).await;
    assert_eq!(seen[0].0, "assigned");
    assert_eq!(app.count(assigned), 1);

    // The queues are filters.
    let queue = |token: &str, query: &str| {
        let (token, path) = (token.to_owned(), format!("/v1/tickets?{query}"));
        let app = &app;
        async move { app.listed(&path, &token).await }
    };
    assert_eq!(queue(&w.platform.token, "delegated_by=me").await, 1);
    assert_eq!(queue(&w.platform_staff.token, "assignee=me").await, 1);
    assert_eq!(queue(&w.platform.token, "assignee=me").await, 0);
    // Taking what one was delegated leaves the delegator's queue.
    let res = app
        .post(
            &format!("{path}/assignment"),
            &w.platform_staff.token,
            json!({"action": "take"}),
        )
        .await;
    assert!(res.assert_status(200)["delegated_by"].is_null());
    assert_eq!(queue(&w.platform.token, "delegated_by=me").await, 0);
    // It stays with its assignee: no one hears of an assignment.
    assert_eq!(app.count(assigned), 1);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{t}' AND action = 'take' \
             AND field = 'delegated_by' AND new_value IS NULL"
        )),
        1
    );
    assert_eq!(
        queue(
            &w.platform.token,
            "assignee=none&status=new&status=open&status=waiting_on_requester"
        )
        .await,
        0
    );
    assert_eq!(queue(&w.platform.token, "status=closed").await, 0);
    // Resolved by its assignee and closed by its requester, it is in the closed queue.
    for (token, body) in [
        (
            &w.platform_staff.token,
            json!({"action": "resolve", "resolution_type": "answered", "resolution": "Refunded."}),
        ),
        (&w.client.token, json!({"action": "close"})),
    ] {
        app.post(&format!("{path}/transitions"), token, body)
            .await
            .assert_status(200);
    }
    assert_eq!(queue(&w.platform.token, "status=closed").await, 1);
    assert_eq!(
        app.get("/v1/tickets?status=closed", &w.platform.token)
            .await
            .assert_status(200)["items"][0]["id"],
        t.as_str()
    );
}

#[actix_web::test]
async fn a_resolved_ticket_nobody_reactivates_closes_by_rule_with_its_log() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let t = id(&open(&app, &w.a_operator.token, ticket_body("Invoices")).await);
    let kept = id(&open(&app, &w.client.token, ticket_body("Refund")).await);
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["ticket_status_changed"]});
    let hook = app.post("/v1/webhooks", &w.a_admin.token, body).await;
    let hook = id(hook.assert_status(201));
    for ticket in [&t, &kept] {
        app.post(
            &format!("/v1/tickets/{ticket}/transitions"),
            &w.platform.token,
            json!({"action": "resolve", "resolution_type": "answered", "resolution": "Done."}),
        )
        .await
        .assert_status(200);
    }
    let round = || async {
        let round = dossier::rules::close_resolved_tickets(&app.state)
            .await
            .unwrap();
        assert_eq!(round.failed, 0, "{round:?}");
        round.done
    };
    // Not before three days.
    assert_eq!(round().await, 0);
    app.sql(&format!(
        "UPDATE tickets SET resolved_at = '2026-01-01 09:00:00' WHERE id IN ('{t}', '{kept}')"
    ));
    // The client reactivates theirs in time.
    app.post(
        &format!("/v1/tickets/{kept}/transitions"),
        &w.client.token,
        json!({"action": "reactivate", "reason": "Not refunded yet."}),
    )
    .await
    .assert_status(200);
    assert_eq!(round().await, 1);
    assert_eq!(round().await, 0, "a closed ticket is not closed twice");

    let res = app.get(&format!("/v1/tickets/{t}"), &w.a_admin.token).await;
    assert_eq!(res.assert_status(200)["status"], "closed");
    let res = app
        .get(&format!("/v1/tickets/{kept}"), &w.client.token)
        .await;
    assert_eq!(res.assert_status(200)["status"], "open");

    // The rule log names the ticket; the agency's staff read their ticket's entry.
    let res = app.get("/v1/rule-log", &w.a_admin.token).await;
    let entries = res.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["rule"], "ticket_auto_close");
    assert_eq!(entries[0]["action"], "auto_close");
    assert_eq!(entries[0]["ticket_id"], t.as_str());
    assert!(entries[0]["case_id"].is_null());
    let res = app.get("/v1/rule-log", &w.b_admin.token).await;
    assert_eq!(res.assert_status(200)["items"], json!([]));
    let log_id = entries[0]["id"].as_str().unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{t}' AND action = 'auto_close' \
             AND actor_id IS NULL AND request_id = '{log_id}' AND new_value = 'closed'"
        )),
        1
    );
    // The agency's webhook heard its ticket resolved, then closed by the rule (no reason).
    let deliveries = format!("/v1/webhooks/{hook}/deliveries");
    let told = app.get(&deliveries, &w.a_admin.token).await;
    let told = told.assert_status(200)["items"].clone();
    let told: Vec<(&Value, &Value)> = told
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (&d["payload"]["ticket"]["status"], &d["payload"]["detail"]))
        .collect();
    assert_eq!(
        told,
        [
            (&json!("closed"), &Value::Null),
            (&json!("resolved"), &json!("Done.")),
        ]
    );
    let seen = notified(&app, &w.a_operator.token, &t).await;
    assert_eq!(seen[0].0, "status_changed");
    assert!(seen[0].1.ends_with("Closed"), "{seen:?}");
}

#[actix_web::test]
async fn a_message_racing_a_resolution_is_refused_not_written_after_it() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let t = id(&open(&app, &w.client.token, ticket_body("Refund")).await);
    let messages = app.rows_in(&["ticket_messages"]);
    let res = app
        .while_held(
            &format!(
                "UPDATE tickets SET status = 'resolved', resolution_type = 'answered', \
                 resolution = 'Done.', resolved_at = '2026-01-01 09:00:00', \
                 version = version + 1 WHERE id = '{t}'"
            ),
            app.post(
                &format!("/v1/tickets/{t}/messages"),
                &w.client.token,
                json!({"body": "One more thing"}),
            ),
        )
        .await;
    res.assert_problem(409, "wrong_state");
    assert_eq!(app.rows_in(&["ticket_messages"]), messages);
}

/// A message written while the ticket is handed to someone else (the hand-over held here,
/// uncommitted, as a concurrent request's would be) is for the new assignee, not the old.
#[actix_web::test]
async fn a_message_racing_a_hand_over_is_for_the_new_assignee() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let t = id(&open(&app, &w.client.token, ticket_body("Refund")).await);
    app.sql(&format!(
        "UPDATE tickets SET assignee_id = '{}' WHERE id = '{t}'",
        w.platform.id
    ));
    let heard = |user: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{user}' \
             AND event = 'message_received'"
        ))
    };
    let before = (heard(&w.platform.id), heard(&w.platform_staff.id));
    let res = app
        .while_held(
            &format!(
                "UPDATE tickets SET assignee_id = '{}', version = version + 1 WHERE id = '{t}'",
                w.platform_staff.id
            ),
            app.post(
                &format!("/v1/tickets/{t}/messages"),
                &w.client.token,
                json!({"body": "Any news?"}),
            ),
        )
        .await;
    res.assert_status(201);
    let after = (heard(&w.platform.id), heard(&w.platform_staff.id));
    assert_eq!(after, (before.0, before.1 + 1));
}

#[actix_web::test]
async fn opening_a_ticket_is_idempotent_and_the_workflow_lists_its_lifecycle() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let send = || {
        app.call(
            "POST",
            "/v1/tickets",
            &w.client.token,
            Some(ticket_body("Refund")),
            &[("idempotency-key", "ticket-1")],
        )
    };
    let first = send().await;
    let again = send().await;
    assert_eq!(
        first.assert_status(201)["id"],
        again.assert_status(201)["id"]
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.rows_in(&["tickets"]), [1]);

    let res = app.get("/v1/workflow", &w.client.token).await;
    let tickets = &res.assert_status(200)["tickets"];
    let states: Vec<&str> = tickets["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["new", "open", "waiting_on_requester", "resolved", "closed"]
    );
    let auto_close = tickets["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "auto_close")
        .unwrap();
    assert_eq!(auto_close["system_only"], true);
    assert_eq!(auto_close["from"], json!(["resolved"]));
}

#[actix_web::test]
async fn a_ticket_reply_reaches_the_requester_by_mail_with_the_tickets_link() {
    let smtp = crate::smtp::SmtpServer::start().await;
    let app = crate::helpers::spawn_with(&[
        ("DOSSIER_SMTP_URL", &smtp.url),
        (
            "DOSSIER_APP_TICKET_LINK_TEMPLATE",
            "https://app.dossier.test/support/{ticket_id}",
        ),
    ])
    .await;
    let w = World::new(&app).await;
    let ticket = open(&app, &w.client.token, ticket_body("Refund")).await;
    let t = id(&ticket);
    dossier::mailer::spawn(app.state.clone());
    app.post(
        &format!("/v1/tickets/{t}/messages"),
        &w.platform_staff.token,
        json!({"body": "We are on it."}),
    )
    .await
    .assert_status(201);
    // Two platform members heard of the new ticket; the client, of the answer.
    let mails = smtp.wait_for(3).await;
    let to_client = mails
        .iter()
        .find(|m| m.rcpt_to == ["giulia@example.com"])
        .expect("a mail to the client");
    // The ticket by its number and subject, as people quote it.
    assert_eq!(
        to_client.subject,
        format!(
            "New message on ticket {} «Refund»",
            ticket["number"].as_str().unwrap()
        )
    );
    assert!(
        to_client.body.contains(&format!(
            "Open the ticket: https://app.dossier.test/support/{t}"
        )),
        "{}",
        to_client.body
    );
    assert!(to_client.body.contains("We are on it."));
}

#[actix_web::test]
async fn an_assignment_racing_a_move_never_undoes_it() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let t = id(&open(&app, &w.client.token, ticket_body("Refund")).await);
    let path = format!("/v1/tickets/{t}");
    app.post(
        &format!("{path}/assignment"),
        &w.platform.token,
        json!({"action": "take"}),
    )
    .await
    .assert_status(200);
    // Another member's `wait_on_requester` commits while this `take` runs.
    let res = app
        .while_held(
            &format!(
                "UPDATE tickets SET status = 'waiting_on_requester', version = version + 1 \
                 WHERE id = '{t}'"
            ),
            app.post(
                &format!("{path}/assignment"),
                &w.platform_staff.token,
                json!({"action": "take"}),
            ),
        )
        .await;
    // SQLite's writer runs the take after it (and reads it); PostgreSQL's take read before.
    if res.status.as_u16() == 409 {
        res.assert_problem(409, "concurrent_update");
    } else {
        assert_eq!(res.assert_status(200)["status"], "waiting_on_requester");
    }
    let res = app.get(&path, &w.client.token).await;
    assert_eq!(res.assert_status(200)["status"], "waiting_on_requester");
}

#[actix_web::test]
async fn an_agency_ticket_whose_requester_left_keeps_its_staff_informed() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let t = id(&open(&app, &w.a_operator.token, ticket_body("Invoices")).await);
    app.deactivate_user(&w.platform.token, &w.a_operator.id)
        .await;
    app.post(
        &format!("/v1/tickets/{t}/messages"),
        &w.platform_staff.token,
        json!({"body": "Which invoices?"}),
    )
    .await
    .assert_status(201);
    let seen = notified(&app, &w.a_admin.token, &t).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "message_received");
    assert!(notified(&app, &w.b_admin.token, &t).await.is_empty());
    // The audit row of the message names the ticket.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'ticket' AND entity_id = '{t}' \
             AND action = 'post_message' AND field = 'message_id' AND agency_id = '{}'",
            w.agency_a
        )),
        1
    );
}

#[actix_web::test]
async fn tickets_are_numbered_across_the_platform_and_found_by_their_number() {
    use chrono::Datelike;

    let app = spawn().await;
    let w = World::new(&app).await;
    let year = chrono::Utc::now().year();
    let mut numbers = Vec::new();
    for token in [&w.client.token, &w.a_operator.token, &w.client2.token] {
        let ticket = open(&app, token, ticket_body("Help")).await;
        numbers.push(ticket["number"].as_str().unwrap().to_owned());
    }
    let expected: Vec<String> = (1..=3).map(|n| format!("TKT-{year}-{n:06}")).collect();
    assert_eq!(numbers, expected);
    // Recorded with the ticket's creation.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'ticket' AND action = 'create' \
             AND field = 'number' AND new_value = '{}'",
            numbers[0]
        )),
        1
    );

    // Found by its number, by those who see it only.
    let by_number = |number: &str| format!("/v1/tickets?number={number}");
    for token in [&w.client.token, &w.platform_staff.token] {
        let page = app.get(&by_number(&numbers[0]), token).await;
        let items = page.assert_status(200)["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["number"], numbers[0].as_str());
    }
    for token in [&w.client2.token, &w.a_admin.token] {
        let page = app.get(&by_number(&numbers[0]), token).await;
        assert_eq!(page.assert_status(200)["items"], json!([]));
    }
    let page = app.get(&by_number(&numbers[1]), &w.a_admin.token).await;
    assert_eq!(
        page.assert_status(200)["items"][0]["number"],
        numbers[1].as_str()
    );
    let page = app
        .get(&by_number("TKT-1999-000001"), &w.platform.token)
        .await;
    assert_eq!(page.assert_status(200)["items"], json!([]));
    // As people quote it: in lower case, with spaces around it.
    let quoted = format!("%20{}%20", numbers[2].to_lowercase());
    let page = app.get(&by_number(&quoted), &w.client2.token).await;
    assert_eq!(
        page.assert_status(200)["items"][0]["number"],
        numbers[2].as_str()
    );

    // Tickets opened at once never share a number.
    let opens = futures_util::future::join_all((0..8).map(|i| {
        let token = if i % 2 == 0 {
            &w.client.token
        } else {
            &w.a_operator.token
        };
        app.post("/v1/tickets", token, ticket_body("At once"))
    }))
    .await;
    let mut raced: Vec<String> = opens
        .iter()
        .map(|r| r.assert_status(201)["number"].as_str().unwrap().to_owned())
        .collect();
    raced.sort();
    let expected: Vec<String> = (4..=11).map(|n| format!("TKT-{year}-{n:06}")).collect();
    assert_eq!(raced, expected);
}
