//! Presence: staff set their status and the case they work on; admins see their team's, with
//! the open work each holds against the capacity.

use serde_json::{Value, json};

use crate::helpers::{AppService, TestApp, spawn};
use crate::world::{World, assign_agent, buy, id, start_case, take};

/// The page's entries by user id.
fn by_user(page: &Value) -> std::collections::BTreeMap<String, Value> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["user"]["id"].as_str().unwrap().to_owned(), p.clone()))
        .collect()
}

async fn team<S>(
    app: &TestApp<S>,
    token: &str,
    query: &str,
) -> std::collections::BTreeMap<String, Value>
where
    S: AppService,
{
    let res = app.get(&format!("/v1/presence{query}"), token).await;
    by_user(res.assert_status(200))
}

#[actix_web::test]
async fn staff_set_their_presence_and_admins_see_their_team_with_its_workload() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let other_agencys = id(&buy(&app, &w.client.token, &w.service_b, "card").await);
    take(&app, &w.a_operator.token, &case).await;

    // Nobody has set one: offline, waiting.
    let res = app.get("/v1/me", &w.a_operator.token).await;
    let me = res.assert_status(200);
    assert_eq!(me["id"], w.a_operator.id.as_str());
    assert_eq!(
        me["presence"],
        json!({"status": "offline", "activity": "waiting", "working_on": null, "updated_at": null})
    );
    let res = app.get("/v1/me", &w.client.token).await;
    assert!(res.assert_status(200)["presence"].is_null());

    // Clients have none.
    app.get("/v1/me/presence", &w.client.token)
        .await
        .assert_problem(403, "forbidden");
    app.put(
        "/v1/me/presence",
        &w.client.token,
        json!({"status": "available"}),
    )
    .await
    .assert_problem(403, "forbidden");

    // The operator opens their case.
    let res = app
        .put(
            "/v1/me/presence",
            &w.a_operator.token,
            json!({"status": "available", "working_on": case}),
        )
        .await;
    let set = res.assert_status(200);
    assert_eq!(set["status"], "available");
    assert_eq!(set["activity"], "working");
    assert_eq!(set["working_on"], case.as_str());
    assert!(set["updated_at"].is_string());
    // A case they cannot see changes nothing.
    let res = app
        .put(
            "/v1/me/presence",
            &w.a_operator.token,
            json!({"status": "busy", "working_on": other_agencys}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "case_unavailable")["errors"][0]["pointer"],
        "/working_on"
    );
    let res = app.get("/v1/me/presence", &w.a_operator.token).await;
    assert_eq!(res.assert_status(200)["status"], "available");
    // Leaving the case: waiting again.
    let res = app
        .put(
            "/v1/me/presence",
            &w.a_operator.token,
            json!({"status": "available"}),
        )
        .await;
    let left = res.assert_status(200);
    assert_eq!(left["activity"], "waiting");
    assert_eq!(left["working_on"], Value::Null);
    app.put(
        "/v1/me/presence",
        &w.a_operator.token,
        json!({"status": "available", "working_on": case}),
    )
    .await
    .assert_status(200);
    // An agent sees a case only while it is worked.
    app.put(
        "/v1/me/presence",
        &w.a_agent.token,
        json!({"status": "busy", "working_on": case}),
    )
    .await
    .assert_problem(422, "case_unavailable");

    // The agency's admin sees its people, with the operator's case against the capacity.
    let a_team = team(&app, &w.a_admin.token, "").await;
    let ids: Vec<&String> = a_team.keys().collect();
    let mut expected = vec![
        &w.a_admin.id,
        &w.a_operator.id,
        &w.a_agent.id,
        &w.a_agent2.id,
    ];
    expected.sort();
    assert_eq!(ids, expected);
    let operator = &a_team[&w.a_operator.id];
    assert_eq!(operator["status"], "available");
    assert_eq!(operator["working_on"], case.as_str());
    assert_eq!(operator["role"], "agency");
    assert_eq!(
        (
            &operator["workload"],
            &operator["capacity"],
            &operator["room"]
        ),
        (&json!(1), &json!(3), &json!(2))
    );
    assert_eq!(a_team[&w.a_agent.id]["status"], "offline");
    let available = team(&app, &w.a_admin.token, "?status=available").await;
    assert_eq!(available.keys().collect::<Vec<_>>(), [&w.a_operator.id]);
    let offline = team(&app, &w.a_admin.token, "?status=offline&status=away").await;
    assert_eq!(offline.len(), 3);
    assert!(!offline.contains_key(&w.a_operator.id));
    // Another agency's admin sees none of them.
    let b_team = team(&app, &w.b_admin.token, "").await;
    assert!(!b_team.contains_key(&w.a_operator.id));
    assert!(b_team.contains_key(&w.b_operator.id));

    // Platform admins: platform staff, with their open tickets; an agency's people on request.
    let ticket = app
        .post(
            "/v1/tickets",
            &w.client.token,
            json!({"subject": "Refund", "description": "The agency has not answered."}),
        )
        .await;
    let ticket = id(ticket.assert_status(201));
    app.post(
        &format!("/v1/tickets/{ticket}/assignment"),
        &w.platform_staff.token,
        json!({"action": "take"}),
    )
    .await
    .assert_status(200);
    let platform = team(&app, &w.platform.token, "").await;
    assert_eq!(platform.len(), 2);
    assert_eq!(platform[&w.platform_staff.id]["workload"], 1);
    assert_eq!(platform[&w.platform.id]["workload"], 0);
    let a_seen = team(
        &app,
        &w.platform.token,
        &format!("?agency_id={}", w.agency_a),
    )
    .await;
    assert_eq!(a_seen[&w.a_operator.id]["workload"], 1);

    // Nobody else supervises.
    for (token, query) in [
        (&w.a_operator.token, String::new()),
        (&w.platform_staff.token, String::new()),
        (&w.a_agent.token, String::new()),
        (&w.client.token, String::new()),
        (&w.a_admin.token, format!("?agency_id={}", w.agency_b)),
    ] {
        app.get(&format!("/v1/presence{query}"), token)
            .await
            .assert_problem(403, "forbidden");
    }
}

