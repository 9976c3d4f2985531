//! SLA: calendars and policies (who manages and reads them, what is refused), and the clocks of
//! a case: started by payment and work, paused by suspension and open requests, stopped by the
//! answer, the decision and the completion, counted in business hours, and warned and breached
//! once each by the rules' worker; and a support ticket's two clocks under the platform's
//! policy.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{AppService, TestApp, spawn};
use crate::world::{
    LONG_PAST, World, act, backdate_clocks, buy, id, ids, post_message, start_case,
};

fn targets(first_response: i64, decision: i64, resolution: i64) -> Value {
    let each =
        json!({"first_response": first_response, "decision": decision, "resolution": resolution});
    json!({"low": each, "normal": each, "high": each, "urgent": each})
}

fn at(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// The case's clocks by name.
async fn clocks<S>(app: &TestApp<S>, token: &str, case: &str) -> Value
where
    S: AppService,
{
    clocks_at(app, token, &format!("/v1/cases/{case}/sla")).await
}

/// The clocks `path` reads, by name, with the state.
async fn clocks_at<S>(app: &TestApp<S>, token: &str, path: &str) -> Value
where
    S: AppService,
{
    let res = app.get(path, token).await;
    let body = res.assert_status(200);
    let mut by_name = serde_json::Map::new();
    for clock in body["clocks"].as_array().unwrap() {
        by_name.insert(clock["clock"].as_str().unwrap().to_owned(), clock.clone());
    }
    json!({"state": body["state"], "clocks": by_name})
}

/// Agency A's default policy: first response 60 min, decision 240, resolution 2 880 (two days).
async fn standard_policy<S>(app: &TestApp<S>, w: &World) -> Value
where
    S: AppService,
{
    let body = json!({"name": "Standard", "targets": targets(60, 240, 2880)});
    policy(app, &w.a_admin.token, body).await
}

async fn policy<S>(app: &TestApp<S>, token: &str, body: Value) -> Value
where
    S: AppService,
{
    app.post("/v1/sla-policies", token, body)
        .await
        .assert_status(201)
        .clone()
}

#[actix_web::test]
async fn a_target_is_in_reach_only_of_the_hours_daylight_saving_leaves() {
    let app = spawn().await;
    let w = World::new(&app).await;
    // One hour a week, the very hour New York skips each March: 1 043 weeks in the 20-year
    // search hold 1 043 hours, less a lost one a year.
    let sunday = json!({"name": "Sunday night", "time_zone": "America/New_York",
                        "hours": [{"weekday": "sun", "opens": "02:00", "closes": "03:00"}]});
    let res = app.post("/v1/calendars", &w.a_admin.token, sunday).await;
    let calendar = id(res.assert_status(201));
    let policy = |hours: i64| {
        json!({"name": format!("{hours} h"), "calendar_id": calendar,
               "targets": targets(60, 60, hours * 60)})
    };
    let res = app
        .post("/v1/sla-policies", &w.a_admin.token, policy(1_043))
        .await;
    res.assert_problem(422, "out_of_reach");
    let res = app
        .post("/v1/sla-policies", &w.a_admin.token, policy(1_020))
        .await;
    res.assert_status(201);
    // Open around the clock in Rome, a year's target is in reach (the hours lost each spring
    // are a sliver of 20 years').
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let hours = days.map(|d| json!({"weekday": d, "opens": "00:00", "closes": "24:00"}));
    let rome = json!({"name": "Always", "time_zone": "Europe/Rome", "hours": hours});
    let res = app.post("/v1/calendars", &w.a_admin.token, rome).await;
    let always = id(res.assert_status(201));
    let year =
        json!({"name": "A year", "calendar_id": always, "targets": targets(60, 60, 525_600)});
    app.post("/v1/sla-policies", &w.a_admin.token, year)
        .await
        .assert_status(201);
}

#[actix_web::test]
async fn calendars_and_policies_are_managed_by_admins_and_read_by_staff() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let office = json!({
        "name": "Rome office", "time_zone": "Europe/Rome",
        "hours": [{"weekday": "mon", "opens": "09:00", "closes": "13:00"},
                  {"weekday": "mon", "opens": "14:00", "closes": "18:00"}],
        "holidays": ["2026-12-25", "2026-12-08", "2026-12-25"]
    });
    let res = app
        .post("/v1/calendars", &w.a_admin.token, office.clone())
        .await;
    let calendar = res.assert_status(201).clone();
    assert_eq!(calendar["agency_id"], w.agency_a.as_str());
    assert_eq!(calendar["time_zone"], "Europe/Rome");
    assert_eq!(calendar["holidays"], json!(["2026-12-08", "2026-12-25"]));
    assert_eq!(calendar["hours"].as_array().unwrap().len(), 2);
    let location = format!("/v1/calendars/{}", id(&calendar));
    assert_eq!(res.header("location"), Some(location.as_str()));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'calendar' AND entity_id = '{}' \
             AND action = 'create' AND agency_id = '{}'",
            id(&calendar),
            w.agency_a
        )),
        1
    );

    // Only admins write; agents and clients do not read.
    for token in [
        &w.a_operator.token,
        &w.platform_staff.token,
        &w.client.token,
    ] {
        app.post("/v1/calendars", token, office.clone())
            .await
            .assert_problem(403, "forbidden");
    }
    for token in [&w.a_agent.token, &w.client.token] {
        for path in ["/v1/calendars", "/v1/sla-policies"] {
            app.get(path, token).await.assert_problem(403, "forbidden");
        }
    }

    // Refused, with every problem named and nothing written.
    let before = app.rows_in(&["calendars", "sla_policies", "audit_log"]);
    let res = app
        .post(
            "/v1/calendars",
            &w.a_admin.token,
            json!({"name": "Bad", "time_zone": "Mars/Olympus",
                   "hours": [{"weekday": "tue", "opens": "18:00", "closes": "09:00"},
                             {"weekday": "wed", "opens": "9:00", "closes": "24:00"}]}),
        )
        .await;
    let problem = res.assert_problem(422, "validation_failed");
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/time_zone", "/hours/0/closes", "/hours/1/opens"],
        "{problem}"
    );
    let overlapping = json!({"name": "Overlap", "time_zone": "UTC",
        "hours": [{"weekday": "fri", "opens": "09:00", "closes": "13:00"},
                  {"weekday": "fri", "opens": "12:00", "closes": "18:00"}]});
    let res = app
        .post("/v1/calendars", &w.a_admin.token, overlapping)
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["pointer"],
        "/hours"
    );
    let empty = json!({"name": "Never", "time_zone": "UTC", "hours": []});
    app.post("/v1/calendars", &w.a_admin.token, empty)
        .await
        .assert_problem(422, "validation_failed");
    // Times exactly `HH:MM`, dates exactly `YYYY-MM-DD` (chrono alone reads each as a time or
    // a date: `26-12-25` would be the year 26).
    for (opens, holiday, pointer) in [
        (" 9:00", "2026-12-25", "/hours/0/opens"),
        ("09: 5", "2026-12-25", "/hours/0/opens"),
        ("09:00", "26-12-25", "/holidays/0"),
        ("09:00", "2026-1-5", "/holidays/0"),
        ("09:00", "2026 -12-2", "/holidays/0"),
    ] {
        let body = json!({"name": "Loose", "time_zone": "UTC", "holidays": [holiday],
            "hours": [{"weekday": "mon", "opens": opens, "closes": "18:00"}]});
        let res = app.post("/v1/calendars", &w.a_admin.token, body).await;
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    assert_eq!(
        app.rows_in(&["calendars", "sla_policies", "audit_log"]),
        before
    );

    // Each agency reads its own and the platform's.
    let platform_calendar = app
        .post(
            "/v1/calendars",
            &w.platform.token,
            json!({"name": "Platform", "time_zone": "UTC",
                   "hours": [{"weekday": "mon", "opens": "00:00", "closes": "24:00"}]}),
        )
        .await
        .assert_status(201)
        .clone();
    assert_eq!(platform_calendar["agency_id"], Value::Null);
    let seen_by_a = app.get("/v1/calendars", &w.a_operator.token).await;
    assert_eq!(
        ids(seen_by_a.assert_status(200)),
        [id(&platform_calendar), id(&calendar)]
    );
    let seen_by_b = app.get("/v1/calendars", &w.b_admin.token).await;
    assert_eq!(ids(seen_by_b.assert_status(200)), [id(&platform_calendar)]);
    let of_a = format!("/v1/calendars?agency_id={}", w.agency_a);
    let seen = app.get(&of_a, &w.platform_staff.token).await;
    assert_eq!(ids(seen.assert_status(200)), [id(&calendar)]);
    // An agency's staff may ask for their agency's alone.
    for token in [&w.a_admin.token, &w.a_operator.token] {
        let seen = app.get(&of_a, token).await;
        assert_eq!(ids(seen.assert_status(200)), [id(&calendar)]);
    }
    app.get(&of_a, &w.b_admin.token)
        .await
        .assert_problem(403, "forbidden");

    // A policy counts in its owner's calendar or the platform's, never another agency's.
    let b_calendar = app
        .post(
            "/v1/calendars",
            &w.b_admin.token,
            json!({"name": "Madrid", "time_zone": "Europe/Madrid",
                   "hours": [{"weekday": "mon", "opens": "09:00", "closes": "17:00"}]}),
        )
        .await
        .assert_status(201)
        .clone();
    let before = app.rows_in(&["calendars", "sla_policies", "audit_log"]);
    let res = app
        .post(
            "/v1/sla-policies",
            &w.a_admin.token,
            json!({"name": "Borrowed", "calendar_id": id(&b_calendar), "targets": targets(60, 60, 60)}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "calendar_unavailable")["errors"][0]["pointer"],
        "/calendar_id"
    );
    // Zero minutes, a fraction of one or of a percent, and a target the calendar (8 hours a
    // week) cannot reach in 20 years.
    let mut fraction = targets(60, 60, 60);
    fraction["high"]["decision"] = json!(59.5);
    for body in [
        json!({"name": "Zero", "targets": targets(0, 60, 60)}),
        json!({"name": "Fraction", "targets": fraction}),
        json!({"name": "Percent", "warning_percent": 50.5, "targets": targets(60, 60, 60)}),
    ] {
        let res = app.post("/v1/sla-policies", &w.a_admin.token, body).await;
        res.assert_problem(422, "validation_failed");
    }
    // A nested target out of range is pointed at, each where it is.
    let mut over = targets(60, 60, 60);
    over["urgent"]["resolution"] = json!(525_601);
    over["low"]["first_response"] = json!(0);
    let body = json!({"name": "Over", "targets": over});
    let res = app.post("/v1/sla-policies", &w.a_admin.token, body).await;
    let errors = &res.assert_problem(422, "validation_failed")["errors"];
    let pointed: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["pointer"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pointed,
        [
            ("/targets/low/first_response", "range"),
            ("/targets/urgent/resolution", "range")
        ]
    );
    assert_eq!(res.body["detail"], "The request breaks 2 rules.");
    let res = app
        .post(
            "/v1/sla-policies",
            &w.a_admin.token,
            json!({"name": "Forever", "calendar_id": id(&calendar), "targets": targets(60, 60, 525_600)}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "out_of_reach")["errors"][0]["pointer"],
        "/targets"
    );
    app.post(
        "/v1/sla-policies",
        &w.a_operator.token,
        json!({"name": "Mine", "targets": targets(60, 60, 60)}),
    )
    .await
    .assert_problem(403, "forbidden");
    assert_eq!(
        app.rows_in(&["calendars", "sla_policies", "audit_log"]),
        before
    );

    // A new default takes over from the previous one.
    let first = policy(
        &app,
        &w.a_admin.token,
        json!({"name": "Office hours", "calendar_id": id(&platform_calendar), "targets": targets(60, 120, 600)}),
    )
    .await;
    assert_eq!(first["default"], true);
    assert_eq!(first["warning_percent"], 80);
    assert_eq!(first["calendar_id"], id(&platform_calendar).as_str());
    let second = policy(
        &app,
        &w.a_admin.token,
        // Whole numbers however written: `50.0` is 50, as JSON Schema counts integers.
        json!({"name": "Around the clock", "warning_percent": 50.0, "targets": targets(30, 60, 300)}),
    )
    .await;
    assert_eq!(second["warning_percent"], 50);
    let page = app.get("/v1/sla-policies", &w.a_operator.token).await;
    let items = page.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], second["id"]);
    assert_eq!(items[0]["default"], true);
    assert_eq!(items[1]["default"], false);
    // The old default's demotion is in the audit trail, by the admin who made the new one.
    let demoted = app.texts(&format!(
        "SELECT actor_id || ' ' || old_value || ' ' || new_value AS t FROM audit_log \
         WHERE entity = 'sla_policy' AND entity_id = '{}' AND action = 'update' \
         AND field = 'default'",
        first["id"].as_str().unwrap()
    ));
    assert_eq!(demoted, [Some(format!("{} true false", w.a_admin.id))]);
    assert_eq!(items[0]["targets"]["urgent"]["first_response"], 30);
    let seen_by_b = app.get("/v1/sla-policies", &w.b_operator.token).await;
    assert_eq!(seen_by_b.assert_status(200)["items"], json!([]));
}

