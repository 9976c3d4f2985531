//! The server's own rules: `auto_close` closes a completed case its client neither confirmed
//! nor disputed in time, asks the client to rate it, and records itself in the rule log.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{AppService, spawn, spawn_with};
use crate::world::{World, act, buy, id, start_case};

/// Completed cases waiting for their client.
fn waiting<S>(app: &crate::helpers::TestApp<S>, case: &str) -> i64
where
    S: AppService,
{
    app.count(&format!(
        "SELECT COUNT(*) AS n FROM awaiting_confirmation WHERE case_id = '{case}'"
    ))
}

/// One round of the rule, which must fail on no case: how many it closed.
async fn round<S>(app: &crate::helpers::TestApp<S>) -> usize {
    let round = dossier::rules::close_overdue(&app.state).await.unwrap();
    assert_eq!(round.failed, 0, "{round:?}");
    round.done
}

#[actix_web::test]
async fn an_unanswered_completion_closes_by_rule_with_its_log_audit_and_notifications() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    assert_eq!(waiting(&app, &case), 1);
    let card = format!("/v1/cases/{case}");

    // Not before `auto_close_after` (3 days by default).
    assert_eq!(round(&app).await, 0);
    let res = app.get(&card, &w.client.token).await;
    assert_eq!(res.assert_status(200)["status"], "completed");
    let version = res.body["version"].as_i64().unwrap();

    // Four days later.
    app.sql(&format!(
        "UPDATE awaiting_confirmation SET completed_at = '2026-01-01 09:00:00' \
         WHERE case_id = '{case}'"
    ));
    assert_eq!(round(&app).await, 1);
    let res = app.get(&card, &w.client.token).await;
    let closed = res.assert_status(200);
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["version"], version + 1);
    assert_eq!(closed["allowed_actions"], json!([]));
    assert_eq!(waiting(&app, &case), 0);

    // The rule log says what fired, why and how it ended.
    let res = app
        .get(&format!("{card}/rule-log"), &w.a_operator.token)
        .await;
    let page = res.assert_status(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let entry = &page["items"][0];
    assert_eq!(entry["rule"], "auto_close");
    assert_eq!(entry["trigger"], "confirmation_overdue");
    assert_eq!(entry["action"], "auto_close");
    assert_eq!(entry["outcome"], "closed");
    assert_eq!(entry["case_id"], case.as_str());
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .starts_with("Completed at 2026-01-01T09:00:00Z;"),
        "{entry}"
    );
    let entry_id = entry["id"].as_str().unwrap().to_owned();

    // Its audit rows name no actor and carry the entry's id; the chain still verifies.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' \
             AND action = 'auto_close' AND field = 'status' AND new_value = 'closed' \
             AND actor_id IS NULL AND actor_role IS NULL AND request_id = '{entry_id}'"
        )),
        1
    );
    let res = app.get("/v1/audit/verify", &w.platform.token).await;
    assert_eq!(res.assert_status(200)["intact"], true);

    // The client hears of the close and is asked to rate; the agency hears of the close.
    let events = |user: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{user}' \
             AND case_id = '{case}' AND event = 'survey_requested'"
        ))
    };
    assert_eq!(events(&w.client.id), 1);
    assert_eq!(events(&w.a_operator.id), 0);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{}' \
             AND case_id = '{case}' AND event = 'status_changed' AND title LIKE '%Closed'",
            w.a_operator.id
        )),
        1
    );
    let res = app.get("/v1/notifications?limit=1", &w.client.token).await;
    let bell = res.assert_status(200);
    assert_eq!(bell["items"][0]["event"], "survey_requested");
    assert!(
        bell["items"][0]["title"]
            .as_str()
            .unwrap()
            .contains("Rate it from 1 to 5")
    );

    // The client rates afterwards.
    app.post(
        &format!("{card}/survey"),
        &w.client.token,
        json!({"rating": 3}),
    )
    .await
    .assert_status(201);

    // Another round finds nothing: one close, one entry.
    assert_eq!(round(&app).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM rule_log"), 1);

    // Who reads the log: agency staff their agency's entries, platform staff all; agents and
    // clients never; another agency gets 404 for the case and nothing in the whole log.
    for (token, len) in [
        (&w.a_operator.token, 1),
        (&w.a_admin.token, 1),
        (&w.platform_staff.token, 1),
        (&w.b_admin.token, 0),
        (&w.b_operator.token, 0),
    ] {
        let res = app.get("/v1/rule-log", token).await;
        assert_eq!(
            res.assert_status(200)["items"].as_array().unwrap().len(),
            len
        );
    }
    for (token, status, code) in [
        (&w.client.token, 403, "forbidden"),
        (&w.a_agent.token, 403, "forbidden"),
        (&w.b_operator.token, 404, "not_found"),
    ] {
        app.get(&format!("{card}/rule-log"), token)
            .await
            .assert_problem(status, code);
    }
    for token in [&w.client.token, &w.a_agent.token] {
        app.get("/v1/rule-log", token)
            .await
            .assert_problem(403, "forbidden");
    }
    app.get("/v1/rule-log?cursor=42", &w.platform.token)
        .await
        .assert_problem(400, "invalid_cursor");
}

