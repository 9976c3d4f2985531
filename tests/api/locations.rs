//! API.md: a 201 carries `Location`, and what it names answers `GET` with what was created, to
//! whoever may read it and to no one else.

use serde_json::{Value, json};

use crate::helpers::{AppService, Response, TestApp, spawn};
use crate::world::{World, assign_agent, buy, close, id, start_case};

/// Follows a creation's `Location` as `token`: the same body back.
async fn follow<S>(app: &TestApp<S>, created: &Response, token: &str) -> String
where
    S: AppService,
{
    let body = created.assert_status(201);
    let location = created
        .header("location")
        .unwrap_or_else(|| panic!("no Location for {body}"))
        .to_owned();
    let res = app.get(&location, token).await;
    assert_eq!(res.assert_status(200), body, "{location}");
    location
}

#[actix_web::test]
async fn a_case_and_what_is_written_on_it_answer_at_their_location_to_their_readers_only() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let res = app
        .post(
            "/v1/cases",
            &w.client.token,
            json!({"service_id": w.service_a, "payment_method": "card",
                   "title": "Where does he go on Fridays?", "description": "He leaves at 14:00 every Friday."}),
        )
        .await;
    let case = id(res.assert_status(201));
    follow(&app, &res, &w.client.token).await;
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    let on_case = |tail: &str| format!("/v1/cases/{case}/{tail}");

    // Messages: each reader their part of the conversation.
    let res = app
        .post(
            &on_case("messages"),
            &w.client.token,
            json!({"body": "Any news?"}),
        )
        .await;
    let to_agency = follow(&app, &res, &w.client.token).await;
    let res = app
        .post(
            &on_case("messages"),
            &w.a_operator.token,
            json!({"body": "Watch the back door.", "internal": true}),
        )
        .await;
    let note = follow(&app, &res, &w.a_operator.token).await;
    for token in [&w.a_agent.token, &w.platform_staff.token] {
        app.get(&note, token).await.assert_status(200);
    }
    for (path, token) in [
        (&note, &w.client.token),
        (&to_agency, &w.a_agent.token),
        (&to_agency, &w.client2.token),
        (&to_agency, &w.b_operator.token),
        (&note, &w.a_agent2.token),
    ] {
        app.get(path, token).await.assert_problem(404, "not_found");
    }
    // A message's id under another case of the same reader is not found there.
    let other = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let message_id = to_agency.rsplit('/').next().unwrap();
    app.get(
        &format!("/v1/cases/{other}/messages/{message_id}"),
        &w.client.token,
    )
    .await
    .assert_problem(404, "not_found");

    // A storyline draft: the case's agents and agency read it, the client once published.
    let res = app
        .post(
            &on_case("storyline"),
            &w.a_agent.token,
            json!({"title": "Parked at the club", "latitude": 45.46, "longitude": 9.19}),
        )
        .await;
    let event = follow(&app, &res, &w.a_agent.token).await;
    let etag = res.header("etag").unwrap().to_owned();
    let read = app.get(&event, &w.a_operator.token).await;
    assert_eq!(read.header("etag"), Some(etag.as_str()));
    let unchanged = app
        .call(
            "GET",
            &event,
            &w.a_operator.token,
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(unchanged.status.as_u16(), 304);
    for token in [&w.client.token, &w.b_operator.token, &w.a_agent2.token] {
        app.get(&event, token)
            .await
            .assert_problem(404, "not_found");
    }
    app.post(&format!("{event}/publish"), &w.a_operator.token, json!({}))
        .await
        .assert_status(200);
    let seen = app.get(&event, &w.client.token).await;
    assert_eq!(seen.assert_status(200)["status"], "published");
    assert_ne!(seen.header("etag"), Some(etag.as_str()));

    // A request: read by both sides with its version, answered only at the version read.
    let res = app
        .post(
            &on_case("requests"),
            &w.a_operator.token,
            json!({"kind": "question", "prompt": "Which car does he drive?"}),
        )
        .await;
    let request = follow(&app, &res, &w.client.token).await;
    assert_eq!(res.header("etag"), Some("\"1\""));
    for token in [&w.client2.token, &w.b_operator.token, &w.a_agent2.token] {
        app.get(&request, token)
            .await
            .assert_problem(404, "not_found");
    }
    let answer = json!({"text": "A red Fiat."});
    let before = app.rows_in(&["client_requests", "audit_log", "notifications"]);
    let stale = app
        .call(
            "POST",
            &format!("{request}/answer"),
            &w.client.token,
            Some(answer.clone()),
            &[("if-match", "\"2\"")],
        )
        .await;
    stale.assert_problem(412, "precondition_failed");
    assert_eq!(
        app.rows_in(&["client_requests", "audit_log", "notifications"]),
        before
    );
    let seen = app.get(&request, &w.client.token).await;
    assert_eq!(seen.assert_status(200)["status"], "open");
    let answered = app
        .call(
            "POST",
            &format!("{request}/answer"),
            &w.client.token,
            Some(answer),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(answered.assert_status(200)["status"], "answered");
    assert_eq!(answered.header("etag"), Some("\"2\""));
    let seen = app.get(&request, &w.a_operator.token).await;
    assert_eq!(seen.assert_status(200), &answered.body);
    assert_eq!(seen.header("etag"), Some("\"2\""));
    // Cancelling what is answered: the version check first, then the state.
    for (version, status, code) in [
        ("\"1\"", 412, "precondition_failed"),
        ("\"2\"", 409, "request_not_open"),
    ] {
        app.call(
            "POST",
            &format!("{request}/cancel"),
            &w.a_operator.token,
            None,
            &[("if-match", version)],
        )
        .await
        .assert_problem(status, code);
    }

    // A video call: between the client and the agency.
    let res = app
        .post(&on_case("video-calls"), &w.client.token, json!({}))
        .await;
    let call = follow(&app, &res, &w.client.token).await;
    app.get(&call, &w.a_operator.token).await.assert_status(200);
    for token in [&w.a_agent.token, &w.platform.token] {
        app.get(&call, token).await.assert_problem(403, "forbidden");
    }
    for token in [&w.client2.token, &w.b_operator.token, &w.a_agent2.token] {
        app.get(&call, token).await.assert_problem(404, "not_found");
    }

    // The rating of the closed case.
    close(&app, &w, &case).await;
    app.get(&on_case("survey"), &w.client.token)
        .await
        .assert_problem(404, "not_found");
    let res = app
        .post(&on_case("survey"), &w.client.token, json!({"rating": 5}))
        .await;
    let first = follow(&app, &res, &w.a_operator.token).await;
    for token in [&w.client2.token, &w.b_operator.token, &w.a_agent.token] {
        app.get(&first, token)
            .await
            .assert_problem(404, "not_found");
    }
    // A later rating is the newest; each stays at its own URL.
    let later = app
        .post(&on_case("survey"), &w.client.token, json!({"rating": 3}))
        .await;
    follow(&app, &later, &w.client.token).await;
    let seen = app.get(&first, &w.client.token).await;
    assert_eq!(seen.assert_status(200), &res.body);
    let newest = app.get(&on_case("survey"), &w.client.token).await;
    assert_eq!(newest.assert_status(200), &later.body);
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(card.assert_status(200)["last_survey"], later.body);
    let other_case = format!("/v1/cases/{other}/survey/{}", id(&res.body));
    app.get(&other_case, &w.client.token)
        .await
        .assert_problem(404, "not_found");
}

#[actix_web::test]
async fn a_case_lists_its_video_calls_a_page_at_a_time() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}/video-calls");
    let mut opened = Vec::new();
    for token in [&w.client.token, &w.a_operator.token, &w.client.token] {
        let res = app.post(&p, token, json!({})).await;
        opened.push(id(res.assert_status(201)));
    }
    opened.reverse();
    let first = app.get(&format!("{p}?limit=2"), &w.client.token).await;
    let page: Vec<String> = first.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(page, opened[..2]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    assert!(first.header("link").unwrap().contains("rel=\"next\""));
    let rest = app
        .get(&format!("{p}?limit=2&cursor={cursor}"), &w.client.token)
        .await;
    let rest = rest.assert_status(200);
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(id(&rest["items"][0]), opened[2]);
    assert_eq!(rest["next_cursor"], Value::Null);
    app.get(&format!("{p}?limit=101"), &w.client.token)
        .await
        .assert_problem(400, "invalid_query");
}