/// A bank transfer's case is not worked before it is paid: its clocks start when the platform
/// confirms the payment, not at the purchase.
#[actix_web::test]
async fn a_bank_transfer_starts_its_clocks_when_its_payment_is_confirmed() {
    let app = spawn().await;
    let w = World::new(&app).await;
    standard_policy(&app, &w).await;
    let bought = buy(&app, &w.client.token, &w.service_a, "bank_transfer").await;
    let case = id(&bought);
    assert_eq!(bought["sla"], Value::Null);
    assert_eq!(
        clocks(&app, &w.a_operator.token, &case).await["clocks"],
        json!({})
    );
    let paid_from = Utc::now();
    let res = act(&app, &w.platform.token, &case, "confirm_payment").await;
    assert_eq!(res.assert_status(200)["case"]["status"], "in_approval");
    let read = clocks(&app, &w.a_operator.token, &case).await;
    for (clock, hours) in [("first_response", 1), ("decision", 4)] {
        let clock = &read["clocks"][clock];
        assert_eq!(clock["state"], "running");
        let started = at(&clock["started_at"]);
        assert!(started >= paid_from - Duration::seconds(1), "{started}");
        assert_eq!(at(&clock["due_at"]), started + Duration::hours(hours));
    }
    assert!(read["clocks"].get("resolution").is_none());
    assert_eq!(res.body["case"]["sla"]["state"], "on_track");
}