#[actix_web::test]
async fn workload_counts_open_work_only_and_the_list_holds_only_who_can_log_in() {
    let app = spawn().await;
    let w = World::new(&app).await;
    // The operator holds two cases: one worked, one completed (waiting on its client).
    let worked = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let completed = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    for case in [&worked, &completed] {
        take(&app, &w.a_operator.token, case).await;
        start_case(&app, &w, case).await;
        assign_agent(&app, &w, case).await;
    }
    app.post(
        &format!("/v1/cases/{completed}/transitions"),
        &w.a_operator.token,
        json!({"action": "complete", "resolution_type": "solved", "resolution": "Found."}),
    )
    .await
    .assert_status(200);
    let a_team = team(&app, &w.a_admin.token, "").await;
    assert_eq!(a_team[&w.a_operator.id]["workload"], 1);
    assert_eq!(a_team[&w.a_operator.id]["room"], 2);
    // Agents are not operators: their operators put them on cases.
    let agent = &a_team[&w.a_agent.id];
    assert!(agent["workload"].is_null() && agent["capacity"].is_null() && agent["room"].is_null());
    assert_eq!(a_team[&w.a_admin.id]["workload"], 0);

    // Offline, nobody works on a case.
    let res = app
        .put(
            "/v1/me/presence",
            &w.a_agent.token,
            json!({"status": "offline", "working_on": worked}),
        )
        .await;
    let set = res.assert_status(200);
    assert!(set["working_on"].is_null());
    assert_eq!(set["activity"], "waiting");

    // A deactivated agency's people are not listed; an unknown agency is 404.
    app.patch(
        &format!("/v1/agencies/{}", w.agency_b),
        &w.platform.token,
        json!({"active": false}),
    )
    .await
    .assert_status(200);
    let b_team = team(
        &app,
        &w.platform.token,
        &format!("?agency_id={}", w.agency_b),
    )
    .await;
    assert!(b_team.is_empty(), "{b_team:?}");
    app.get(
        "/v1/presence?agency_id=00000000-0000-7000-a000-00000000ffff",
        &w.platform.token,
    )
    .await
    .assert_problem(404, "not_found");
    // Nor a deactivated user.
    app.deactivate_user(&w.platform.token, &w.a_agent2.id).await;
    let a_team = team(&app, &w.a_admin.token, "").await;
    assert!(!a_team.contains_key(&w.a_agent2.id));
}
