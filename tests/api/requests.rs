//! Requests to the client and video calls.

use serde_json::{Value, json};

use crate::attachments::{png, upload};
use crate::helpers::spawn;
use crate::world::{World, act, assign_agent, buy, id, start_case};

#[actix_web::test]
async fn the_agency_asks_the_client_answers_and_open_ones_are_on_the_card() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}/requests");
    let ask = json!({"kind": "document", "prompt": "A recent photo, please.", "due_at": "2099-01-01T00:00:00Z"});
    // Not while in approval; only the agency asks.
    app.post(&p, &w.a_operator.token, ask.clone())
        .await
        .assert_problem(409, "wrong_state");
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    app.post(&p, &w.client.token, ask.clone())
        .await
        .assert_problem(403, "forbidden");
    app.post(&p, &w.b_operator.token, ask.clone())
        .await
        .assert_problem(404, "not_found");
    app.post(
        &p,
        &w.a_operator.token,
        json!({"kind": "question", "prompt": "x", "due_at": "2000-01-01T00:00:00Z"}),
    )
    .await
    .assert_problem(422, "in_the_past");
    // Past the year 9999 in UTC: no RFC 3339 instant to answer with; chrono's last instant
    // with digits to round up (which overflowed, a panic and no answer).
    for late in [
        "9999-12-31T23:59:59-10:00",
        "+262142-12-31T23:59:59.9999991Z",
    ] {
        let res = app
            .post(
                &p,
                &w.a_operator.token,
                json!({"kind": "question", "prompt": "x", "due_at": late}),
            )
            .await;
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], "/due_at");
    }
    let photo = app.post(&p, &w.a_operator.token, ask).await;
    let photo = photo.assert_status(201).clone();
    assert_eq!(photo["status"], "open");
    let question = id(app
        .post(
            &p,
            &w.a_operator.token,
            json!({"kind": "question", "prompt": "Does he own a car?"}),
        )
        .await
        .assert_status(201));
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(
        card.assert_status(200)["open_requests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The client answers with an attachment of the case; text or attachments are required.
    let photo_id = photo["id"].as_str().unwrap();
    let answer = format!("{p}/{photo_id}/answer");
    app.post(&answer, &w.client.token, json!({}))
        .await
        .assert_problem(422, "required");
    app.post(
        &answer,
        &w.client.token,
        json!({"attachment_ids": [uuid::Uuid::now_v7()]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(&answer, &w.a_operator.token, json!({"text": "x"}))
        .await
        .assert_problem(403, "forbidden");
    let file = id(upload(&app, &w.client.token, &case, "him.png", &png(400))
        .await
        .assert_status(201));
    let res = app
        .post(
            &answer,
            &w.client.token,
            json!({"text": "Here", "attachment_ids": [file]}),
        )
        .await;
    let body = res.assert_status(200);
    assert_eq!(body["status"], "answered");
    assert_eq!(body["answer"]["attachment_ids"], json!([file]));
    assert_eq!(body["answer"]["answered_by"], w.client.id.as_str());
    app.post(&answer, &w.client.token, json!({"text": "Again"}))
        .await
        .assert_problem(409, "request_not_open");
    // The card lists the one still open.
    let card = app
        .get(&format!("/v1/cases/{case}"), &w.a_operator.token)
        .await;
    let open = card.assert_status(200)["open_requests"].as_array().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], question.as_str());
    // The agency cancels the other one.
    let res = app
        .post(
            &format!("{p}/{question}/cancel"),
            &w.a_operator.token,
            json!({}),
        )
        .await;
    assert_eq!(res.assert_status(200)["status"], "cancelled");
    app.post(
        &format!("{p}/{question}/answer"),
        &w.client.token,
        json!({"text": "Yes"}),
    )
    .await
    .assert_problem(409, "request_not_open");
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(card.body["open_requests"], Value::Array(vec![]));
    let list = app
        .get(&format!("{p}?status=answered"), &w.client.token)
        .await;
    assert_eq!(
        list.assert_status(200)["items"].as_array().unwrap().len(),
        1
    );
    // Several statuses at once (API.md: the parameter repeats).
    let statuses = |list: &Value| -> Vec<String> {
        let items = list["items"].as_array().unwrap();
        items
            .iter()
            .map(|r| r["status"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = app
        .get(
            &format!("{p}?status=answered&status=cancelled"),
            &w.client.token,
        )
        .await;
    assert_eq!(statuses(list.assert_status(200)), ["cancelled", "answered"]);
    let list = app
        .get(&format!("{p}?status=open&status=answered"), &w.client.token)
        .await;
    assert_eq!(statuses(list.assert_status(200)), ["answered"]);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND entity = 'request'"
        )),
        6
    );
    // The answer and the cancellation, each by its author, read by the case's agency.
    let moved = app.texts(&format!(
        "SELECT action || ' ' || old_value || ' ' || new_value || ' ' || actor_id || ' ' || \
         agency_id AS t FROM audit_log WHERE case_id = '{case}' AND entity = 'request' \
         AND action <> 'create' ORDER BY seq"
    ));
    assert_eq!(
        moved,
        [
            Some(format!(
                "answer open answered {} {}",
                w.client.id, w.agency_a
            )),
            Some(format!(
                "cancel open cancelled {} {}",
                w.a_operator.id, w.agency_a
            )),
        ]
    );
}

/// The card's ETag is the case version, so every change to its open requests must move it: a
/// client polling with `If-None-Match` would otherwise be told 304 and never see the request.
#[actix_web::test]
async fn each_change_to_open_requests_moves_the_cards_etag() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    let card = format!("/v1/cases/{case}");
    let p = format!("{card}/requests");
    let etag = |res: &crate::helpers::Response| res.header("etag").unwrap().to_owned();
    let version = |tag: &str| tag.trim_matches('"').parse::<i64>().unwrap();
    // The client's conditional GET of the card, holding `tag`.
    let revalidate = async |tag: &str| {
        let headers = [("if-none-match", tag)];
        app.call("GET", &card, &w.client.token, None, &headers)
            .await
    };
    let before = etag(&app.get(&card, &w.client.token).await);
    // Asked: the client's conditional GET gets the new card, not 304.
    let ask = |prompt: &str| json!({"kind": "question", "prompt": prompt});
    let asked = id(app
        .post(&p, &w.a_operator.token, ask("Does he own a car?"))
        .await
        .assert_status(201));
    let res = revalidate(&before).await;
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(res.body["open_requests"][0]["id"], asked.as_str());
    let after_ask = etag(&res);
    assert_ne!(after_ask, before);
    assert_eq!(res.body["version"], version(&before) + 1);
    // Answered, then a second one cancelled: each moves the version once.
    app.post(
        &format!("{p}/{asked}/answer"),
        &w.client.token,
        json!({"text": "A grey van."}),
    )
    .await
    .assert_status(200);
    let other = id(app
        .post(&p, &w.a_operator.token, ask("Where does he work?"))
        .await
        .assert_status(201));
    app.post(
        &format!("{p}/{other}/cancel"),
        &w.a_operator.token,
        json!({}),
    )
    .await
    .assert_status(200);
    let res = revalidate(&after_ask).await;
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(res.body["open_requests"], json!([]));
    let settled = etag(&res);
    assert_eq!(res.body["version"], version(&after_ask) + 3);
    // A refused change (the request is no longer open) moves nothing; the old ETag is a 304.
    app.post(
        &format!("{p}/{other}/cancel"),
        &w.a_operator.token,
        json!({}),
    )
    .await
    .assert_problem(409, "request_not_open");
    let res = revalidate(&settled).await;
    assert_eq!(res.status.as_u16(), 304);
    // A PATCH holding the version from before the requests is refused.
    let res = app
        .call(
            "PATCH",
            &card,
            &w.a_operator.token,
            Some(json!({"priority": "high"})),
            &[("if-match", before.as_str())],
        )
        .await;
    assert_eq!(res.status.as_u16(), 412);
}

/// Rooms live at the configured provider's base URL (a missing final `/` is added), and the
/// join link sends there.
#[actix_web::test]
async fn video_rooms_are_opened_at_the_configured_provider() {
    let app =
        crate::helpers::spawn_with(&[("DOSSIER_VIDEO_BASE_URL", "https://video.acme.example/r")])
            .await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let res = app
        .post(
            &format!("/v1/cases/{case}/video-calls"),
            &w.client.token,
            json!({}),
        )
        .await;
    let call = res.assert_status(201).clone();
    let url = call["url"].as_str().unwrap();
    let room = url.strip_prefix("https://video.acme.example/r/dossier-");
    assert!(room.is_some_and(|r| r.len() >= 32), "{url}");
    let join = app
        .get(call["join_url"].as_str().unwrap(), &w.a_operator.token)
        .await;
    assert_eq!(join.status.as_u16(), 302);
    assert_eq!(join.header("location"), Some(url));
}

#[actix_web::test]
async fn video_rooms_are_unguessable_and_their_links_end_with_the_case() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}/video-calls");
    let keyed = [("idempotency-key", "call-1")];
    let res = app.call("POST", &p, &w.client.token, None, &keyed).await;
    let call = res.assert_status(201).clone();
    let url = call["url"].as_str().unwrap().to_owned();
    let room = url.strip_prefix("https://meet.example/dossier-").unwrap();
    assert!(room.len() >= 32, "192 random bits, base64url");
    let other = app.post(&p, &w.a_operator.token, json!({})).await;
    assert_ne!(other.assert_status(201)["url"].as_str().unwrap(), url);
    // Each room is in the audit trail once, by whoever opened it, with the request's id; the
    // keyed request replayed adds none.
    app.call("POST", &p, &w.client.token, None, &keyed)
        .await
        .assert_status(201);
    let opened = app.texts(&format!(
        "SELECT entity_id || ' ' || actor_id || ' ' || actor_role AS t FROM audit_log \
         WHERE case_id = '{case}' AND entity = 'video_call' AND action = 'create' \
         AND request_id IS NOT NULL ORDER BY seq"
    ));
    assert_eq!(
        opened,
        [
            Some(format!(
                "{} {} client",
                call["id"].as_str().unwrap(),
                w.client.id
            )),
            Some(format!(
                "{} {} agency",
                other.body["id"].as_str().unwrap(),
                w.a_operator.id
            )),
        ]
    );
    // The platform sees the case but takes no part in its calls.
    app.post(&p, &w.platform.token, json!({}))
        .await
        .assert_problem(403, "forbidden");
    app.get(&p, &w.platform_staff.token)
        .await
        .assert_problem(403, "forbidden");
    app.get(call["join_url"].as_str().unwrap(), &w.platform.token)
        .await
        .assert_problem(403, "forbidden");
    app.post(&p, &w.client2.token, json!({}))
        .await
        .assert_problem(404, "not_found");
    // Join redirects while active.
    let join = call["join_url"].as_str().unwrap().to_owned();
    let res = app.get(&join, &w.a_operator.token).await;
    assert_eq!(res.status.as_u16(), 302);
    assert_eq!(res.header("location"), Some(url.as_str()));
    app.get(&join, &w.b_operator.token)
        .await
        .assert_problem(404, "not_found");
    let list = app.get(&p, &w.client.token).await;
    assert_eq!(
        list.assert_status(200)["items"].as_array().unwrap().len(),
        2
    );
    // In progress, an agent on the case sees it but takes no part in its calls; one off it
    // learns nothing.
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    app.get(&format!("/v1/cases/{case}"), &w.a_agent.token)
        .await
        .assert_status(200);
    app.post(&p, &w.a_agent.token, json!({}))
        .await
        .assert_problem(403, "forbidden");
    app.get(&p, &w.a_agent.token)
        .await
        .assert_problem(403, "forbidden");
    app.get(&join, &w.a_agent.token)
        .await
        .assert_problem(403, "forbidden");
    app.get(&join, &w.a_agent2.token)
        .await
        .assert_problem(404, "not_found");
    // Another client, another agency and an agent off the case list nothing either.
    for outsider in [&w.client2, &w.b_operator, &w.a_agent2] {
        app.get(&p, &outsider.token)
            .await
            .assert_problem(404, "not_found");
    }
    // Completed: links ended for good (410) and hidden, each with its audit row; no new rooms.
    let ended_rows = || {
        app.texts(&format!(
            "SELECT new_value AS t FROM audit_log WHERE case_id = '{case}' \
             AND entity = 'video_call' AND action = 'end' AND field = 'ended_at'"
        ))
    };
    assert!(ended_rows().is_empty());
    let completed = act(&app, &w.a_operator.token, &case, "complete").await;
    completed.assert_status(200);
    let res = app.get(&join, &w.client.token).await;
    res.assert_problem(410, "call_ended");
    let list = app.get(&p, &w.client.token).await;
    let items = list.body["items"].as_array().unwrap();
    let ended_at = items[0]["ended_at"].as_str().unwrap().to_owned();
    for item in items {
        assert_eq!(item["active"], false);
        assert_eq!(item["url"], Value::Null);
        assert_eq!(item["ended_at"], ended_at.as_str());
    }
    assert_eq!(ended_rows(), [Some(ended_at.clone()), Some(ended_at)]);
    app.post(&p, &w.client.token, json!({}))
        .await
        .assert_problem(409, "wrong_state");
    // Reopened: the old links stay ended, and a retry of the first room's creation says so
    // rather than replay it; a new room works.
    act(&app, &w.a_operator.token, &case, "reopen")
        .await
        .assert_status(200);
    app.get(&join, &w.client.token)
        .await
        .assert_problem(410, "call_ended");
    let rooms = app.rows_in(&["video_calls", "notifications"]);
    app.call("POST", &p, &w.client.token, None, &keyed)
        .await
        .assert_problem(410, "call_ended");
    assert_eq!(app.rows_in(&["video_calls", "notifications"]), rooms);
    let fresh = app.post(&p, &w.client.token, json!({})).await;
    let fresh = fresh.assert_status(201).clone();
    assert_eq!(fresh["active"], true);
    assert_eq!(fresh["ended_at"], Value::Null);
    let res = app
        .get(fresh["join_url"].as_str().unwrap(), &w.client.token)
        .await;
    assert_eq!(res.status.as_u16(), 302);
    let list = app.get(&p, &w.client.token).await;
    let active: Vec<bool> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["active"].as_bool().unwrap())
        .collect();
    assert_eq!(active, [true, false, false]);
    assert_eq!(ended_rows().len(), 2, "a reopening ends nothing");
}

