//! DESIGN.md's action table, row by row, from every role; and racing transitions.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{AppService, spawn};
use crate::world::{World, act, assign_agent, buy, id, start_case};

/// (action, from, to, roles, required inputs).
type Row = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);
/// The same row, owned, as read back from `GET /v1/workflow`.
type OwnedRow = (String, Vec<String>, String, Vec<String>, Vec<String>);

/// DESIGN.md's action table, exactly as it states it.
const TABLE: &[Row] = &[
    (
        "confirm_payment",
        &["awaiting_payment", "payment_failed"],
        "in_approval",
        &["platform"],
        &[],
    ),
    (
        "fail_payment",
        &["awaiting_payment"],
        "payment_failed",
        &["platform"],
        &["reason"],
    ),
    (
        "retry_payment",
        &["payment_failed"],
        "awaiting_payment",
        &["client"],
        &[],
    ),
    ("accept", &["in_approval"], "approved", &["agency"], &[]),
    (
        "reject",
        &["in_approval"],
        "rejected",
        &["agency"],
        &["reason"],
    ),
    ("start", &["approved"], "in_progress", &["agency"], &[]),
    (
        "suspend",
        &["approved", "in_progress"],
        "suspended",
        &["agency"],
        &["reason"],
    ),
    ("resume", &["suspended"], "in_progress", &["agency"], &[]),
    (
        "complete",
        &["in_progress"],
        "completed",
        &["agency"],
        &["resolution_type", "resolution"],
    ),
    (
        "confirm_completion",
        &["completed"],
        "closed",
        &["client"],
        &[],
    ),
    (
        "dispute_completion",
        &["completed"],
        "completed",
        &["client"],
        &["reason"],
    ),
    (
        "reopen",
        &["completed"],
        "in_progress",
        &["agency", "platform"],
        &["reason"],
    ),
    (
        "cancel",
        &["awaiting_payment", "payment_failed", "in_approval"],
        "cancelled",
        &["client", "platform"],
        &["reason"],
    ),
    ("auto_close", &["completed"], "closed", &[], &[]),
];

const ROLES: [&str; 4] = ["platform", "agency", "agent", "client"];

/// A user of `role`; the platform's is staff without the admin flag (the platform's actions
/// are every staff member's).
fn token<'a>(w: &'a World, role: &str) -> &'a str {
    match role {
        "platform" => &w.platform_staff.token,
        "agency" => &w.a_operator.token,
        "agent" => &w.a_agent.token,
        _ => &w.client.token,
    }
}

/// The actions `role` may take in `status`, by the table.
/// What the table offers `role` in `status`; a completion disputed already is not disputed
/// again.
fn expected_allowed(role: &str, status: &str, disputed: bool) -> Vec<&'static str> {
    TABLE
        .iter()
        .filter(|(_, from, _, roles, _)| from.contains(&status) && roles.contains(&role))
        .map(|(action, ..)| *action)
        .filter(|&action| !(disputed && action == "dispute_completion"))
        .collect()
}

/// A case of agency A and its client, brought to `status` through the API; in `in_progress`
/// and `suspended` agent A is on it.
async fn case_in<S>(app: &crate::helpers::TestApp<S>, w: &World, status: &str) -> String
where
    S: AppService,
{
    let payment = if matches!(status, "awaiting_payment" | "payment_failed") {
        "bank_transfer"
    } else {
        "card"
    };
    let case = id(&buy(app, &w.client.token, &w.service_a, payment).await);
    let steps: Vec<(&str, &str)> = match status {
        "awaiting_payment" | "in_approval" => vec![],
        "payment_failed" => vec![("platform", "fail_payment")],
        "cancelled" => vec![("client", "cancel")],
        "approved" => vec![("agency", "accept")],
        "rejected" => vec![("agency", "reject")],
        "in_progress" => vec![("agency", "accept"), ("agency", "start")],
        "suspended" => vec![
            ("agency", "accept"),
            ("agency", "start"),
            ("agency", "suspend"),
        ],
        "completed" => vec![
            ("agency", "accept"),
            ("agency", "start"),
            ("agency", "complete"),
        ],
        "closed" => vec![
            ("agency", "accept"),
            ("agency", "start"),
            ("agency", "complete"),
            ("client", "confirm_completion"),
        ],
        other => panic!("no path to {other}"),
    };
    for (role, action) in steps {
        act(app, token(w, role), &case, action)
            .await
            .assert_status(200);
        if action == "start" {
            assign_agent(app, w, &case).await;
        }
    }
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.platform.token)
        .await;
    assert_eq!(card.assert_status(200)["status"], status);
    case
}