#[actix_web::test]
async fn confirming_disputing_or_reopening_ends_the_wait() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let mut cases = Vec::new();
    for _ in 0..4 {
        let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
        start_case(&app, &w, &case).await;
        act(&app, &w.a_operator.token, &case, "complete")
            .await
            .assert_status(200);
        assert_eq!(waiting(&app, &case), 1);
        cases.push(case);
    }
    let transitions = |case: &str| format!("/v1/cases/{case}/transitions");

    // Confirmed without a rating: the answer points to the survey (the client closed it
    // themselves, so no notification asks them).
    let res = app
        .post(
            &transitions(&cases[0]),
            &w.client.token,
            json!({"action": "confirm_completion"}),
        )
        .await;
    assert_eq!(
        res.assert_status(200)["next_steps"],
        json!([{"rel": "survey", "href": format!("/v1/cases/{}/survey", cases[0])}])
    );
    // With a rating, nothing more to ask.
    let res = app
        .post(
            &transitions(&cases[1]),
            &w.client.token,
            json!({"action": "confirm_completion", "rating": 5}),
        )
        .await;
    assert_eq!(res.assert_status(200)["next_steps"], json!([]));
    act(&app, &w.client.token, &cases[2], "dispute_completion")
        .await
        .assert_status(200);
    act(&app, &w.a_operator.token, &cases[3], "reopen")
        .await
        .assert_status(200);
    for case in &cases {
        assert_eq!(waiting(&app, case), 0, "{case}");
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{}' \
             AND event = 'survey_requested'",
            w.client.id
        )),
        0
    );

    // Nothing closes a disputed case behind anyone's back, even with a wait left over.
    app.sql(&format!(
        "INSERT INTO awaiting_confirmation (case_id, completed_at) \
         VALUES ('{}', '2026-01-01 09:00:00')",
        cases[2]
    ));
    assert_eq!(round(&app).await, 0);
    assert_eq!(waiting(&app, &cases[2]), 0);
    let res = app
        .get(&format!("/v1/cases/{}", cases[2]), &w.client.token)
        .await;
    assert_eq!(res.assert_status(200)["status"], "completed");
    assert_eq!(res.body["disputed"], true);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM rule_log"), 0);

    // Completed again after reopening, the case waits again.
    act(&app, &w.a_operator.token, &cases[3], "complete")
        .await
        .assert_status(200);
    assert_eq!(waiting(&app, &cases[3]), 1);

    // The workflow table says so.
    let res = app.get("/v1/workflow", &w.client.token).await;
    let actions = res.assert_status(200)["actions"]
        .as_array()
        .unwrap()
        .clone();
    let effects = |action: &str| {
        actions
            .iter()
            .find(|a| a["action"] == action)
            .map(|a| a["effects"].clone())
            .unwrap()
    };
    assert!(
        effects("complete")
            .as_array()
            .unwrap()
            .contains(&json!("await_confirmation"))
    );
    assert_eq!(effects("auto_close"), json!(["ask_for_rating"]));
}