#[actix_web::test]
async fn clocks_start_pause_and_stop_with_the_case() {
    let app = spawn().await;
    let w = World::new(&app).await;
    // Without a policy, no clocks.
    let before = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(before["sla"], Value::Null);
    assert_eq!(
        clocks(&app, &w.a_operator.token, &id(&before)).await["clocks"],
        json!({})
    );

    standard_policy(&app, &w).await;
    // The agency's default wins over the platform's, which applies to agency B.
    policy(
        &app,
        &w.platform.token,
        json!({"name": "Platform", "targets": targets(5, 5, 5)}),
    )
    .await;
    let of_b = id(&buy(&app, &w.client.token, &w.service_b, "card").await);
    let read = clocks(&app, &w.b_operator.token, &of_b).await;
    assert_eq!(read["clocks"]["first_response"]["target_seconds"], 300);
    let card = buy(&app, &w.client.token, &w.service_a, "card").await;
    let case = id(&card);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["state"], "on_track");
    let first = &read["clocks"]["first_response"];
    assert_eq!(first["state"], "running");
    assert_eq!(first["target_seconds"], 3600);
    assert_eq!(first["breached"], false);
    assert_eq!(first["at_risk"], false);
    let started = at(&first["started_at"]);
    assert_eq!(at(&first["due_at"]), started + Duration::hours(1));
    let decision = &read["clocks"]["decision"];
    assert_eq!(at(&decision["due_at"]), started + Duration::hours(4));
    assert!(read["clocks"].get("resolution").is_none());
    // The card's summary: the earliest due time.
    assert_eq!(card["sla"]["state"], "on_track");
    assert_eq!(card["sla"]["breached"], false);
    assert_eq!(at(&card["sla"]["due_at"]), started + Duration::hours(1));

    // An internal note and a call the client made (logged inbound) answer nobody: it runs on.
    let m = format!("/v1/cases/{case}/messages");
    for body in [
        json!({"body": "Check his car.", "internal": true}),
        json!({"body": "He called.", "channel": "phone", "direction": "inbound"}),
    ] {
        app.post(&m, &w.a_operator.token, body)
            .await
            .assert_status(201);
    }
    let read = clocks(&app, &w.client.token, &case).await;
    assert_eq!(read["clocks"]["first_response"]["state"], "running");
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    let card = card.assert_status(200).clone();

    // The agency's answer stops the first-response clock, met; the card's version moves on.
    let version = card["version"].as_i64().unwrap();
    post_message(&app, &w.a_operator.token, &case, "We are on it.").await;
    let read = clocks(&app, &w.client.token, &case).await;
    let first = &read["clocks"]["first_response"];
    assert_eq!(first["state"], "stopped");
    assert_eq!(first["met"], true);
    assert_eq!(first["due_at"], Value::Null);
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    let card = card.assert_status(200).clone();
    assert_eq!(card["version"], version + 1);
    assert_eq!(at(&card["sla"]["due_at"]), started + Duration::hours(4));
    // A second answer changes nothing.
    post_message(&app, &w.a_operator.token, &case, "Still on it.").await;
    let again = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    assert_eq!(again.assert_status(200)["version"], version + 1);

    // The decision stops its clock; `start` starts the resolution clock.
    start_case(&app, &w, &case).await;
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["clocks"]["decision"]["met"], true);
    let resolution = read["clocks"]["resolution"].clone();
    assert_eq!(resolution["state"], "running");
    assert_eq!(resolution["target_seconds"], 2880 * 60);
    let due = at(&resolution["due_at"]);

    // Suspension pauses it; resuming moves its due time on by the pause.
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    let paused = &read["clocks"]["resolution"];
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["due_at"], Value::Null);
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    assert_eq!(card.assert_status(200)["sla"]["due_at"], Value::Null);
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1100)).await;
    act(&app, &w.a_operator.token, &case, "resume")
        .await
        .assert_status(200);
    let resumed = clocks(&app, &w.a_operator.token, &case).await["clocks"]["resolution"].clone();
    assert_eq!(resumed["state"], "running");
    assert!(
        at(&resumed["due_at"]) >= due + Duration::seconds(1),
        "{resumed}"
    );

    // An open request to the client pauses it too; the answer lets it run again.
    let request = app
        .post(
            &format!("/v1/cases/{case}/requests"),
            &w.a_operator.token,
            json!({"kind": "question", "prompt": "Which car does he drive?"}),
        )
        .await;
    let request = id(request.assert_status(201));
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["clocks"]["resolution"]["state"], "paused");
    app.post(
        &format!("/v1/cases/{case}/requests/{request}/answer"),
        &w.client.token,
        json!({"text": "A red Fiat."}),
    )
    .await
    .assert_status(200);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["clocks"]["resolution"]["state"], "running");

    // Completion stops it, met: every clock met.
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["state"], "met");
    assert_eq!(read["clocks"]["resolution"]["state"], "stopped");
    assert_eq!(read["clocks"]["resolution"]["met"], true);
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(
        card.assert_status(200)["sla"],
        json!({"state": "met", "breached": false, "due_at": null})
    );

    // Reopening runs the resolution clock again.
    act(&app, &w.a_operator.token, &case, "reopen")
        .await
        .assert_status(200);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["clocks"]["resolution"]["state"], "running");
    assert_eq!(read["state"], "on_track");

    // Clocks start under the policy in force when they start: the case bought before it has
    // only a resolution clock once work starts.
    let earlier = id(&before);
    start_case(&app, &w, &earlier).await;
    let read = clocks(&app, &w.a_operator.token, &earlier).await;
    let names: Vec<&String> = read["clocks"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["resolution"]);
    // A case suspended before work started gets its resolution clock when it resumes.
    let late = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    for action in ["accept", "suspend", "resume"] {
        act(&app, &w.a_operator.token, &late, action)
            .await
            .assert_status(200);
    }
    let read = clocks(&app, &w.a_operator.token, &late).await;
    assert_eq!(read["clocks"]["resolution"]["state"], "running");

    // Another agency, another client and an agent off the case see nothing.
    for token in [&w.b_admin.token, &w.client2.token, &w.a_agent.token] {
        app.get(&format!("/v1/cases/{case}/sla"), token)
            .await
            .assert_problem(404, "not_found");
    }
}

/// The resolution clock is paused while any request to the client is open, whichever way the
/// request or the case moves: opened before the work starts, another still open after one is
/// answered, a suspension ended while one is open, the last one cancelled.
#[actix_web::test]
async fn open_requests_pause_the_resolution_clock_on_every_path() {
    let app = spawn().await;
    let w = World::new(&app).await;
    standard_policy(&app, &w).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let op = &w.a_operator.token;
    let resolution = || {
        let (app, case) = (&app, case.clone());
        async move {
            let read = clocks(app, op, &case).await;
            let clock = &read["clocks"]["resolution"];
            (
                clock["state"].as_str().unwrap().to_owned(),
                clock["due_at"].clone(),
            )
        }
    };
    let requests = format!("/v1/cases/{case}/requests");
    let ask = |prompt: &'static str| {
        let (app, requests) = (&app, requests.clone());
        async move {
            let body = json!({"kind": "question", "prompt": prompt});
            id(app.post(&requests, op, body).await.assert_status(201))
        }
    };
    act(&app, op, &case, "accept").await.assert_status(200);
    let first = ask("Which car does he drive?").await;
    act(&app, op, &case, "start").await.assert_status(200);
    assert_eq!(resolution().await, ("paused".to_owned(), Value::Null));
    let second = ask("Where does he park?").await;
    app.post(
        &format!("{requests}/{first}/answer"),
        &w.client.token,
        json!({"text": "A red Fiat."}),
    )
    .await
    .assert_status(200);
    assert_eq!(resolution().await.0, "paused", "one request is still open");
    act(&app, op, &case, "suspend").await.assert_status(200);
    assert_eq!(resolution().await.0, "paused");
    act(&app, op, &case, "resume").await.assert_status(200);
    assert_eq!(resolution().await, ("paused".to_owned(), Value::Null));
    app.post(&format!("{requests}/{second}/cancel"), op, json!({}))
        .await
        .assert_status(200);
    let (state, due_at) = resolution().await;
    assert_eq!(state, "running");
    assert!(due_at.is_string());
}