fn actions(body: &Value, member: &str) -> Vec<String> {
    body[member]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn workflow_endpoint_is_the_design_table() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let res = app.get("/v1/workflow", &w.client.token).await;
    let body = res.assert_status(200);
    let served: Vec<OwnedRow> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let strings = |m: &str| {
                a[m].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            };
            (
                a["action"].as_str().unwrap().to_owned(),
                strings("from"),
                a["to"].as_str().unwrap().to_owned(),
                strings("roles"),
                strings("requires"),
            )
        })
        .collect();
    let expected: Vec<OwnedRow> = TABLE
        .iter()
        .map(|(a, f, t, r, q)| {
            let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            (a.to_string(), v(f), t.to_string(), v(r), v(q))
        })
        .collect();
    assert_eq!(served, expected);
    // The client's labels, as DESIGN.md's table writes them.
    let labels: Vec<(&str, &str)> = body["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["status"].as_str().unwrap(), s["label"].as_str().unwrap()))
        .collect();
    assert_eq!(
        labels,
        [
            ("awaiting_payment", "Awaiting payment"),
            ("payment_failed", "Payment failed"),
            ("in_approval", "Under review"),
            ("approved", "Approved"),
            ("rejected", "Rejected"),
            ("in_progress", "Investigation in progress"),
            ("suspended", "Suspended"),
            ("completed", "Completed — please confirm"),
            ("closed", "Closed"),
            ("cancelled", "Cancelled"),
        ]
    );
    let auto_close = &body["actions"][13];
    assert_eq!(auto_close["system_only"], true);
    // Every action that takes a case out of the statuses with calls ends its rooms, and no
    // other does.
    let calls_active: Vec<&str> = body["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["video_calls_active"] == true)
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(calls_active.len(), 4);
    let ending: Vec<&str> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["effects"]
                .as_array()
                .unwrap()
                .contains(&json!("end_video_calls"))
        })
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    let leaving: Vec<&str> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            let from = a["from"].as_array().unwrap();
            from.iter()
                .any(|f| calls_active.contains(&f.as_str().unwrap()))
                && !calls_active.contains(&a["to"].as_str().unwrap())
        })
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(ending, ["reject", "complete", "cancel"]);
    assert_eq!(ending, leaving);
    // The spec's description of the endpoint carries the same table.
    let spec = dossier::openapi::spec_json();
    assert!(
        spec.contains(
            "| `reopen` | `completed` | `in_progress` | `agency`, `platform` | `reason` |"
        )
    );
}

