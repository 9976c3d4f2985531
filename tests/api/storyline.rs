//! The storyline: drafts by agents, moderation by the agency, published events for the client,
//! system events for reasons and the required data, GeoJSON for the map, frozen on completion.

use serde_json::{Value, json};

use crate::attachments::{png, upload};
use crate::helpers::spawn;
use crate::world::{World, act, assign_agent, buy, close, id, start_case};

fn titles(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn agents_draft_the_agency_moderates_the_client_reads_what_is_published() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let p = format!("/v1/cases/{case}/storyline");
    // Accept writes the required-data snapshot as a system event.
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;

    // The agent writes a draft (even when asking for published: 403), with a position.
    let sighting = json!({"occurred_at": "2026-11-21T14:05:00Z", "kind": "sighting", "title": "Enters the golf club",
                          "latitude": 45.4642, "longitude": 9.19, "place_name": "Golf Club"});
    let res = app.post(&p, &w.a_agent.token, sighting.clone()).await;
    let draft = res.assert_status(201).clone();
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["position"]["latitude"], 45.4642);
    let mut published = sighting.clone();
    published["status"] = json!("published");
    app.post(&p, &w.a_agent.token, published)
        .await
        .assert_problem(403, "forbidden");
    // Others may not write; strangers see nothing.
    app.post(&p, &w.client.token, sighting.clone())
        .await
        .assert_problem(403, "forbidden");
    app.post(&p, &w.platform.token, sighting.clone())
        .await
        .assert_problem(403, "forbidden");
    for token in [&w.a_agent2.token, &w.b_operator.token, &w.client2.token] {
        app.post(&p, token, sighting.clone())
            .await
            .assert_problem(404, "not_found");
        app.get(&p, token).await.assert_problem(404, "not_found");
    }
    // Bad content: half a position, a foreign attachment, the system's kind.
    let res = app
        .post(&p, &w.a_operator.token, json!({"title": "x", "latitude": 45.0, "kind": "system", "attachment_ids": [uuid::Uuid::now_v7()]}))
        .await;
    let codes: Vec<&str> = res.assert_problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["incomplete_position", "invalid_attachment", "not_allowed"]
    );
    app.post(
        &p,
        &w.a_operator.token,
        json!({"title": "x", "latitude": 95.0, "longitude": 9.0}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // The agency writes a published event with a photo of the case, earlier in time.
    let photo = id(
        upload(&app, &w.a_operator.token, &case, "car.png", &png(500))
            .await
            .assert_status(201),
    );
    let res = app
        .post(&p, &w.a_operator.token, json!({"occurred_at": "2026-11-20T09:00:00Z", "kind": "photo", "title": "The car",
                                             "latitude": 45.47, "longitude": 9.2, "attachment_ids": [photo]}))
        .await;
    assert_eq!(res.assert_status(201)["attachment_ids"], json!([photo]));

    // Chronological; the client sees published events only.
    let all = app.get(&p, &w.a_operator.token).await;
    let all_titles = titles(all.assert_status(200));
    assert_eq!(
        all_titles[..2],
        ["The car".to_owned(), "Enters the golf club".to_owned()]
    );
    assert_eq!(all_titles[2], "Required data submitted");
    let seen = app.get(&p, &w.client.token).await;
    assert_eq!(
        titles(seen.assert_status(200)),
        ["The car", "Required data submitted"]
    );
    let draft_id = draft["id"].as_str().unwrap();
    let ep = format!("{p}/{draft_id}");
    // A client cannot learn a draft exists; the agent may not moderate.
    app.patch(&ep, &w.client.token, json!({"title": "x"}))
        .await
        .assert_problem(404, "not_found");
    app.patch(&ep, &w.a_agent.token, json!({"title": "x"}))
        .await
        .assert_problem(403, "forbidden");
    // The agency edits (If-Match on the event), then publishes.
    app.call(
        "PATCH",
        &ep,
        &w.a_operator.token,
        Some(json!({"title": "Enters the club"})),
        &[("if-match", "\"7\"")],
    )
    .await
    .assert_problem(412, "precondition_failed");
    let res = app
        .call(
            "PATCH",
            &ep,
            &w.a_operator.token,
            Some(json!({"title": "Enters the club", "body": "By taxi"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(res.assert_status(200)["version"], 2);
    app.patch(&ep, &w.a_operator.token, json!({"latitude": null}))
        .await
        .assert_problem(422, "validation_failed");
    // Publishing honours `If-Match` too: the version reviewed before that edit is stale, and
    // nothing is published or audited.
    let publish = format!("{ep}/publish");
    let audited = app.count("SELECT COUNT(*) AS n FROM audit_log");
    app.call(
        "POST",
        &publish,
        &w.a_operator.token,
        None,
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_problem(412, "precondition_failed");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM audit_log"), audited);
    assert_eq!(
        titles(app.get(&p, &w.client.token).await.assert_status(200)).len(),
        2
    );
    let res = app
        .call(
            "POST",
            &publish,
            &w.a_operator.token,
            None,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(res.assert_status(200)["status"], "published");
    let seen = app.get(&p, &w.client.token).await;
    assert_eq!(
        titles(seen.assert_status(200)),
        ["The car", "Enters the club", "Required data submitted"]
    );

    // A suspension's reason goes into the storyline, published.
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    let seen = app.get(&p, &w.client.token).await;
    let last = seen.body["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "status");
    assert_eq!(last["body"], "because");
    // The titles the system wrote are in each reader's language: Accept-Language, else their
    // own locale; the English text is what is stored and audited.
    assert_eq!(last["title"], "Suspend: Suspended");
    let italian = app
        .call(
            "GET",
            &p,
            &w.client.token,
            None,
            &[("accept-language", "it")],
        )
        .await;
    assert_eq!(
        titles(italian.assert_status(200))[2..],
        ["Dati richiesti inviati", "Sospendi: Sospeso"]
    );
    assert!(italian.varies().contains(&"accept-language".to_owned()));
    app.patch(
        &format!("/v1/users/{}", w.a_operator.id),
        &w.platform.token,
        json!({"locale": "pl"}),
    )
    .await
    .assert_status(200);
    let one = format!("{p}/{}", last["id"].as_str().unwrap());
    let polish = app.get(&one, &w.a_operator.token).await;
    assert_eq!(polish.assert_status(200)["title"], "Wstrzymaj: Wstrzymana");
    assert!(polish.varies().contains(&"accept-language".to_owned()));
    let stored = app.texts(&format!(
        "SELECT title AS t FROM storyline_events WHERE id = '{}' \
         UNION ALL SELECT new_value AS t FROM audit_log WHERE entity_id = '{}' AND field = 'title'",
        last["id"].as_str().unwrap(),
        last["id"].as_str().unwrap()
    ));
    let english = Some("Suspend: Suspended".to_owned());
    assert_eq!(stored, [english.clone(), english]);
    // Through the CORS layer (a browser's request) the language still varies the answer.
    let browser = [("accept-language", "it"), ("origin", "https://app.example")];
    let res = app.call("GET", &p, &w.client.token, None, &browser).await;
    res.assert_status(200);
    assert!(res.varies().contains(&"accept-language".to_owned()));
    // Retitled by the agency, the event reads as the agency wrote it, in every language.
    app.call(
        "PATCH",
        &one,
        &w.a_operator.token,
        Some(json!({"title": "Paused for documents"})),
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_status(200);
    let italian = app
        .call(
            "GET",
            &one,
            &w.client.token,
            None,
            &[("accept-language", "it")],
        )
        .await;
    assert_eq!(italian.assert_status(200)["title"], "Paused for documents");
    // Agents may not write while suspended; the agency may.
    app.post(&p, &w.a_agent.token, sighting.clone())
        .await
        .assert_problem(409, "wrong_state");
    let extra = app
        .post(
            &p,
            &w.a_operator.token,
            json!({"title": "Waiting for documents", "status": "draft"}),
        )
        .await;
    let extra_id = id(extra.assert_status(201));
    let extra = format!("{p}/{extra_id}");
    app.call(
        "DELETE",
        &extra,
        &w.a_operator.token,
        None,
        &[("if-match", "\"2\"")],
    )
    .await
    .assert_problem(412, "precondition_failed");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM storyline_events WHERE id = '{extra_id}'"
        )),
        1
    );
    let res = app
        .call(
            "DELETE",
            &extra,
            &w.a_operator.token,
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(res.status.as_u16(), 204);

    // Completed: frozen. Reopen: open again.
    act(&app, &w.a_operator.token, &case, "resume")
        .await
        .assert_status(200);
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    app.post(&p, &w.a_operator.token, json!({"title": "Late"}))
        .await
        .assert_problem(409, "wrong_state");
    app.patch(&ep, &w.a_operator.token, json!({"title": "Late"}))
        .await
        .assert_problem(409, "wrong_state");
    app.call("DELETE", &ep, &w.a_operator.token, None, &[])
        .await
        .assert_problem(409, "wrong_state");
    act(&app, &w.a_operator.token, &case, "reopen")
        .await
        .assert_status(200);
    let back = app
        .post(&p, &w.a_operator.token, json!({"title": "Back on it"}))
        .await;
    let back = format!("{p}/{}", back.assert_status(201)["id"].as_str().unwrap());
    // Closed (the client confirmed the completion): frozen for good, a draft's publication too.
    close(&app, &w, &case).await;
    let events = || app.count("SELECT COUNT(*) AS n FROM storyline_events");
    let before = events();
    app.post(&p, &w.a_operator.token, json!({"title": "After the end"}))
        .await
        .assert_problem(409, "wrong_state");
    app.patch(&back, &w.a_operator.token, json!({"title": "Rewritten"}))
        .await
        .assert_problem(409, "wrong_state");
    app.post(&format!("{back}/publish"), &w.a_operator.token, json!({}))
        .await
        .assert_problem(409, "wrong_state");
    app.call("DELETE", &back, &w.a_operator.token, None, &[])
        .await
        .assert_problem(409, "wrong_state");
    assert_eq!(events(), before);
    let kept = app.get(&back, &w.a_operator.token).await;
    assert_eq!(kept.assert_status(200)["title"], "Back on it");
    // Every change is in the audit trail.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND entity = 'storyline_event'"
        )),
        // creates: draft (2 rows), photo (2), extra (2), back on it (2), system events (accept,
        // suspend, reopen: 1 each); title + body edit (2); the suspension's retitling (1);
        // publish (1); delete (1)
        16
    );
}

#[actix_web::test]
async fn the_map_is_geojson_and_pages_are_chronological() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    let p = format!("/v1/cases/{case}/storyline");
    for (i, day) in (10..17).enumerate() {
        // The first page ends before 1970: its cursor's time is negative.
        let year = if i < 3 { 1969 } else { 2026 };
        // Each page ends on a time with nanoseconds, which the cursor's microseconds must match.
        let nanos = if i % 3 == 2 { ".123456789" } else { "" };
        let at = format!("{year}-11-{day}T12:00:00{nanos}Z");
        let mut event = json!({"occurred_at": at, "title": format!("Day {day}")});
        if i % 2 == 0 {
            event["latitude"] = json!(45.0 + i as f64 / 100.0);
            event["longitude"] = json!(9.0);
        }
        if i == 6 {
            event["status"] = json!("draft");
        }
        app.post(&p, &w.a_operator.token, event)
            .await
            .assert_status(201);
    }
    // Pages of 3 in time order, through the cursor and the Link header.
    let mut seen = Vec::new();
    let mut path = format!("{p}?limit=3");
    loop {
        let res = app.get(&path, &w.a_operator.token).await;
        let body = res.assert_status(200).clone();
        seen.extend(titles(&body));
        match body["next_cursor"].as_str() {
            Some(c) => {
                assert!(res.header("link").is_some());
                path = format!("{p}?limit=3&cursor={c}");
            }
            None => break,
        }
    }
    let days: Vec<String> = (10..17).map(|d| format!("Day {d}")).collect();
    assert_eq!(seen[..7], days[..]);
    let first = app.get(&format!("{p}?limit=3"), &w.a_operator.token).await;
    assert_eq!(
        first.body["items"][2]["occurred_at"], "1969-11-12T12:00:00.123456Z",
        "stored to the microsecond on both engines"
    );
    // Nor is a key whose id is in capitals, a form this API never hands out.
    for bad in [
        "bm9wZQ",
        "MV8wMTkzQTZGOC05OTk5LTdDMkQtOEUzRi00MDUxNjI3Mzg0OTU",
    ] {
        app.get(&format!("{p}?cursor={bad}"), &w.a_operator.token)
            .await
            .assert_problem(400, "invalid_cursor");
    }
    // A well-formed key from before any `occurred_at` (year -29 700) is no cursor either.
    let ancient = {
        use base64::Engine;
        let key = format!("-999999999999999999_{}", uuid::Uuid::now_v7());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
    };
    app.get(&format!("{p}?cursor={ancient}"), &w.a_operator.token)
        .await
        .assert_problem(400, "invalid_cursor");

    // GeoJSON, by Accept or by format: longitude first, the client's view without drafts.
    let res = app
        .call(
            "GET",
            &p,
            &w.client.token,
            None,
            &[("accept", "application/geo+json")],
        )
        .await;
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(res.header("content-type"), Some("application/geo+json"));
    assert_eq!(res.body["type"], "FeatureCollection");
    let features = res.body["features"].as_array().unwrap();
    assert_eq!(features.len(), 3, "four positioned events, one a draft");
    assert_eq!(features[0]["type"], "Feature");
    assert_eq!(
        features[0]["geometry"],
        json!({"type": "Point", "coordinates": [9.0, 45.0]})
    );
    assert_eq!(features[0]["properties"]["title"], "Day 10");
    let res = app
        .get(&format!("{p}?format=geojson"), &w.a_operator.token)
        .await;
    assert_eq!(res.body["features"].as_array().unwrap().len(), 4);
    app.get(&format!("{p}?format=kml"), &w.a_operator.token)
        .await
        .assert_problem(400, "invalid_query");
}

#[actix_web::test]
async fn a_rejection_leaves_the_submitted_data_and_the_reason_in_the_storyline() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let service = crate::world::create_service(
        &app,
        &w.a_admin.token,
        "Tracking",
        json!([{"key": "plate", "label": "Plate", "type": "text"}]),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &service, "card").await);
    app.patch(
        &format!("/v1/cases/{case}/required-data/values"),
        &w.client.token,
        json!({"values": {"plate": "AB123CD"}}),
    )
    .await
    .assert_status(200);
    act(&app, &w.a_operator.token, &case, "reject")
        .await
        .assert_status(200);
    let res = app
        .get(&format!("/v1/cases/{case}/storyline"), &w.client.token)
        .await;
    let items = res.assert_status(200)["items"].as_array().unwrap().clone();
    let kinds: Vec<&str> = items.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["system", "status"]);
    let snapshot: Value = serde_json::from_str(items[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(snapshot[0]["key"], "plate");
    assert_eq!(snapshot[0]["value"], "AB123CD");
    assert_eq!(items[1]["body"], "because");
    // Rejected is terminal: the storyline takes nothing more.
    app.post(
        &format!("/v1/cases/{case}/storyline"),
        &w.a_operator.token,
        json!({"title": "x"}),
    )
    .await
    .assert_problem(409, "wrong_state");
}

/// Moderation from the wrong side: an agent on the case drafts but neither publishes nor
/// deletes; another agency, another client and the client (for a draft) reach nothing; a deleted
/// event is gone from every route; a completed case's drafts stay unpublished.
#[actix_web::test]
async fn only_the_agency_publishes_and_deletes_and_a_deleted_event_is_gone() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    let p = format!("/v1/cases/{case}/storyline");
    let mut drafts = Vec::new();
    for title in ["Parked outside", "Wrong car"] {
        let res = app
            .post(&p, &w.a_agent.token, json!({"title": title}))
            .await;
        drafts.push(id(res.assert_status(201)));
    }
    for event in &drafts {
        let ep = format!("{p}/{event}");
        let publish = format!("{ep}/publish");
        app.post(&publish, &w.a_agent.token, json!({}))
            .await
            .assert_problem(403, "forbidden");
        app.call("DELETE", &ep, &w.a_agent.token, None, &[])
            .await
            .assert_problem(403, "forbidden");
        for outsider in [&w.b_operator, &w.client2, &w.client] {
            app.post(&publish, &outsider.token, json!({}))
                .await
                .assert_problem(404, "not_found");
            app.call("DELETE", &ep, &outsider.token, None, &[])
                .await
                .assert_problem(404, "not_found");
            app.patch(&ep, &outsider.token, json!({"title": "Not yours"}))
                .await
                .assert_problem(404, "not_found");
        }
    }
    let listed = async |token: &str| titles(app.get(&p, token).await.assert_status(200));
    let seen = listed(&w.a_operator.token).await;
    assert!(seen.contains(&"Parked outside".to_owned()) && seen.contains(&"Wrong car".to_owned()));

    let gone = format!("{p}/{}", drafts[1]);
    let res = app
        .call("DELETE", &gone, &w.a_operator.token, None, &[])
        .await;
    assert_eq!(res.status.as_u16(), 204);
    let seen = listed(&w.a_operator.token).await;
    assert!(seen.contains(&"Parked outside".to_owned()));
    assert!(!seen.contains(&"Wrong car".to_owned()), "{seen:?}");
    app.patch(&gone, &w.a_operator.token, json!({"title": "x"}))
        .await
        .assert_problem(404, "not_found");
    app.call("DELETE", &gone, &w.a_operator.token, None, &[])
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{}' AND action = 'delete'",
            drafts[1]
        )),
        1
    );
    // A deletion racing another (held here, uncommitted, as a concurrent request's would be)
    // finds nothing left to delete: 404, and no audit row of a deletion it did not make.
    let res = app
        .post(&p, &w.a_agent.token, json!({"title": "Deleted twice"}))
        .await;
    let twice = id(res.assert_status(201));
    let held = format!("DELETE FROM storyline_events WHERE id = '{twice}'");
    let twice_path = format!("{p}/{twice}");
    let delete = app.call("DELETE", &twice_path, &w.a_operator.token, None, &[]);
    app.while_held(&held, delete)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{twice}' AND action = 'delete'"
        )),
        0
    );
    // A deletion racing a rename (held the same way) would record a title that is not the
    // one deleted: 409 `concurrent_update` on PostgreSQL, where both read before either
    // writes; SQLite's one writer runs them in turn, and the audit row keeps the new title.
    let res = app
        .post(&p, &w.a_agent.token, json!({"title": "Before the rename"}))
        .await;
    let renamed = id(res.assert_status(201));
    let held = format!(
        "UPDATE storyline_events SET title = 'After the rename', version = version + 1 \
         WHERE id = '{renamed}'"
    );
    let renamed_path = format!("{p}/{renamed}");
    let delete = app.call("DELETE", &renamed_path, &w.a_operator.token, None, &[]);
    let res = app.while_held(&held, delete).await;
    let recorded = format!(
        "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{renamed}' AND action = 'delete' \
         AND old_value = 'After the rename'"
    );
    if app._db.is_postgres() {
        res.assert_problem(409, "concurrent_update");
        assert_eq!(app.count(&recorded), 0);
    } else {
        assert_eq!(res.status.as_u16(), 204);
        assert_eq!(app.count(&recorded), 1);
    }

    // Clearing the body and the position is a change, in the audit trail like any other.
    let kept = format!("{p}/{}", drafts[0]);
    let filled = json!({"body": "A blue sedan.", "latitude": 45.1, "longitude": 9.1});
    app.patch(&kept, &w.a_operator.token, filled)
        .await
        .assert_status(200);
    let cleared = json!({"body": null, "latitude": null, "longitude": null});
    let res = app.patch(&kept, &w.a_operator.token, cleared).await;
    assert_eq!(res.assert_status(200)["body"], Value::Null);
    assert_eq!(res.body["position"], Value::Null);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{}' AND action = 'update' \
             AND field IN ('body', 'latitude', 'longitude') AND old_value IS NOT NULL \
             AND new_value IS NULL",
            drafts[0]
        )),
        3
    );

    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    app.post(
        &format!("{p}/{}/publish", drafts[0]),
        &w.a_operator.token,
        json!({}),
    )
    .await
    .assert_problem(409, "wrong_state");
    assert!(
        !listed(&w.client.token)
            .await
            .contains(&"Parked outside".to_owned())
    );
}