#[actix_web::test]
async fn calendars_policies_and_ticket_messages_answer_at_their_location() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let each = json!({"first_response": 60, "decision": 60, "resolution": 600});
    let targets = json!({"low": each, "normal": each, "high": each, "urgent": each});
    for (path, body) in [
        (
            "/v1/calendars",
            json!({"name": "Office", "time_zone": "Europe/Rome",
                   "hours": [{"weekday": "mon", "opens": "09:00", "closes": "17:00"}]}),
        ),
        (
            "/v1/sla-policies",
            json!({"name": "Standard", "default": false, "targets": targets}),
        ),
    ] {
        let res = app.post(path, &w.a_admin.token, body).await;
        let own = follow(&app, &res, &w.a_operator.token).await;
        app.get(&own, &w.platform_staff.token)
            .await
            .assert_status(200);
        app.get(&own, &w.b_admin.token)
            .await
            .assert_problem(404, "not_found");
        for token in [&w.a_agent.token, &w.client.token] {
            app.get(&own, token).await.assert_problem(403, "forbidden");
        }
        // The platform's own: every agency's staff read it.
        let body = app.get(&own, &w.a_admin.token).await.body;
        let mut platform_body = json!({"name": "Platform's"});
        for key in ["time_zone", "hours", "targets"] {
            if !body[key].is_null() {
                platform_body[key] = body[key].clone();
            }
        }
        if path == "/v1/sla-policies" {
            platform_body["default"] = json!(false);
        }
        let res = app.post(path, &w.platform.token, platform_body).await;
        let platforms = follow(&app, &res, &w.platform.token).await;
        app.get(&platforms, &w.b_operator.token)
            .await
            .assert_status(200);
    }

    let res = app
        .post(
            "/v1/tickets",
            &w.client.token,
            json!({"subject": "No answer", "description": "The agency has not answered for a week."}),
        )
        .await;
    let ticket = follow(&app, &res, &w.client.token).await;
    let res = app
        .post(
            &format!("{ticket}/messages"),
            &w.platform.token,
            json!({"body": "We are on it."}),
        )
        .await;
    let message = follow(&app, &res, &w.client.token).await;
    // Another client, and an agency the ticket is not about.
    for token in [&w.client2.token, &w.b_operator.token] {
        app.get(&message, token)
            .await
            .assert_problem(404, "not_found");
    }
    app.get(&message, &w.a_agent.token)
        .await
        .assert_problem(403, "forbidden");
}