#[actix_web::test]
async fn the_worker_raises_a_warning_and_a_breach_once_and_the_breach_stays() {
    let app = spawn().await;
    let w = World::new(&app).await;
    policy(
        &app,
        &w.platform.token,
        json!({"name": "Platform default", "targets": targets(10, 240, 2880)}),
    )
    .await;
    let card = buy(&app, &w.client.token, &w.service_a, "card").await;
    let case = id(&card);
    let other = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let version = card["version"].as_i64().unwrap();
    // Agency A's integration hears of warnings and breaches (agency B's of nothing of A's).
    for admin in [&w.a_admin.token, &w.b_admin.token] {
        let hook =
            json!({"url": "https://hooks.example/sla", "events": ["sla_warning", "sla_breached"]});
        app.post("/v1/webhooks", admin, hook)
            .await
            .assert_status(201);
    }
    let delivered = || {
        app.texts(&format!(
            "SELECT d.event || ' ' || w.agency_id AS t FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id WHERE d.case_id = '{case}' ORDER BY d.event"
        ))
    };

    // Nothing due yet.
    let round = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!(round.done, 0);
    assert!(delivered().is_empty());

    // The first-response clock's warning and target pass (as if 20 minutes went by).
    app.patch(
        &format!("/v1/users/{}", w.a_admin.id),
        &w.platform.token,
        json!({"locale": "it"}),
    )
    .await
    .assert_status(200);
    backdate_clocks(&app, &case, &["first_response"], LONG_PAST);
    let round = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!((round.done, round.failed), (1, 0));
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    let card = card.assert_status(200).clone();
    assert_eq!(card["sla"]["state"], "breached");
    assert_eq!(card["sla"]["breached"], true);
    assert_eq!(card["version"], version + 1);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    let first = &read["clocks"]["first_response"];
    assert_eq!(first["breached_at"], "2026-01-01T09:10:00Z");
    assert_eq!(first["warned_at"], "2026-01-01T09:08:00Z");
    assert_eq!(first["breached"], true);
    assert_eq!(first["at_risk"], false);
    assert!(first["remaining_seconds"].as_i64().unwrap() < 0);

    // Once each: the agency's operators hear of both, the rule log and the audit trail say so.
    let sla_events = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE case_id = '{case}' \
             AND event IN ('sla_warning', 'sla_breached')"
        ))
    };
    let bell = app.get("/v1/notifications", &w.a_operator.token).await;
    let events: Vec<&str> = bell.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["case_id"] == case.as_str())
        .map(|n| n["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["sla_breached", "sla_warning"]);
    // Each in their own language; the rule log and the webhooks keep the English account.
    let warned = |token: &str| {
        let (app, token) = (&app, token.to_owned());
        async move {
            let bell = app.get("/v1/notifications", &token).await;
            bell.assert_status(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["event"] == "sla_warning")
                .map(|n| n["body"].clone())
        }
    };
    let english = "The first response clock was at risk at 2026-01-01T09:08:00Z \
                   (target 10 min).";
    assert_eq!(warned(&w.a_operator.token).await, Some(json!(english)));
    assert_eq!(
        warned(&w.a_admin.token).await,
        Some(json!(
            "Il tempo di prima risposta era a rischio alle 2026-01-01T09:08:00Z \
             (obiettivo 10 min)."
        ))
    );
    let details = app.texts(&format!(
        "SELECT detail AS t FROM rule_log WHERE case_id = '{case}' AND rule = 'sla_warning'"
    ));
    assert_eq!(details, [Some(english.to_owned())]);
    // Nobody holds the case: both of agency A's staff hear of both.
    assert_eq!(sla_events(), 4);
    let log = app
        .get(&format!("/v1/cases/{case}/rule-log"), &w.a_operator.token)
        .await;
    let entries = log.assert_status(200)["items"].as_array().unwrap().clone();
    let fired: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["rule"].as_str().unwrap(), e["trigger"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fired,
        [
            ("sla_breach", "first_response_overdue"),
            ("sla_warning", "first_response_at_risk")
        ]
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND action = 'sla_breach' \
             AND field = 'sla_state' AND new_value = 'breached' AND actor_id IS NULL"
        )),
        1
    );
    let once = vec![
        Some(format!("sla_breached {}", w.agency_a)),
        Some(format!("sla_warning {}", w.agency_a)),
    ];
    assert_eq!(delivered(), once);
    let round = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!(round.done, 0);
    assert_eq!(sla_events(), 4);
    assert_eq!(delivered(), once);

    // One audit row for the state, with the last crossing.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND field = 'sla_state'"
        )),
        1
    );

    // The SLA views of the list.
    let breached = app.get("/v1/cases?sla=breached", &w.a_operator.token).await;
    assert_eq!(ids(breached.assert_status(200)), [case.as_str()]);
    assert_eq!(breached.body["items"][0]["sla"]["breached"], true);
    let on_track = app
        .get("/v1/cases?sla=on_track&sla=at_risk", &w.a_operator.token)
        .await;
    assert_eq!(ids(on_track.assert_status(200)), [other.as_str()]);
    let elsewhere = app.get("/v1/cases?sla=breached", &w.b_operator.token).await;
    assert_eq!(ids(elsewhere.assert_status(200)), Vec::<&str>::new());
    app.get("/v1/cases?sla=late", &w.a_operator.token)
        .await
        .assert_problem(400, "invalid_query");

    // A late answer stops the clock, not met; the breach stays on the card.
    post_message(&app, &w.a_operator.token, &case, "Sorry for the wait.").await;
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["clocks"]["first_response"]["met"], false);
    assert_eq!(read["state"], "breached");
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(card.assert_status(200)["sla"]["state"], "breached");
}

/// A clock past its warning and short of its target: its case is `at_risk` on the card and in
/// the list's `at_risk` view (not in `on_track`'s), and only the warning is told and logged.
#[actix_web::test]
async fn a_warned_clock_puts_its_case_at_risk_on_the_card_and_in_the_list() {
    let app = spawn().await;
    let w = World::new(&app).await;
    policy(
        &app,
        &w.platform.token,
        json!({"name": "Platform default", "targets": targets(10, 240, 2880)}),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let other = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    // Nine of its ten minutes gone: past the warning (80%), short of the target.
    let ago = |minutes: i64| {
        (Utc::now() - chrono::Duration::minutes(minutes))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let (began, warned, due) = (ago(9), ago(1), ago(-1));
    backdate_clocks(&app, &case, &["first_response"], [&began, &warned, &due]);
    let round = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!((round.done, round.failed), (1, 0));
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    let card = card.assert_status(200).clone();
    assert_eq!(card["sla"]["state"], "at_risk");
    assert_eq!(card["sla"]["breached"], false);
    let first = &clocks(&app, &w.a_operator.token, &case).await["clocks"]["first_response"];
    assert_eq!(
        (first["at_risk"].clone(), first["breached"].clone()),
        (json!(true), json!(false))
    );
    let at_risk = app.get("/v1/cases?sla=at_risk", &w.a_operator.token).await;
    assert_eq!(ids(at_risk.assert_status(200)), [case.as_str()]);
    let on_track = app.get("/v1/cases?sla=on_track", &w.a_operator.token).await;
    assert_eq!(ids(on_track.assert_status(200)), [other.as_str()]);
    let told = |event: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE case_id = '{case}' AND event = '{event}'"
        ))
    };
    // Both of agency A's staff (nobody holds the case), of the warning alone.
    assert_eq!((told("sla_warning"), told("sla_breached")), (2, 0));
    let log = app
        .get(&format!("/v1/cases/{case}/rule-log"), &w.a_operator.token)
        .await;
    let entries = log.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["trigger"], "first_response_at_risk");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND field = 'sla_state' \
             AND old_value = 'on_track' AND new_value = 'at_risk'"
        )),
        1
    );
}