/// What the system, the client or platform staff wrote stays as written: the submitted data
/// (kind `system`), a dispute's reason (the client's) and a reopening's (platform staff's)
/// answer 409 `recorded_event` to an edit or a deletion, while the agency's own events, a reason
/// of its own included, stay editable.
#[actix_web::test]
async fn events_the_system_or_the_client_wrote_stay_as_written() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    act(&app, &w.a_operator.token, &case, "resume")
        .await
        .assert_status(200);
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    act(&app, &w.client.token, &case, "dispute_completion")
        .await
        .assert_status(200);
    act(&app, &w.platform.token, &case, "reopen")
        .await
        .assert_status(200);
    let p = format!("/v1/cases/{case}/storyline");
    let res = app.get(&p, &w.a_operator.token).await;
    let items = res.assert_status(200)["items"].as_array().unwrap().clone();
    let by = |kind: &str, author: &str| {
        items
            .iter()
            .find(|e| e["kind"] == kind && e["author_id"] == author)
            .map(id)
            .unwrap_or_else(|| panic!("no {kind} event by {author}: {items:?}"))
    };
    let snapshot = by("system", &w.a_operator.id);
    let dispute = by("status", &w.client.id);
    let reopening = by("status", &w.platform.id);
    let suspension = by("status", &w.a_operator.id);
    for event in [&snapshot, &dispute, &reopening] {
        app.patch(
            &format!("{p}/{event}"),
            &w.a_operator.token,
            json!({"body": "rewritten"}),
        )
        .await
        .assert_problem(409, "recorded_event");
        app.call(
            "DELETE",
            &format!("{p}/{event}"),
            &w.a_operator.token,
            None,
            &[],
        )
        .await
        .assert_problem(409, "recorded_event");
    }
    let res = app
        .patch(
            &format!("{p}/{suspension}"),
            &w.a_operator.token,
            json!({"body": "Waiting for the client's papers"}),
        )
        .await;
    assert_eq!(
        res.assert_status(200)["body"],
        "Waiting for the client's papers"
    );
    let res = app.get(&p, &w.client.token).await;
    let bodies: Vec<Value> = res.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["id"] == dispute.as_str())
        .map(|e| e["body"].clone())
        .collect();
    assert_eq!(bodies, [json!("because")]);
}