/// Rejecting or cancelling a case ends its rooms as completing it does. The case's status is a
/// second guard: a room its case left without ending it (as a node of an older version would
/// leave it) does not work either.
#[actix_web::test]
async fn rejected_and_cancelled_cases_end_their_rooms() {
    let app = spawn().await;
    let w = World::new(&app).await;
    for (action, token) in [("reject", &w.a_operator.token), ("cancel", &w.client.token)] {
        let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
        let p = format!("/v1/cases/{case}/video-calls");
        let call = app.post(&p, &w.a_operator.token, json!({})).await;
        let join = call.assert_status(201)["join_url"]
            .as_str()
            .unwrap()
            .to_owned();
        act(&app, token, &case, action).await.assert_status(200);
        app.get(&join, &w.client.token)
            .await
            .assert_problem(410, "call_ended");
        let list = app.get(&p, &w.a_operator.token).await;
        assert_eq!(
            list.assert_status(200)["items"][0]["active"],
            false,
            "{action}"
        );
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' \
                 AND entity = 'video_call' AND action = 'end'"
            )),
            1,
            "{action}"
        );
        app.sql(&format!(
            "UPDATE video_calls SET ended_at = NULL WHERE case_id = '{case}'"
        ));
        app.get(&join, &w.client.token)
            .await
            .assert_problem(410, "call_ended");
        let list = app.get(&p, &w.a_operator.token).await;
        assert_eq!(list.body["items"][0]["active"], false, "{action}");
        assert_eq!(list.body["items"][0]["url"], Value::Null, "{action}");
    }
}