#[actix_web::test]
async fn every_row_of_the_action_table_from_every_role() {
    let app = spawn().await;
    let w = World::new(&app).await;
    for (action, from, to, roles, requires) in TABLE {
        for status in *from {
            // Every allowed role succeeds, and the audit trail records it.
            for role in *roles {
                let case = case_in(&app, &w, status).await;
                let res = act(&app, token(&w, role), &case, action).await;
                let body = res.assert_status(200);
                assert_eq!(
                    body["case"]["status"], *to,
                    "{action} by {role} from {status}"
                );
                assert_eq!(
                    actions(&body["case"], "allowed_actions"),
                    expected_allowed(role, to, *action == "dispute_completion"),
                    "allowed_actions after {action} by {role}"
                );
                let rows = app.count(&format!(
                    "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND action = '{action}'"
                ));
                assert!(rows >= 1, "audit rows for {action}");
                assert_eq!(
                    app.open_case_counts_off(),
                    0,
                    "open-case counts after {action} from {status}"
                );
            }
            // Every other role is refused (404 where it cannot even see the case), nothing changes.
            let case = case_in(&app, &w, status).await;
            let before = app
                .get(&format!("/v1/cases/{case}"), &w.platform.token)
                .await;
            for role in ROLES.iter().filter(|r| !roles.contains(r)) {
                let res = act(&app, token(&w, role), &case, action).await;
                let agent_sees = *role == "agent" && matches!(*status, "in_progress" | "suspended");
                if *role == "agent" && !agent_sees {
                    res.assert_problem(404, "not_found");
                } else {
                    res.assert_problem(403, "forbidden");
                }
            }
            // Missing inputs are 422, naming each one.
            if !requires.is_empty() && !roles.is_empty() {
                let res = app
                    .post(
                        &format!("/v1/cases/{case}/transitions"),
                        token(&w, roles[0]),
                        json!({"action": action}),
                    )
                    .await;
                let pointers: Vec<String> = res.assert_problem(422, "validation_failed")["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["pointer"].as_str().unwrap().to_owned())
                    .collect();
                let wanted: Vec<String> = requires.iter().map(|r| format!("/{r}")).collect();
                assert_eq!(pointers, wanted, "{action}");
            }
            let after = app
                .get(&format!("/v1/cases/{case}"), &w.platform.token)
                .await;
            assert_eq!(before.body["version"], after.body["version"]);
        }
        // The wrong state is 409 with what the caller may do instead.
        if let Some(role) = roles.first() {
            let wrong = ["in_approval", "approved", "closed"]
                .into_iter()
                .find(|s| !from.contains(s))
                .unwrap();
            let case = case_in(&app, &w, wrong).await;
            let res = act(&app, token(&w, role), &case, action).await;
            let body = res.assert_problem(409, "wrong_state");
            assert_eq!(
                actions(body, "allowed_actions"),
                expected_allowed(role, wrong, false),
                "{action} by {role} in {wrong}"
            );
        }
    }
}

#[actix_web::test]
async fn transitions_record_their_effects() {
    let app = spawn().await;
    let w = World::new(&app).await;
    // Bank transfer: pending → failed → pending → paid.
    let case = id(&buy(&app, &w.client.token, &w.service_a, "bank_transfer").await);
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(card.body["payment_state"], "pending");
    assert_eq!(actions(&card.body, "allowed_actions"), ["cancel"]);
    let res = act(&app, &w.platform.token, &case, "fail_payment").await;
    assert_eq!(res.assert_status(200)["case"]["payment_state"], "failed");
    let res = act(&app, &w.client.token, &case, "retry_payment").await;
    assert_eq!(res.assert_status(200)["case"]["payment_state"], "pending");
    let res = act(&app, &w.platform.token, &case, "confirm_payment").await;
    assert_eq!(res.assert_status(200)["case"]["payment_state"], "paid");
    for action in ["accept", "start", "complete"] {
        act(&app, &w.a_operator.token, &case, action)
            .await
            .assert_status(200);
    }
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(
        card.body["resolution"],
        json!({"type": "solved", "text": "Found him at the golf club."})
    );
    // Completed is not closed: the client may still dispute, and `closed_at` waits for that.
    assert_eq!(card.body["closed_at"], Value::Null);
    // A dispute flags the case and points to messages and tickets; reopen clears both.
    let res = act(&app, &w.client.token, &case, "dispute_completion").await;
    let body = res.assert_status(200);
    assert_eq!(body["case"]["disputed"], true);
    assert_eq!(body["case"]["status"], "completed");
    let rels: Vec<&str> = body["next_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rel"].as_str().unwrap())
        .collect();
    assert_eq!(rels, ["messages", "tickets"]);
    // Disputed once: the card no longer offers it, and a second dispute is refused and writes
    // nothing (no storyline entry, no news to the platform and the agency again).
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(
        actions(card.assert_status(200), "allowed_actions"),
        ["confirm_completion"]
    );
    let tables = [
        "audit_log",
        "storyline_events",
        "notifications",
        "webhook_deliveries",
    ];
    let before = app.rows_in(&tables);
    let res = act(&app, &w.client.token, &case, "dispute_completion").await;
    let problem = res.assert_problem(409, "wrong_state");
    assert_eq!(actions(problem, "allowed_actions"), ["confirm_completion"]);
    assert_eq!(app.rows_in(&tables), before);
    // The dispute's storyline entry is titled by its action alone (the case stays `completed`,
    // whose label asks the client to confirm).
    let storyline = app
        .get(&format!("/v1/cases/{case}/storyline"), &w.client.token)
        .await;
    let last = storyline.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["kind"].as_str(), last["title"].as_str()),
        (Some("status"), Some("Dispute completion"))
    );
    let res = act(&app, &w.a_operator.token, &case, "reopen").await;
    let body = res.assert_status(200);
    assert_eq!(body["case"]["disputed"], false);
    assert_eq!(body["case"]["resolution"], Value::Null);
    assert_eq!(body["case"]["closed_at"], Value::Null);
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    let res = act(&app, &w.client.token, &case, "confirm_completion").await;
    assert!(res.assert_status(200)["case"]["closed_at"].is_string());
    // The reasons are in the audit trail.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND field = 'reason' AND new_value = 'because' \
             AND action IN ('fail_payment', 'dispute_completion', 'reopen')"
        )),
        3
    );
    // Resolution inputs are refused by actions that take none, and auto_close by everyone.
    let other = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let res = app
        .post(
            &format!("/v1/cases/{other}/transitions"),
            &w.a_operator.token,
            json!({"action": "accept", "resolution": "x"}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["code"],
        "not_allowed"
    );
    let res = app
        .post(
            &format!("/v1/cases/{other}/transitions"),
            &w.a_operator.token,
            json!({"action": "explode"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    // Inputs are trimmed before their rules apply, as a ticket's are: a blank reason is too
    // short, and a reason is recorded without its padding.
    let path = format!("/v1/cases/{other}/transitions");
    let before = app.rows_in(&["audit_log"]);
    let res = app
        .post(
            &path,
            &w.a_operator.token,
            json!({"action": "reject", "reason": " \t "}),
        )
        .await;
    let errors = &res.assert_problem(422, "validation_failed")["errors"];
    assert_eq!(errors[0]["pointer"], "/reason");
    assert_eq!(errors[0]["code"], "length");
    assert_eq!(app.rows_in(&["audit_log"]), before);
    app.post(
        &path,
        &w.a_operator.token,
        json!({"action": "reject", "reason": "  Not our area.  "}),
    )
    .await
    .assert_status(200);
    assert_eq!(
        app.texts(&format!(
            "SELECT new_value AS t FROM audit_log WHERE case_id = '{other}' AND field = 'reason'"
        )),
        [Some("Not our area.".to_owned())]
    );
}

#[actix_web::test]
async fn accept_needs_every_required_field_filled() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let service = crate::world::create_service(
        &app,
        &w.a_admin.token,
        "Vehicle tracking",
        json!([
            {"key": "subject_name", "label": "Subject", "type": "text", "required": true},
            {"key": "plate", "label": "Plate", "type": "text", "required": true},
            {"key": "notes", "label": "Notes", "type": "long_text"}
        ]),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &service, "card").await);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM case_fields WHERE case_id = '{case}'"
        )),
        3
    );
    let res = act(&app, &w.a_operator.token, &case, "accept").await;
    let body = res.assert_problem(422, "required_data_missing");
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/required_data/subject_name", "/required_data/plate"]
    );
    // Filling the values (the required-data endpoints come with the case-content work).
    app.sql(&format!(
        "UPDATE case_fields SET value = '\"Mario\"' WHERE case_id = '{case}' AND key IN ('subject_name', 'plate')"
    ));
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
}