/// Times before the year 1 are refused (PostgreSQL cannot store them; SQLite would sort them
/// backwards); files cited twice are kept once; both formats of the list vary by `Accept`.
#[actix_web::test]
async fn early_years_are_refused_files_count_once_and_the_format_varies_by_accept() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let p = format!("/v1/cases/{case}/storyline");
    for at in [
        "-5000-01-01T00:00:00Z",
        "-0001-06-01T00:00:00Z",
        "0000-06-01T00:00:00Z",
    ] {
        let res = app
            .post(
                &p,
                &w.a_operator.token,
                json!({"title": "x", "occurred_at": at}),
            )
            .await;
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], "/occurred_at", "{at}");
        assert_eq!(problem["errors"][0]["code"], "out_of_range", "{at}");
    }
    let photo = id(upload(&app, &w.a_operator.token, &case, "a.png", &png(300))
        .await
        .assert_status(201));
    let map = id(upload(&app, &w.a_operator.token, &case, "b.png", &png(310))
        .await
        .assert_status(201));
    let res = app
        .post(
            &p,
            &w.a_operator.token,
            json!({"title": "Two photos", "occurred_at": "0001-01-01T00:00:00Z",
                   "attachment_ids": [photo, map, photo]}),
        )
        .await;
    let event = res.assert_status(201).clone();
    assert_eq!(event["attachment_ids"], json!([photo, map]));
    app.patch(
        &format!("{p}/{}", id(&event)),
        &w.a_operator.token,
        json!({"occurred_at": "-0001-01-01T00:00:00Z"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    for accept in ["application/json", "application/geo+json"] {
        let res = app
            .send(
                actix_web::test::TestRequest::get()
                    .uri(&p)
                    .insert_header(("Authorization", format!("Bearer {}", w.a_operator.token)))
                    .insert_header(("Accept", accept)),
            )
            .await;
        res.assert_status(200);
        let vary = res.header("vary").unwrap_or_default();
        assert!(
            vary.split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("accept")),
            "{accept}: {vary}"
        );
    }
}

/// An event written while the case is being completed lands before the freeze or not at all
/// (on PostgreSQL the write waits on the case's lock, then finds the case completed).
#[actix_web::test]
async fn an_event_racing_the_completion_finds_the_storyline_frozen() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let completion =
        format!("UPDATE cases SET status = 'completed', version = version + 1 WHERE id = '{case}'");
    let p = format!("/v1/cases/{case}/storyline");
    let post = app.post(&p, &w.a_operator.token, json!({"title": "Late sighting"}));
    let res = app.while_held(&completion, post).await;
    res.assert_problem(409, "wrong_state");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM storyline_events WHERE case_id = '{case}' \
             AND title = 'Late sighting'"
        )),
        0
    );
}