/// Requests from the wrong side: another client, another agency and an agent off the case see
/// no case; the wrong role is refused; a request is only reached through its own case; a case
/// whose status closes requests takes no answer or cancellation. None of it touches the request.
#[actix_web::test]
async fn requests_refuse_the_wrong_side_and_a_closed_case() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let other = id(&buy(&app, &w.client2.token, &w.service_a, "card").await);
    for c in [&case, &other] {
        start_case(&app, &w, c).await;
    }
    let ask = json!({"kind": "question", "prompt": "Does he own a car?"});
    let p = format!("/v1/cases/{case}/requests");
    let asked = id(app
        .post(&p, &w.a_operator.token, ask.clone())
        .await
        .assert_status(201));
    let theirs = id(app
        .post(
            &format!("/v1/cases/{other}/requests"),
            &w.a_operator.token,
            ask.clone(),
        )
        .await
        .assert_status(201));
    let answer = format!("{p}/{asked}/answer");
    let cancel = format!("{p}/{asked}/cancel");
    let text = json!({"text": "A grey van."});
    for outsider in [&w.client2, &w.b_operator, &w.a_agent] {
        app.get(&p, &outsider.token)
            .await
            .assert_problem(404, "not_found");
        app.post(&answer, &outsider.token, text.clone())
            .await
            .assert_problem(404, "not_found");
        app.post(&cancel, &outsider.token, json!({}))
            .await
            .assert_problem(404, "not_found");
    }
    // On the case, an agent still may not ask; the client may not cancel.
    assign_agent(&app, &w, &case).await;
    app.post(&p, &w.a_agent.token, ask.clone())
        .await
        .assert_problem(403, "forbidden");
    app.post(&cancel, &w.client.token, json!({}))
        .await
        .assert_problem(403, "forbidden");
    // Another case's request through this case's path.
    app.post(
        &format!("{p}/{theirs}/answer"),
        &w.client.token,
        text.clone(),
    )
    .await
    .assert_problem(404, "not_found");
    app.post(
        &format!("{p}/{theirs}/cancel"),
        &w.a_operator.token,
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    // Completing the case cancels what is still open (nobody could answer or cancel it any
    // more); then requests are closed to answers and cancellations.
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(card.assert_status(200)["open_requests"], json!([]));
    app.post(&answer, &w.client.token, text)
        .await
        .assert_problem(409, "wrong_state");
    app.post(&cancel, &w.a_operator.token, json!({}))
        .await
        .assert_problem(409, "wrong_state");
    for (case, request, status) in [(&case, &asked, "cancelled"), (&other, &theirs, "open")] {
        let list = app
            .get(&format!("/v1/cases/{case}/requests"), &w.a_operator.token)
            .await;
        let items = list.assert_status(200)["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], request.as_str());
        assert_eq!(items[0]["status"], status, "refused calls change nothing");
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'request' AND action = 'cancel' \
             AND entity_id = '{asked}' AND case_id = '{case}' AND new_value = 'cancelled'"
        )),
        1,
        "the completion's cancellation"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'request' AND action <> 'create'"
        ),
        1,
        "besides the two requests asked, only the completion's cancellation"
    );
    assert_eq!(
        app.count("SELECT COUNT(DISTINCT entity_id) AS n FROM audit_log WHERE entity = 'request'"),
        2
    );
}