/// The worker itself: it sleeps until the first waiting case is due and closes it then.
#[actix_web::test]
async fn the_worker_closes_a_case_when_its_wait_ends() {
    let app = spawn_with(&[("DOSSIER_AUTO_CLOSE_AFTER", "1")]).await;
    dossier::rules::spawn(app.state.clone());
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    let card = format!("/v1/cases/{case}");
    let mut status = String::new();
    for _ in 0..100 {
        let res = app.get(&card, &w.client.token).await;
        status = res.assert_status(200)["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "closed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "closed");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM rule_log"), 1);
}

/// A case whose close fails is rolled back alone and stays waiting; the cases after it in the
/// round still close.
#[actix_web::test]
async fn a_failing_case_keeps_no_other_case_open() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let mut cases = Vec::new();
    for client in [&w.client2, &w.client] {
        let case = id(&buy(&app, &client.token, &w.service_a, "card").await);
        start_case(&app, &w, &case).await;
        act(&app, &w.a_operator.token, &case, "complete")
            .await
            .assert_status(200);
        cases.push(case);
    }
    // The first to be overdue cannot close: its client's open-case count is gone.
    app.sql(&format!(
        "UPDATE awaiting_confirmation SET completed_at = '2026-01-01 09:00:00' \
         WHERE case_id = '{}'",
        cases[0]
    ));
    app.sql(&format!(
        "UPDATE awaiting_confirmation SET completed_at = '2026-01-02 09:00:00' \
         WHERE case_id = '{}'",
        cases[1]
    ));
    app.sql(&format!(
        "DELETE FROM client_open_cases WHERE client_id = '{}'",
        w.client2.id
    ));
    let round = dossier::rules::close_overdue(&app.state).await.unwrap();
    assert_eq!(round, dossier::rules::Round { done: 1, failed: 1 });
    for (case, status, waits) in [(&cases[0], "completed", 1), (&cases[1], "closed", 0)] {
        let res = app
            .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
            .await;
        assert_eq!(res.assert_status(200)["status"], status);
        assert_eq!(waiting(&app, case), waits);
    }
    // Nothing of the failed close was kept.
    for table in ["audit_log", "notifications", "rule_log"] {
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE case_id = '{}' AND {}",
                cases[0],
                match table {
                    "audit_log" => "action = 'auto_close'",
                    "notifications" => "event = 'survey_requested'",
                    _ => "1 = 1",
                }
            )),
            0,
            "{table}"
        );
    }
}

/// The rule and the client's confirmation racing for one case: exactly one of them closes it,
/// and the other changes nothing (on PostgreSQL they truly overlap).
#[actix_web::test]
async fn the_rule_and_a_confirmation_racing_close_the_case_once() {
    let app = spawn().await;
    let w = World::new(&app).await;
    for _ in 0..5 {
        let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
        start_case(&app, &w, &case).await;
        act(&app, &w.a_operator.token, &case, "complete")
            .await
            .assert_status(200);
        app.sql("UPDATE awaiting_confirmation SET completed_at = '2026-01-01 09:00:00'");
        let path = format!("/v1/cases/{case}/transitions");
        let confirm = app.post(
            &path,
            &w.client.token,
            json!({"action": "confirm_completion"}),
        );
        let (res, round) = tokio::join!(confirm, dossier::rules::close_overdue(&app.state));
        let round = round.unwrap();
        assert_eq!(round.failed, 0);
        match round.done {
            0 => {
                res.assert_status(200);
            }
            _ => {
                res.assert_problem(409, "wrong_state");
            }
        }
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' \
                 AND field = 'status' AND new_value = 'closed'"
            )),
            1
        );
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM rule_log WHERE case_id = '{case}'"
            )),
            round.done as i64
        );
        assert_eq!(waiting(&app, &case), 0);
    }
}