/// Open under the calendar at `t`: Monday to Friday, 09:00–12:00 and 13:00–17:00 in New York,
/// but not on `holiday`. Counted second by second: nothing shared with the server's windows.
fn open_in_new_york(t: DateTime<Utc>, holiday: NaiveDate) -> bool {
    let local = t.with_timezone(&chrono_tz::America::New_York);
    let time = local.time();
    let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let weekday = local.weekday().num_days_from_monday() < 5;
    let in_hours =
        (time >= hm(9, 0) && time < hm(12, 0)) || (time >= hm(13, 0) && time < hm(17, 0));
    weekday && in_hours && local.date_naive() != holiday
}

#[actix_web::test]
async fn business_hours_count_only_the_calendars_open_time() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let now = Utc::now().with_timezone(&chrono_tz::America::New_York);
    // Tomorrow in New York, or the next weekday, is a holiday.
    let mut holiday = now.date_naive() + Duration::days(1);
    while holiday.weekday().num_days_from_monday() >= 5 {
        holiday += Duration::days(1);
    }
    let hours: Vec<Value> = ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .flat_map(|d| {
            [
                json!({"weekday": d, "opens": "09:00", "closes": "12:00"}),
                json!({"weekday": d, "opens": "13:00", "closes": "17:00"}),
            ]
        })
        .collect();
    let calendar = app
        .post(
            "/v1/calendars",
            &w.a_admin.token,
            json!({"name": "New York", "time_zone": "America/New_York",
                   "hours": hours, "holidays": [holiday.to_string()]}),
        )
        .await;
    let calendar = id(calendar.assert_status(201));
    policy(
        &app,
        &w.a_admin.token,
        json!({"name": "New York hours", "calendar_id": calendar, "targets": targets(600, 900, 6000)}),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    for (clock, minutes) in [("first_response", 600), ("decision", 900)] {
        let found = &read["clocks"][clock];
        assert_eq!(found["calendar_id"], calendar.as_str());
        let started = at(&found["started_at"]);
        let due = at(&found["due_at"]);
        // Second by second from the start until the target's open seconds are counted.
        let mut t = started;
        let mut counted = 0;
        while counted < minutes * 60 {
            if open_in_new_york(t, holiday) {
                counted += 1;
            }
            t += Duration::seconds(1);
        }
        let off = (due - t).num_seconds().abs();
        assert!(off <= 1, "{clock}: due {due}, counted {t}");
        assert_ne!(
            due.with_timezone(&chrono_tz::America::New_York)
                .date_naive(),
            holiday
        );
        let elapsed = found["elapsed_seconds"].as_i64().unwrap();
        let open_now = open_in_new_york(Utc::now(), holiday);
        assert!(elapsed <= 5 && (open_now || elapsed == 0), "{found}");
    }
    // Its crossings say the target counts business time (a policy without a calendar's, all
    // time: the tests of the worker and of tickets).
    backdate_clocks(&app, &case, &["first_response"], LONG_PAST);
    let round = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!((round.done, round.failed), (1, 0));
    let bell = app.get("/v1/notifications", &w.a_operator.token).await;
    let breached = bell.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["event"] == "sla_breached")
        .map(|n| n["body"].as_str().unwrap().to_owned())
        .expect("the breach told");
    assert!(
        breached.ends_with("(target 600 min of business time)."),
        "{breached}"
    );
}

#[actix_web::test]
async fn a_new_priority_retargets_the_running_clocks_and_a_passed_target_is_a_breach() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let each = |first_response: i64| json!({"first_response": first_response, "decision": 600, "resolution": 6000});
    policy(
        &app,
        &w.a_admin.token,
        json!({"name": "By priority", "targets": {
            "low": each(120), "normal": each(60), "high": each(30), "urgent": each(10)}}),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["clocks"]["first_response"]["target_seconds"], 3600);
    let started = at(&read["clocks"]["first_response"]["started_at"]);

    let path = format!("/v1/cases/{case}");
    let patch = |priority: &'static str| {
        app.patch(&path, &w.a_operator.token, json!({ "priority": priority }))
    };
    patch("high").await.assert_status(200);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    let first = &read["clocks"]["first_response"];
    assert_eq!(first["target_seconds"], 1800);
    let due = at(&first["due_at"]);
    let expected = started + Duration::minutes(30);
    assert!(
        (due - expected).num_seconds().abs() <= 2,
        "{due} vs {expected}"
    );
    assert_eq!(read["clocks"]["decision"]["target_seconds"], 36_000);

    // Twenty minutes counted already (as if they had gone by): `urgent`'s ten are passed.
    app.sql(&format!(
        "UPDATE sla_clocks SET elapsed_secs = 1200 WHERE case_id = '{case}' \
         AND clock = 'first_response'"
    ));
    // Stored times keep microseconds; the check's own instant is taken a second early.
    let before = Utc::now() - Duration::seconds(1);
    let card = patch("urgent").await;
    assert_eq!(card.assert_status(200)["sla"]["state"], "breached");
    let read = clocks(&app, &w.a_operator.token, &case).await;
    let first = &read["clocks"]["first_response"];
    assert_eq!(first["target_seconds"], 600);
    assert_eq!(first["breached"], true);
    // DESIGN: breaches are never back-dated: the target passed ten minutes of counted time
    // ago, but the breach is when the write found it.
    assert!(at(&first["breached_at"]) >= before, "{first}");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM rule_log WHERE case_id = '{case}' AND rule = 'sla_breach'"
        )),
        1
    );
    // A lower priority afterwards does not forget it.
    let card = patch("low").await;
    assert_eq!(card.assert_status(200)["sla"]["state"], "breached");
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["clocks"]["first_response"]["target_seconds"], 7200);
    assert_eq!(read["clocks"]["first_response"]["breached"], true);
}

#[actix_web::test]
async fn two_workers_record_a_breach_once() {
    let app = spawn().await;
    let w = World::new(&app).await;
    policy(
        &app,
        &w.a_admin.token,
        json!({"name": "Tight", "targets": targets(10, 240, 2880)}),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    backdate_clocks(&app, &case, &["first_response"], LONG_PAST);
    // Two nodes' workers wake at the same due time; on PostgreSQL the second waits for the
    // first's lock on the case and finds the breach recorded.
    let (one, two) = futures_util::future::join(
        dossier::sla::settle_due(&app.state),
        dossier::sla::settle_due(&app.state),
    )
    .await;
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!((one.failed, two.failed), (0, 0));
    let count = |sql: &str| app.count(&sql.replace("{case}", &case));
    assert_eq!(
        count(
            "SELECT COUNT(*) AS n FROM rule_log WHERE case_id = '{case}' AND rule = 'sla_breach'"
        ),
        1
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) AS n FROM notifications WHERE case_id = '{case}' \
             AND event = 'sla_breached'"
        ),
        2
    );

    // Two answers at once, each stopping the clock: both land (no deadlock upgrading locks).
    let (first, second) = futures_util::future::join(
        app.post(
            &format!("/v1/cases/{case}/messages"),
            &w.a_operator.token,
            json!({"body": "On it."}),
        ),
        app.post(
            &format!("/v1/cases/{case}/messages"),
            &w.a_admin.token,
            json!({"body": "Me too."}),
        ),
    )
    .await;
    first.assert_status(201);
    second.assert_status(201);
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["clocks"]["first_response"]["met"], false);
}