/// A published event, which the client and the platform can read, is still the agency's alone
/// to edit, publish or delete: both get 403 and change nothing.
#[actix_web::test]
async fn a_published_event_is_moderated_by_its_agency_alone() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let p = format!("/v1/cases/{case}/storyline");
    let published = json!({"title": "Leaves the office", "status": "published"});
    let event = id(app
        .post(&p, &w.a_operator.token, published)
        .await
        .assert_status(201));
    let ep = format!("{p}/{event}");
    let audit_rows = format!("SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{event}'");
    let rows_before = app.count(&audit_rows);
    let read = async || {
        let res = app.get(&p, &w.a_operator.token).await;
        let items = res.assert_status(200)["items"].as_array().unwrap().clone();
        items
            .into_iter()
            .find(|e| e["id"] == event.as_str())
            .unwrap()
    };
    let before = read().await;
    for token in [&w.client.token, &w.platform.token, &w.platform_staff.token] {
        app.patch(&ep, token, json!({"title": "x"}))
            .await
            .assert_problem(403, "forbidden");
        app.post(&format!("{ep}/publish"), token, json!({}))
            .await
            .assert_problem(403, "forbidden");
        app.call("DELETE", &ep, token, None, &[])
            .await
            .assert_problem(403, "forbidden");
    }
    assert_eq!(read().await, before);
    assert_eq!(app.count(&audit_rows), rows_before);
}

