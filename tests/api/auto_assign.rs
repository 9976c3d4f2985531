//! Automatic assignment: a paid case goes to the agency's available operator with the most
//! room, in turn between equals; with nobody free it waits in the queue until an operator
//! becomes available.

use serde_json::json;

use crate::helpers::spawn_with;
use crate::world::{World, buy, id, set_presence};

#[actix_web::test]
async fn a_paid_case_goes_to_the_available_operator_with_most_room_in_turn() {
    let app = spawn_with(&[("DOSSIER_OPERATOR_CAPACITY", "2")]).await;
    let w = World::new(&app).await;
    // Nobody available: the case waits, unassigned.
    let queued = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let card = app
        .get(&format!("/v1/cases/{queued}"), &w.a_admin.token)
        .await;
    assert!(card.assert_status(200)["assignee"].is_null());
    assert_eq!(app.rows_in(&["rule_log"]), [0]);

    // The operator becomes available: the queued case is theirs.
    set_presence(&app, &w.a_operator.token, "available").await;
    let card = app
        .get(&format!("/v1/cases/{queued}"), &w.a_admin.token)
        .await;
    assert_eq!(
        card.assert_status(200)["assignee"]["id"],
        w.a_operator.id.as_str()
    );
    let res = app.get("/v1/rule-log", &w.a_admin.token).await;
    let entry = res.assert_status(200)["items"][0].clone();
    assert_eq!(entry["rule"], "auto_assign");
    assert_eq!(entry["trigger"], "operator_available");
    assert_eq!(entry["case_id"], queued.as_str());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{queued}' \
             AND action = 'auto_assign' AND actor_id IS NULL AND request_id = '{}' \
             AND new_value = '{}'",
            entry["id"].as_str().unwrap(),
            w.a_operator.id
        )),
        1
    );
    let bell = app.get("/v1/notifications", &w.a_operator.token).await;
    assert_eq!(bell.assert_status(200)["items"][0]["event"], "assigned");

    // The admin becomes available too: the next case goes to the one with more room.
    set_presence(&app, &w.a_admin.token, "available").await;
    let second = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(second["assignee"]["id"], w.a_admin.id.as_str());
    // Equal room (one each): the one served longest ago.
    let third = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(third["assignee"]["id"], w.a_operator.id.as_str());
    let fourth = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(fourth["assignee"]["id"], w.a_admin.id.as_str());
    // Both full (capacity 2): the next one queues.
    let fifth = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(fifth["assignee"].is_null());

    // A bank transfer waits for its payment; another agency's operators never get it.
    set_presence(&app, &w.b_operator.token, "available").await;
    let transfer = id(&buy(&app, &w.client.token, &w.service_b, "bank_transfer").await);
    let card = app
        .get(&format!("/v1/cases/{transfer}"), &w.b_admin.token)
        .await;
    assert!(card.assert_status(200)["assignee"].is_null());
    let res = app
        .post(
            &format!("/v1/cases/{transfer}/transitions"),
            &w.platform.token,
            json!({"action": "confirm_payment"}),
        )
        .await;
    assert_eq!(
        res.assert_status(200)["case"]["assignee"]["id"],
        w.b_operator.id.as_str()
    );
    let res = app.get("/v1/rule-log", &w.b_admin.token).await;
    let entry = &res.assert_status(200)["items"][0];
    assert_eq!(entry["trigger"], "payment_confirmed");
}

#[actix_web::test]
async fn busy_or_unavailable_operators_get_no_work() {
    let app = spawn_with(&[("DOSSIER_OPERATOR_CAPACITY", "1")]).await;
    let w = World::new(&app).await;
    set_presence(&app, &w.a_operator.token, "busy").await;
    set_presence(&app, &w.a_admin.token, "away").await;
    // Agents are not operators, even when available.
    set_presence(&app, &w.a_agent.token, "available").await;
    let case = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(case["assignee"].is_null());
    // Available with no room left (a case taken by hand): still nothing more.
    let taken = id(&case);
    crate::world::take(&app, &w.a_operator.token, &taken).await;
    set_presence(&app, &w.a_operator.token, "available").await;
    let next = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(next["assignee"].is_null());
    assert_eq!(app.rows_in(&["rule_log"]), [0]);
}

#[actix_web::test]
async fn two_assignments_at_once_never_overfill_an_operator() {
    let app = spawn_with(&[("DOSSIER_OPERATOR_CAPACITY", "1")]).await;
    let w = World::new(&app).await;
    set_presence(&app, &w.a_operator.token, "busy").await;
    let first = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    app.sql(&format!(
        "UPDATE presence SET status = 'available' WHERE user_id = '{}'",
        w.a_operator.id
    ));
    // Another write gives the operator their one place while a payment looks for one.
    let res = app
        .while_held(
            &format!(
                "UPDATE presence SET last_assigned_at = '2026-01-01 09:00:00' \
                 WHERE user_id = '{op}'; \
                 UPDATE cases SET assignee_id = '{op}', version = version + 1 \
                 WHERE id = '{first}'",
                op = w.a_operator.id
            ),
            app.post(
                "/v1/cases",
                &w.client.token,
                json!({"service_id": w.service_a, "payment_method": "card",
                       "title": "Second case", "description": "Another one to look into."}),
            ),
        )
        .await;
    assert!(res.assert_status(201)["assignee"].is_null());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM cases WHERE assignee_id = '{}'",
            w.a_operator.id
        )),
        1
    );
}

#[actix_web::test]
async fn the_queue_is_served_oldest_first_and_room_freed_later_is_filled_by_the_worker() {
    let app = spawn_with(&[("DOSSIER_OPERATOR_CAPACITY", "1")]).await;
    let w = World::new(&app).await;
    set_presence(&app, &w.a_operator.token, "available").await;
    let first = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(first["assignee"]["id"], w.a_operator.id.as_str());
    let queued = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    // The operator finishes their case; the next payment serves the older case first.
    let first = id(&first);
    crate::world::start_case(&app, &w, &first).await;
    app.post(
        &format!("/v1/cases/{first}/transitions"),
        &w.a_operator.token,
        json!({"action": "complete", "resolution_type": "solved", "resolution": "Found."}),
    )
    .await
    .assert_status(200);
    let newest = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(newest["assignee"].is_null());
    let card = app
        .get(&format!("/v1/cases/{queued}"), &w.a_admin.token)
        .await;
    assert_eq!(
        card.assert_status(200)["assignee"]["id"],
        w.a_operator.id.as_str()
    );
    // The client cancels it: the worker's next pass fills the room with the newest.
    app.post(
        &format!("/v1/cases/{queued}/transitions"),
        &w.client.token,
        json!({"action": "cancel", "reason": "Solved it myself."}),
    )
    .await
    .assert_status(200);
    assert_eq!(dossier::rules::serve_queues(&app.state).await.unwrap(), 1);
    let card = app
        .get(&format!("/v1/cases/{}", id(&newest)), &w.a_admin.token)
        .await;
    assert_eq!(
        card.assert_status(200)["assignee"]["id"],
        w.a_operator.id.as_str()
    );
    let res = app.get("/v1/rule-log", &w.a_admin.token).await;
    assert_eq!(res.assert_status(200)["items"][0]["trigger"], "queue_check");
    assert_eq!(dossier::rules::serve_queues(&app.state).await.unwrap(), 0);
}