#[actix_web::test]
async fn calendars_and_policies_take_idempotency_keys() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let calendar = json!({"name": "Office", "time_zone": "Europe/Warsaw",
        "hours": [{"weekday": "fri", "opens": "08:00", "closes": "16:00"}]});
    let policy = json!({"name": "Retried", "targets": targets(60, 60, 600)});
    // A key is the user's, whatever the path: one each.
    for (path, body, key) in [
        ("/v1/calendars", calendar, "calendar-first-try"),
        ("/v1/sla-policies", policy, "policy-first-try"),
    ] {
        let key = [("Idempotency-Key", key)];
        let send = |body: Value| app.call("POST", path, &w.a_admin.token, Some(body), &key);
        let first = send(body.clone()).await;
        let created = first.assert_status(201).clone();
        let before = app.rows_in(&["calendars", "sla_policies", "audit_log"]);
        // The retry gets the first answer; nothing is written twice.
        let again = send(body.clone()).await;
        assert_eq!(again.assert_status(201)["id"], created["id"]);
        assert_eq!(again.header("location"), first.header("location"));
        assert_eq!(
            app.rows_in(&["calendars", "sla_policies", "audit_log"]),
            before
        );
        // The same key with another body is refused.
        let mut other = body;
        other["name"] = json!("Another");
        send(other)
            .await
            .assert_problem(422, "idempotency_key_reused");
        assert_eq!(
            app.rows_in(&["calendars", "sla_policies", "audit_log"]),
            before
        );
    }
}

#[actix_web::test]
async fn a_service_names_the_policy_its_cases_follow() {
    let app = spawn().await;
    let w = World::new(&app).await;
    policy(
        &app,
        &w.a_admin.token,
        json!({"name": "Default", "targets": targets(60, 60, 600)}),
    )
    .await;
    let premium = policy(
        &app,
        &w.a_admin.token,
        json!({"name": "Premium", "default": false, "targets": targets(15, 30, 300)}),
    )
    .await;
    let of_b = policy(
        &app,
        &w.b_admin.token,
        json!({"name": "Garcia", "targets": targets(5, 5, 5)}),
    )
    .await;
    let service = format!("/v1/services/{}", w.service_a);
    // Another agency's policy is refused, and nothing changes.
    let before = app.rows_in(&["audit_log"]);
    let res = app
        .patch(
            &service,
            &w.a_admin.token,
            json!({"sla_policy_id": id(&of_b)}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "policy_unavailable")["errors"][0]["pointer"],
        "/sla_policy_id"
    );
    assert_eq!(app.rows_in(&["audit_log"]), before);
    let res = app
        .patch(
            &service,
            &w.a_admin.token,
            json!({"sla_policy_id": id(&premium)}),
        )
        .await;
    assert_eq!(res.assert_status(200)["sla_policy_id"], premium["id"]);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'service' AND \
             field = 'sla_policy_id' AND new_value = '{}'",
            id(&premium)
        )),
        1
    );
    // Its cases follow it, every clock of them, ahead of the agency's default.
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let read = clocks(&app, &w.a_operator.token, &case).await;
    assert_eq!(read["clocks"]["first_response"]["target_seconds"], 900);
    assert_eq!(read["clocks"]["resolution"]["target_seconds"], 18_000);
    assert_eq!(read["clocks"]["resolution"]["policy_id"], premium["id"]);
    // A bank transfer bought now starts its clocks when paid, under the policy it was bought
    // under, whatever the service names by then.
    let by_transfer = id(&buy(&app, &w.client.token, &w.service_a, "bank_transfer").await);
    // Back to the default for cases bought from now on.
    let res = app
        .patch(&service, &w.a_admin.token, json!({"sla_policy_id": null}))
        .await;
    assert_eq!(res.assert_status(200)["sla_policy_id"], Value::Null);
    let later = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let read = clocks(&app, &w.a_operator.token, &later).await;
    assert_eq!(read["clocks"]["first_response"]["target_seconds"], 3600);
    act(&app, &w.platform.token, &by_transfer, "confirm_payment")
        .await
        .assert_status(200);
    let read = clocks(&app, &w.a_operator.token, &by_transfer).await;
    assert_eq!(read["clocks"]["first_response"]["target_seconds"], 900);
    assert_eq!(read["clocks"]["decision"]["policy_id"], premium["id"]);
}

/// The clocks are a function of the case: the work handed in answers the client (no first
/// response is owed by a completed case), and a case reaching `in_progress` by `resume` gets
/// the resolution clock `start` would have given it.
#[actix_web::test]
async fn completion_ends_the_first_response_and_resuming_starts_the_resolution() {
    let app = spawn().await;
    let w = World::new(&app).await;
    // Paid while no policy existed: no clocks.
    let resumed = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    standard_policy(&app, &w).await;
    // Worked and completed without a message to the client.
    let unanswered = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &unanswered).await;
    act(&app, &w.a_operator.token, &unanswered, "complete")
        .await
        .assert_status(200);
    let read = clocks(&app, &w.a_operator.token, &unanswered).await;
    let first = &read["clocks"]["first_response"];
    assert_eq!(first["state"], "stopped", "{first}");
    assert_eq!(first["met"], true);
    assert_eq!(first["due_at"], Value::Null);
    // Reopened, the case owes no first answer again.
    act(&app, &w.a_operator.token, &unanswered, "reopen")
        .await
        .assert_status(200);
    let read = clocks(&app, &w.a_operator.token, &unanswered).await;
    assert_eq!(read["clocks"]["first_response"]["state"], "stopped");
    assert_eq!(read["clocks"]["resolution"]["state"], "running");

    for action in ["accept", "suspend", "resume"] {
        act(&app, &w.a_operator.token, &resumed, action)
            .await
            .assert_status(200);
    }
    let read = clocks(&app, &w.a_operator.token, &resumed).await;
    let resolution = &read["clocks"]["resolution"];
    assert_eq!(resolution["state"], "running", "{read}");
    assert_eq!(resolution["target_seconds"], 2880 * 60);
    assert!(read["clocks"].get("first_response").is_none(), "{read}");
}

#[actix_web::test]
async fn clocks_end_with_the_case_and_warn_at_the_policys_share() {
    let app = spawn().await;
    let w = World::new(&app).await;
    policy(
        &app,
        &w.a_admin.token,
        json!({"name": "Standard", "targets": targets(60, 240, 100)}),
    )
    .await;
    // A rejection stops the decision and, the case ending, the first response: met.
    let rejected = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.a_operator.token, &rejected, "reject")
        .await
        .assert_status(200);
    // A cancellation by the client stops both too.
    let cancelled = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.client.token, &cancelled, "cancel")
        .await
        .assert_status(200);
    for case in [&rejected, &cancelled] {
        let read = clocks(&app, &w.a_admin.token, case).await;
        assert_eq!(read["state"], "met", "{read}");
        for clock in ["first_response", "decision"] {
            let found = &read["clocks"][clock];
            assert_eq!(found["state"], "stopped", "{clock}: {found}");
            assert_eq!(found["met"], true);
        }
    }

    // At risk from 80% (the default share) of the target, not a second before.
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    for action in ["accept", "start", "suspend"] {
        act(&app, &w.a_operator.token, &case, action)
            .await
            .assert_status(200);
    }
    let resolution = |elapsed: i64| {
        app.sql(&format!(
            "UPDATE sla_clocks SET elapsed_secs = {elapsed} \
             WHERE case_id = '{case}' AND clock = 'resolution'"
        ));
    };
    resolution(4799);
    let paused = clocks(&app, &w.a_operator.token, &case).await["clocks"]["resolution"].clone();
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["remaining_seconds"], 1201);
    assert_eq!(paused["at_risk"], false);
    resolution(4800);
    let paused = clocks(&app, &w.a_operator.token, &case).await["clocks"]["resolution"].clone();
    assert_eq!(paused["at_risk"], true);
    assert_eq!(paused["breached"], false);
}