#[actix_web::test]
async fn a_leap_second_is_the_second_after_it_on_both_engines() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let p = format!("/v1/cases/{case}/storyline");
    let op = &w.a_operator.token;
    // RFC 3339 writes a leap second as `:60`; it is stored and answered as the instant after
    // it, as PostgreSQL would, so that SQLite keeps no `:60` that clients cannot read.
    let mut written = Vec::new();
    for at in [
        "2026-11-21T14:05:60.5Z",
        "2026-11-21T14:06:00Z",
        "2026-11-21T14:06:00.25Z",
    ] {
        let res = app
            .post(&p, op, json!({"occurred_at": at, "title": at}))
            .await;
        written.push(res.assert_status(201)["occurred_at"].clone());
    }
    assert_eq!(
        written,
        [
            "2026-11-21T14:06:00.500Z",
            "2026-11-21T14:06:00Z",
            "2026-11-21T14:06:00.250Z"
        ]
    );
    // One event a page: each once, in time order, none skipped at the leap.
    let titles: Vec<Value> = app
        .every_item(&format!("{p}?limit=1"), op)
        .await
        .iter()
        .filter(|e| e["kind"] != "system")
        .map(|e| e["title"].clone())
        .collect();
    assert_eq!(
        titles,
        [
            "2026-11-21T14:06:00Z",
            "2026-11-21T14:06:00.25Z",
            "2026-11-21T14:05:60.5Z"
        ]
    );
    // A request's due date too.
    let due = json!({"kind": "question", "prompt": "When?", "due_at": "2030-06-30T23:59:60Z"});
    let res = app
        .post(&format!("/v1/cases/{case}/requests"), op, due)
        .await;
    assert_eq!(res.assert_status(201)["due_at"], "2030-07-01T00:00:00Z");
}