#[actix_web::test]
async fn racing_transitions_have_exactly_one_winner() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let results = join_all((0..8).map(|_| act(&app, &w.a_operator.token, &case, "suspend"))).await;
    let winners = results.iter().filter(|r| r.status.as_u16() == 200).count();
    assert_eq!(winners, 1);
    for loser in results.iter().filter(|r| r.status.as_u16() != 200) {
        let body = loser.assert_problem(409, "wrong_state");
        assert_eq!(actions(body, "allowed_actions"), ["resume"]);
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND action = 'suspend' AND field = 'status'"
        )),
        1
    );
    // Suspend/resume racing each other: one order wins, the case stays consistent.
    let results = join_all([
        act(&app, &w.a_operator.token, &case, "resume"),
        act(&app, &w.a_operator.token, &case, "resume"),
    ])
    .await;
    assert_eq!(
        results.iter().filter(|r| r.status.as_u16() == 200).count(),
        1
    );
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.platform.token)
        .await;
    assert_eq!(card.body["status"], "in_progress");
    assert_eq!(card.body["version"], 5);
}

/// A move committed between a transition's read and its write: the conditional update finds
/// the case moved on (PostgreSQL; SQLite's writer reads it after the commit), so the
/// transition writes nothing and says what the caller may do now, or 412 to an `If-Match`.
#[actix_web::test]
async fn a_transition_racing_a_committed_move_writes_nothing() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    let version = card.assert_status(200)["version"].as_i64().unwrap();
    let path = format!("/v1/cases/{case}/transitions");
    let tables = [
        "audit_log",
        "storyline_events",
        "notifications",
        "webhook_deliveries",
    ];
    let before = app.rows_in(&tables);
    let moved =
        format!("UPDATE cases SET status = 'suspended', version = version + 1 WHERE id = '{case}'");
    let suspend = json!({"action": "suspend", "reason": "Waiting for documents"});
    let res = app
        .while_held(
            &moved,
            app.post(&path, &w.a_operator.token, suspend.clone()),
        )
        .await;
    let body = res.assert_problem(409, "wrong_state");
    assert_eq!(actions(body, "allowed_actions"), ["resume"]);
    assert_eq!(app.rows_in(&tables), before);
    // With If-Match on the version it read: 412, and nothing written either.
    app.sql(&format!(
        "UPDATE cases SET status = 'in_progress', version = version + 1 WHERE id = '{case}'"
    ));
    let tag = format!("\"{}\"", version + 2);
    let if_match = [("if-match", tag.as_str())];
    let request = app.call("POST", &path, &w.a_operator.token, Some(suspend), &if_match);
    let res = app.while_held(&moved, request).await;
    res.assert_problem(412, "precondition_failed");
    assert_eq!(app.rows_in(&tables), before);
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.platform.token)
        .await;
    assert_eq!(card.assert_status(200)["status"], "suspended");
    assert_eq!(card.body["version"], version + 3);
}