/// A retried request to the client replays its first answer even once its due date has passed
/// (the date is a rule of the first request only); a new one with that date is refused.
#[actix_web::test]
async fn a_retry_after_the_due_date_replays_the_request_it_made() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let p = format!("/v1/cases/{case}/requests");
    let due = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let ask = json!({"kind": "question", "prompt": "Still there?", "due_at": due});
    let key = [("idempotency-key", "ask-1")];
    let first = app
        .call("POST", &p, &w.a_operator.token, Some(ask.clone()), &key)
        .await;
    first.assert_status(201);
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let again = app
        .call("POST", &p, &w.a_operator.token, Some(ask.clone()), &key)
        .await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    app.post(&p, &w.a_operator.token, ask)
        .await
        .assert_problem(422, "in_the_past");
}

/// The client answers while the agency completes the case. Both lock the case's row before the
/// request's (completing cancels the open requests), so on PostgreSQL they never deadlock:
/// each answers 200 or 409, never 500, and the request ends answered or cancelled, not both.
#[actix_web::test]
async fn an_answer_racing_the_completion_never_fails() {
    let app = spawn().await;
    let w = World::new(&app).await;
    for _ in 0..8 {
        let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
        start_case(&app, &w, &case).await;
        let p = format!("/v1/cases/{case}/requests");
        let asked = app
            .post(
                &p,
                &w.a_operator.token,
                json!({"kind": "question", "prompt": "Car?"}),
            )
            .await;
        let request = id(asked.assert_status(201));
        let answer_path = format!("{p}/{request}/answer");
        let (answer, complete) = futures_util::join!(
            app.post(&answer_path, &w.client.token, json!({"text": "A red Fiat"})),
            act(&app, &w.a_operator.token, &case, "complete"),
        );
        let statuses = (answer.status.as_u16(), complete.status.as_u16());
        assert!(
            matches!(statuses, (200 | 409, 200 | 409)) && statuses != (409, 409),
            "{statuses:?}: {} {}",
            answer.body,
            complete.body
        );
        let res = app.get(&p, &w.a_operator.token).await;
        let status = res.assert_status(200)["items"][0]["status"].clone();
        let expected = if complete.status.as_u16() == 200 && answer.status.as_u16() == 409 {
            "cancelled"
        } else {
            "answered"
        };
        assert_eq!(status, expected, "{statuses:?}");
    }
}