#[actix_web::test]
async fn tickets_run_first_response_and_resolution_clocks_under_the_platforms_policy() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let ticket_body =
        json!({"subject": "No answer", "description": "The agency has not answered."});
    let open = |token| app.post("/v1/tickets", token, ticket_body.clone());

    // Opened before any platform policy: no clocks, ever.
    let early = open(&w.client.token).await.assert_status(201).clone();
    assert!(early["sla"].is_null());
    let read = clocks_at(
        &app,
        &w.platform.token,
        &format!("/v1/tickets/{}/sla", id(&early)),
    )
    .await;
    assert!(read["state"].is_null());
    assert_eq!(read["clocks"], json!({}));

    // The agency's own default is not the platform's: tickets follow the platform's.
    policy(
        &app,
        &w.a_admin.token,
        json!({"name": "Agency A", "targets": targets(1, 1, 1)}),
    )
    .await;
    let each = |first_response: i64, resolution: i64| json!({"first_response": first_response, "decision": 999, "resolution": resolution});
    let platform = policy(
        &app,
        &w.platform.token,
        json!({"name": "Platform", "targets": {
            "low": each(60, 600), "normal": each(30, 300), "high": each(20, 200),
            "urgent": each(10, 100)}}),
    )
    .await;
    let ticket = open(&w.client.token).await.assert_status(201).clone();
    let t = id(&ticket);
    let sla_path = format!("/v1/tickets/{t}/sla");
    assert_eq!(ticket["sla"]["state"], "on_track");
    assert_eq!(ticket["sla"]["breached"], false);
    let read = clocks_at(&app, &w.client.token, &sla_path).await;
    assert_eq!(read["state"], "on_track");
    let first = &read["clocks"]["first_response"];
    assert_eq!(first["policy_id"], id(&platform).as_str());
    assert_eq!(first["target_seconds"], 1800);
    assert_eq!(first["state"], "running");
    assert_eq!(read["clocks"]["resolution"]["target_seconds"], 18_000);
    assert_eq!(read["clocks"].as_object().unwrap().len(), 2);
    assert_eq!(at(&ticket["sla"]["due_at"]), at(&first["due_at"]));
    let agencys = open(&w.a_operator.token).await.assert_status(201).clone();
    let read = clocks_at(
        &app,
        &w.a_admin.token,
        &format!("/v1/tickets/{}/sla", id(&agencys)),
    )
    .await;
    assert_eq!(
        read["clocks"]["first_response"]["policy_id"],
        id(&platform).as_str()
    );

    // Who reads it: the requester's side and the platform; nobody else.
    clocks_at(&app, &w.platform_staff.token, &sla_path).await;
    for token in [&w.client2.token, &w.b_operator.token, &w.a_operator.token] {
        app.get(&sla_path, token)
            .await
            .assert_problem(404, "not_found");
    }
    app.get(&sla_path, &w.a_agent.token)
        .await
        .assert_problem(403, "forbidden");

    // Waiting on the requester answers them: the first response is met, the resolution waits.
    let moves = format!("/v1/tickets/{t}/transitions");
    let move_to = |action: &'static str, extra: Value| {
        let mut body = json!({ "action": action });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        app.post(&moves, &w.platform_staff.token, body)
    };
    let waiting = move_to("wait_on_requester", json!({})).await;
    // One version for the move and its clocks.
    assert_eq!(
        waiting.assert_status(200)["version"],
        ticket["version"].as_i64().unwrap() + 1
    );
    let read = clocks_at(&app, &w.client.token, &sla_path).await;
    assert_eq!(read["clocks"]["first_response"]["state"], "stopped");
    assert_eq!(read["clocks"]["first_response"]["met"], true);
    assert_eq!(read["clocks"]["resolution"]["state"], "paused");
    assert!(read["clocks"]["resolution"]["due_at"].is_null());
    // The requester's answer runs it again; the first response stays met.
    app.post(
        &format!("/v1/tickets/{t}/messages"),
        &w.client.token,
        json!({"body": "Here it is."}),
    )
    .await
    .assert_status(201);
    let read = clocks_at(&app, &w.client.token, &sla_path).await;
    assert_eq!(read["clocks"]["resolution"]["state"], "running");
    assert_eq!(read["clocks"]["first_response"]["state"], "stopped");

    // Platform staff raise the priority: the resolution clock takes `urgent`'s target.
    let res = app
        .patch(
            &format!("/v1/tickets/{t}"),
            &w.platform_staff.token,
            json!({"priority": "urgent"}),
        )
        .await;
    res.assert_status(200);
    let read = clocks_at(&app, &w.client.token, &sla_path).await;
    assert_eq!(read["clocks"]["resolution"]["target_seconds"], 6000);

    // The worker finds its warning and target passed (as if hours went by): once each, to
    // every platform staff member (nobody holds it), in the rule log and the audit trail.
    let version = app.get(&format!("/v1/tickets/{t}"), &w.client.token).await;
    let version = version.assert_status(200)["version"].as_i64().unwrap();
    app.sql(&format!(
        "UPDATE ticket_sla_clocks SET warn_at = '2026-01-01 09:08:00', due_at = '2026-01-01 09:10:00' \
         WHERE ticket_id = '{t}' AND clock = 'resolution'; \
         UPDATE tickets SET sla_next_at = '2026-01-01 09:08:00' WHERE id = '{t}'"
    ));
    app.patch(
        &format!("/v1/users/{}", w.platform.id),
        &w.platform.token,
        json!({"locale": "es"}),
    )
    .await
    .assert_status(200);
    let round = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!((round.done, round.failed), (1, 0));
    let view = app.get(&format!("/v1/tickets/{t}"), &w.client.token).await;
    let view = view.assert_status(200).clone();
    assert_eq!(view["sla"]["state"], "breached");
    assert_eq!(view["sla"]["breached"], true);
    assert_eq!(view["version"], version + 1);
    let read = clocks_at(&app, &w.platform.token, &sla_path).await;
    assert_eq!(
        read["clocks"]["resolution"]["breached_at"],
        "2026-01-01T09:10:00Z"
    );
    let notified = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE ticket_id = '{t}' \
             AND event IN ('sla_warning', 'sla_breached')"
        ))
    };
    assert_eq!(notified(), 4);
    let bell = app.get("/v1/notifications", &w.platform_staff.token).await;
    let events: Vec<&str> = bell.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["ticket_id"] == t.as_str())
        .map(|n| n["event"].as_str().unwrap())
        .filter(|e| e.starts_with("sla_"))
        .collect();
    assert_eq!(events, ["sla_breached", "sla_warning"]);
    // The account in each staff member's language (the admin's is Spanish).
    let bell_es = app.get("/v1/notifications", &w.platform.token).await;
    let breach = bell_es.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["ticket_id"] == t.as_str() && n["event"] == "sla_breached")
        .unwrap();
    assert_eq!(
        breach["body"],
        "El plazo de resolución estaba incumplido a las 2026-01-01T09:10:00Z \
         (objetivo 100 min)."
    );
    let titles: Vec<&str> = bell.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["ticket_id"] == t.as_str() && n["event"] == "sla_breached")
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    let number = ticket["number"].as_str().unwrap();
    assert_eq!(
        titles,
        [format!("Ticket {number} «No answer» missed its SLA")]
    );
    // The requester hears nothing of it.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE ticket_id = '{t}' AND user_id = '{}' \
             AND event IN ('sla_warning', 'sla_breached')",
            w.client.id
        )),
        0
    );
    let fired = |rule: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM rule_log WHERE ticket_id = '{t}' AND rule = '{rule}' \
             AND case_id IS NULL"
        ))
    };
    assert_eq!((fired("sla_warning"), fired("sla_breach")), (1, 1));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'ticket' AND entity_id = '{t}' \
             AND action = 'sla_breach' AND field = 'sla_state' AND new_value = 'breached' \
             AND actor_id IS NULL"
        )),
        1
    );
    let round = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!(round.done, 0);
    assert_eq!(notified(), 4);

    // The list's SLA view, within each caller's tickets.
    let breached = app
        .get("/v1/tickets?sla=breached", &w.platform_staff.token)
        .await;
    assert_eq!(ids(breached.assert_status(200)), [t.as_str()]);
    assert_eq!(breached.body["items"][0]["sla"]["breached"], true);
    let mine = app.get("/v1/tickets?sla=breached", &w.client.token).await;
    assert_eq!(ids(mine.assert_status(200)), [t.as_str()]);
    let theirs = app
        .get("/v1/tickets?sla=breached", &w.a_operator.token)
        .await;
    assert_eq!(ids(theirs.assert_status(200)), Vec::<&str>::new());
    let on_track = app
        .get(
            "/v1/tickets?sla=on_track&sla=at_risk",
            &w.platform_staff.token,
        )
        .await;
    assert_eq!(ids(on_track.assert_status(200)), [id(&agencys).as_str()]);
    app.get("/v1/tickets?sla=late", &w.platform_staff.token)
        .await
        .assert_problem(400, "invalid_query");

    // Resolved late: stopped, the breach stays.
    let resolution = json!({"resolution_type": "answered", "resolution": "Done."});
    move_to("resolve", resolution.clone())
        .await
        .assert_status(200);
    let read = clocks_at(&app, &w.client.token, &sla_path).await;
    assert_eq!(read["state"], "breached");
    assert_eq!(read["clocks"]["resolution"]["met"], false);

    // The agency's ticket: answered and resolved in time is met; reactivated, it runs again.
    let a = id(&agencys);
    let a_path = format!("/v1/tickets/{a}/sla");
    app.post(
        &format!("/v1/tickets/{a}/messages"),
        &w.platform_staff.token,
        json!({"body": "On it."}),
    )
    .await
    .assert_status(201);
    let read = clocks_at(&app, &w.a_operator.token, &a_path).await;
    assert_eq!(read["clocks"]["first_response"]["met"], true);
    assert_eq!(read["clocks"]["resolution"]["state"], "running");
    let a_moves = format!("/v1/tickets/{a}/transitions");
    let transition = |body: Value| app.post(&a_moves, &w.platform_staff.token, body);
    let mut resolve = resolution.clone();
    resolve["action"] = json!("resolve");
    let resolved = transition(resolve).await;
    assert_eq!(resolved.assert_status(200)["sla"]["state"], "met");
    assert!(resolved.body["sla"]["due_at"].is_null());
    let res = app
        .post(
            &format!("/v1/tickets/{a}/transitions"),
            &w.a_operator.token,
            json!({"action": "reactivate", "reason": "Still no answer."}),
        )
        .await;
    assert_eq!(res.assert_status(200)["sla"]["state"], "on_track");
    let read = clocks_at(&app, &w.a_operator.token, &a_path).await;
    assert_eq!(read["clocks"]["resolution"]["state"], "running");
    assert_eq!(read["clocks"]["resolution"]["stopped_at"], Value::Null);
    assert_eq!(read["clocks"]["first_response"]["state"], "stopped");
}