#[actix_web::test]
async fn transitions_honour_if_match() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let path = format!("/v1/cases/{case}/transitions");
    let res = app
        .call(
            "POST",
            &path,
            &w.a_operator.token,
            Some(json!({"action": "accept"})),
            &[("if-match", "\"9\"")],
        )
        .await;
    res.assert_problem(412, "precondition_failed");
    let res = app
        .call(
            "POST",
            &path,
            &w.a_operator.token,
            Some(json!({"action": "accept"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(res.assert_status(200)["case"]["version"], 2);
    assert_eq!(res.header("etag"), Some("\"2\""));
}

/// Effects of the table beyond the status: `fail_payment` and `cancel` write their reason into
/// the storyline; `retry_payment` tells platform staff, which `fail_payment` does not.
#[actix_web::test]
async fn payment_and_cancel_effects_reach_the_storyline_and_the_platform() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "bank_transfer").await);
    let transition = async |token: &str, action: &str, reason: Option<&str>| {
        let mut body = json!({"action": action});
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        app.post(&format!("/v1/cases/{case}/transitions"), token, body)
            .await
            .assert_status(200);
    };
    let platform_bell = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE event = 'status_changed' \
             AND user_id IN ('{}', '{}')",
            w.platform.id, w.platform_staff.id
        ))
    };
    transition(
        &w.platform.token,
        "fail_payment",
        Some("The transfer bounced."),
    )
    .await;
    assert_eq!(
        platform_bell(),
        0,
        "fail_payment does not notify the platform"
    );
    // The client hears of it, with the reason.
    let bell = app.get("/v1/notifications", &w.client.token).await;
    let newest = bell.assert_status(200)["items"][0].clone();
    assert_eq!(newest["event"], "status_changed");
    assert!(
        newest["title"]
            .as_str()
            .unwrap()
            .ends_with(" — Payment failed"),
        "{newest}"
    );
    assert_eq!(newest["body"], "The transfer bounced.");
    assert_eq!(newest["link"], format!("/v1/cases/{case}"));
    transition(&w.client.token, "retry_payment", None).await;
    assert_eq!(
        platform_bell(),
        2,
        "retry_payment notifies every platform user"
    );
    transition(&w.client.token, "cancel", Some("Found him myself.")).await;

    let storyline = app
        .get(&format!("/v1/cases/{case}/storyline"), &w.a_operator.token)
        .await;
    let entries: Vec<(String, String)> = storyline.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("status".to_owned(), "The transfer bounced.".to_owned()),
            ("status".to_owned(), "Found him myself.".to_owned()),
        ]
    );
}