/// An answer racing the request's cancellation: 412 for a caller who sent the version they
/// read (`If-Match`), else 409 `request_not_open` naming the status it found; nothing answered.
#[actix_web::test]
async fn an_answer_racing_a_cancellation_is_refused_as_its_if_match_says() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let asks = format!("/v1/cases/{case}/requests");
    for (if_match, status, code) in [
        (Some("\"1\""), 412, "precondition_failed"),
        (None, 409, "request_not_open"),
    ] {
        let res = app
            .post(
                &asks,
                &w.a_operator.token,
                json!({"kind": "question", "prompt": "Which car?"}),
            )
            .await;
        let request = id(res.assert_status(201));
        // What a cancellation committing meanwhile writes: the case, then the request.
        let cancellation = format!(
            "UPDATE cases SET version = version + 1 WHERE id = '{case}'; \
             UPDATE client_requests SET status = 'cancelled', version = version + 1 \
             WHERE id = '{request}'"
        );
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
        let path = format!("{asks}/{request}/answer");
        let answer = app.call(
            "POST",
            &path,
            &w.client.token,
            Some(json!({"text": "A red Fiat."})),
            &headers,
        );
        let res = app.while_held(&cancellation, answer).await;
        let problem = res.assert_problem(status, code);
        if status == 409 {
            assert!(problem["detail"].as_str().unwrap().contains("`cancelled`"));
        }
        let seen = app.get(&format!("{asks}/{request}"), &w.client.token).await;
        assert_eq!(seen.assert_status(200)["status"], "cancelled");
    }
}

#[actix_web::test]
async fn the_card_shows_the_latest_hundred_open_requests_and_the_list_all() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let p = format!("/v1/cases/{case}/requests");
    let mut asked = Vec::new();
    for i in 0..101 {
        let ask = json!({"kind": "question", "prompt": format!("Question {i}")});
        let res = app.post(&p, &w.a_operator.token, ask).await;
        asked.push(id(res.assert_status(201)));
    }
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    let shown: Vec<String> = card.assert_status(200)["open_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    let newest: Vec<String> = asked.iter().rev().take(100).cloned().collect();
    assert_eq!(shown, newest, "the newest 100, newest first");
    let listed = app
        .every_item(&format!("{p}?status=open"), &w.client.token)
        .await;
    assert_eq!(listed.len(), 101);
}