#[actix_web::test]
async fn a_ticket_clock_keeps_its_time_and_a_new_priority_past_it_breaches_while_paused() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let each =
        |resolution: i64| json!({"first_response": 600, "decision": 600, "resolution": resolution});
    policy(
        &app,
        &w.platform.token,
        json!({"name": "Platform", "targets": {
            "low": each(400), "normal": each(300), "high": each(200), "urgent": each(100)}}),
    )
    .await;
    let body = json!({"subject": "Refund", "description": "I was charged twice for the case."});
    let ticket = app.post("/v1/tickets", &w.client.token, body).await;
    let t = id(ticket.assert_status(201));
    let (path, sla_path) = (format!("/v1/tickets/{t}"), format!("/v1/tickets/{t}/sla"));
    let moves = format!("{path}/transitions");
    let staff = &w.platform_staff.token;
    app.post(
        &format!("{path}/assignment"),
        staff,
        json!({"action": "take"}),
    )
    .await
    .assert_status(200);
    app.post(&moves, staff, json!({"action": "wait_on_requester"}))
        .await
        .assert_status(200);

    // Paused with 7 000 s counted (as if they had gone by): `urgent`'s 6 000 are passed, and
    // the breach is recorded by the write that changes the priority, to the assignee only.
    app.sql(&format!(
        "UPDATE ticket_sla_clocks SET elapsed_secs = 7000 WHERE ticket_id = '{t}' \
         AND clock = 'resolution'"
    ));
    let res = app.patch(&path, staff, json!({"priority": "urgent"})).await;
    assert_eq!(res.assert_status(200)["sla"]["state"], "breached");
    let read = clocks_at(&app, staff, &sla_path).await;
    let resolution = &read["clocks"]["resolution"];
    assert_eq!(resolution["state"], "paused");
    assert_eq!(resolution["breached"], true);
    assert!(!resolution["breached_at"].is_null());
    let heard = |user: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE ticket_id = '{t}' AND user_id = '{user}' \
             AND event IN ('sla_warning', 'sla_breached')"
        ))
    };
    assert_eq!(heard(&w.platform_staff.id), 2);
    assert_eq!(heard(&w.platform.id), 0);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM rule_log WHERE ticket_id = '{t}' AND rule = 'sla_breach'"
        )),
        1
    );

    // Resolved, then reactivated: the resolution clock goes on from the time it had counted.
    let resolve =
        json!({"action": "resolve", "resolution_type": "refunded", "resolution": "Done."});
    app.post(&moves, staff, resolve).await.assert_status(200);
    app.sql(&format!(
        "UPDATE ticket_sla_clocks SET elapsed_secs = 1000, breached_at = NULL, warned_at = NULL \
         WHERE ticket_id = '{t}' AND clock = 'resolution'"
    ));
    app.patch(&path, staff, json!({"priority": "low"}))
        .await
        .assert_problem(409, "wrong_state");
    let res = app
        .post(
            &moves,
            &w.client.token,
            json!({"action": "reactivate", "reason": "Not refunded."}),
        )
        .await;
    res.assert_status(200);
    let read = clocks_at(&app, staff, &sla_path).await;
    let resolution = &read["clocks"]["resolution"];
    assert_eq!(resolution["state"], "running");
    let elapsed = resolution["elapsed_seconds"].as_i64().unwrap();
    assert!((1000..1010).contains(&elapsed), "{resolution}");
    let due = at(&resolution["due_at"]);
    let expected = Utc::now() + Duration::seconds(6000 - 1000);
    assert!(
        (due - expected).num_seconds().abs() <= 5,
        "{due} vs {expected}"
    );
}
