//! The bell: who is notified of what, in their language, and marking read.

use serde_json::{Value, json};

use crate::helpers::{AppService, spawn};
use crate::world::{World, act, assign_agent, buy, id, post_message, take};

async fn events<S>(app: &crate::helpers::TestApp<S>, token: &str) -> Vec<(String, String)>
where
    S: AppService,
{
    let res = app.get("/v1/notifications?limit=100", token).await;
    res.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["event"].as_str().unwrap().to_owned(),
                n["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn each_event_reaches_the_right_people_in_their_language() {
    let app = spawn().await;
    let w = World::new(&app).await;
    app.patch(
        &format!("/v1/users/{}", w.client.id),
        &w.platform.token,
        json!({"locale": "it"}),
    )
    .await
    .assert_status(200);
    let card = buy(&app, &w.client.token, &w.service_a, "card").await;
    let case = id(&card);
    let number = card["number"].as_str().unwrap().to_owned();
    let m = format!("/v1/cases/{case}/messages");

    // Nobody assigned: every operator of the agency hears of the client's message.
    app.post(&m, &w.client.token, json!({"body": "Hello"}))
        .await
        .assert_status(201);
    for token in [&w.a_operator.token, &w.a_admin.token] {
        assert_eq!(
            events(&app, token).await,
            [(
                "message_received".to_owned(),
                format!("New message on {number}")
            )]
        );
    }
    assert!(events(&app, &w.b_operator.token).await.is_empty());
    assert!(
        events(&app, &w.client.token).await.is_empty(),
        "not of their own message"
    );
    // Once taken, only the assignee.
    take(&app, &w.a_operator.token, &case).await;
    app.post(&m, &w.client.token, json!({"body": "Anyone?"}))
        .await
        .assert_status(201);
    assert_eq!(events(&app, &w.a_operator.token).await.len(), 2);
    assert_eq!(events(&app, &w.a_admin.token).await.len(), 1);

    // Status changes reach the client in Italian, with the reason.
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    let res = app.get("/v1/notifications", &w.client.token).await;
    let newest = res.assert_status(200)["items"][0].clone();
    assert_eq!(newest["event"], "status_changed");
    assert_eq!(newest["title"], format!("{number} — Sospeso"));
    assert_eq!(newest["body"], "because");
    assert_eq!(newest["link"], format!("/v1/cases/{case}"));
    assert_eq!(newest["app_link"], format!("dossier://cases/{case}"));
    act(&app, &w.a_operator.token, &case, "resume")
        .await
        .assert_status(200);

    // Requests: opened → client; answered → the assignee.
    let r = app
        .post(
            &format!("/v1/cases/{case}/requests"),
            &w.a_operator.token,
            json!({"kind": "question", "prompt": "His car?"}),
        )
        .await;
    let r = id(r.assert_status(201));
    assert_eq!(events(&app, &w.client.token).await[0].0, "request_opened");
    app.post(
        &format!("/v1/cases/{case}/requests/{r}/answer"),
        &w.client.token,
        json!({"text": "A red Fiat"}),
    )
    .await
    .assert_status(200);
    assert_eq!(
        events(&app, &w.a_operator.token).await[0].0,
        "request_answered"
    );
    // Withdrawn → the client, in their language, with what they were asked.
    let r = app
        .post(
            &format!("/v1/cases/{case}/requests"),
            &w.a_operator.token,
            json!({"kind": "question", "prompt": "Her bike?"}),
        )
        .await;
    let r = id(r.assert_status(201));
    let operator_heard = events(&app, &w.a_operator.token).await.len();
    app.post(
        &format!("/v1/cases/{case}/requests/{r}/cancel"),
        &w.a_operator.token,
        json!({}),
    )
    .await
    .assert_status(200);
    let res = app.get("/v1/notifications", &w.client.token).await;
    let newest = res.assert_status(200)["items"][0].clone();
    assert_eq!(newest["event"], "request_cancelled");
    assert_eq!(newest["title"], format!("Richiesta ritirata su {number}"));
    assert_eq!(newest["body"], "Her bike?");
    assert_eq!(
        events(&app, &w.a_operator.token).await.len(),
        operator_heard
    );

    // Agents (resume led to in progress): assigned, then internal notes both ways.
    assign_agent(&app, &w, &case).await;
    assert_eq!(
        events(&app, &w.a_agent.token).await,
        [(
            "assigned".to_owned(),
            format!("{number} was assigned to you")
        )]
    );
    app.post(
        &m,
        &w.a_operator.token,
        json!({"body": "Follow the red Fiat", "internal": true}),
    )
    .await
    .assert_status(201);
    assert_eq!(
        events(&app, &w.a_agent.token).await[0].0,
        "message_received"
    );
    let client_before = events(&app, &w.client.token).await.len();
    app.post(
        &m,
        &w.a_agent.token,
        json!({"body": "On it", "internal": true}),
    )
    .await
    .assert_status(201);
    assert_eq!(
        events(&app, &w.a_operator.token).await[0].0,
        "message_received"
    );
    assert_eq!(
        events(&app, &w.client.token).await.len(),
        client_before,
        "internal notes never reach the client"
    );
    // A video call from the client reaches the assignee; a delegation the new assignee.
    app.post(
        &format!("/v1/cases/{case}/video-calls"),
        &w.client.token,
        json!({}),
    )
    .await
    .assert_status(201);
    assert_eq!(
        events(&app, &w.a_operator.token).await[0].0,
        "video_call_opened"
    );
    app.post(
        &format!("/v1/cases/{case}/assignment"),
        &w.a_operator.token,
        json!({"action": "delegate", "user_id": w.a_admin.id}),
    )
    .await
    .assert_status(200);
    assert_eq!(events(&app, &w.a_admin.token).await[0].0, "assigned");
    // Completed: the client is asked to confirm (in Italian), and the agents, whose case
    // leaves the statuses they see it in, hear of it (an agent off the case does not); this
    // one in Spanish, then Polish.
    let agent = format!("/v1/users/{}", w.a_agent.id);
    let speaks = |locale: &'static str| {
        let res = app.patch(&agent, &w.platform.token, json!({ "locale": locale }));
        async move { res.await.assert_status(200).clone() }
    };
    speaks("es").await;
    // A trigger on the move (which reads the case again) changes none of that.
    let trigger = json!({"name": "Tag the finished", "event": "status_changed",
        "actions": [{"type": "add_tag", "tag": "finished"}]});
    app.post("/v1/triggers", &w.a_admin.token, trigger)
        .await
        .assert_status(201);
    // Without a reason, the client is told what they are asked to confirm: the resolution.
    let resolution = "Found him at the golf club.";
    app.post(
        &format!("/v1/cases/{case}/transitions"),
        &w.a_admin.token,
        json!({"action": "complete", "resolution_type": "solved", "resolution": resolution}),
    )
    .await
    .assert_status(200);
    let moved = |label: &str| ("status_changed".to_owned(), format!("{number} — {label}"));
    assert_eq!(
        events(&app, &w.client.token).await[0],
        moved("Completato — conferma, per favore")
    );
    let res = app.get("/v1/notifications", &w.client.token).await;
    assert_eq!(res.assert_status(200)["items"][0]["body"], resolution);
    assert_eq!(
        events(&app, &w.a_agent.token).await[0],
        moved("Completado — confírmelo, por favor")
    );
    // The agent, who no longer sees the case, is told of the move, not of its resolution.
    let res = app.get("/v1/notifications", &w.a_agent.token).await;
    assert_eq!(res.assert_status(200)["items"][0]["body"], Value::Null);
    assert!(events(&app, &w.a_agent2.token).await.is_empty());
    // A dispute concerns the platform too; not the agents (the case stays `completed`).
    let agent_news = events(&app, &w.a_agent.token).await.len();
    act(&app, &w.client.token, &case, "dispute_completion")
        .await
        .assert_status(200);
    for token in [&w.platform.token, &w.platform_staff.token] {
        assert_eq!(events(&app, token).await[0].0, "status_changed");
    }
    assert_eq!(events(&app, &w.a_agent.token).await.len(), agent_news);
    // Reopened, the case is the agents' again: they hear of it.
    speaks("pl").await;
    act(&app, &w.a_admin.token, &case, "reopen")
        .await
        .assert_status(200);
    assert_eq!(
        events(&app, &w.a_agent.token).await[0],
        moved("Dochodzenie w toku")
    );
}

/// An assignee who can no longer log in leaves the case's news to every operator of the agency.
#[actix_web::test]
async fn a_deactivated_assignees_news_goes_to_the_agency() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    take(&app, &w.a_operator.token, &case).await;
    app.deactivate_user(&w.platform.token, &w.a_operator.id)
        .await;
    let before = events(&app, &w.a_admin.token).await.len();
    post_message(&app, &w.client.token, &case, "Anyone there?").await;
    let after = events(&app, &w.a_admin.token).await;
    assert_eq!(after.len(), before + 1);
    assert_eq!(after[0].0, "message_received");
    assert!(events(&app, &w.b_operator.token).await.is_empty());
    let to_assignee = format!(
        "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{}' AND event = 'message_received'",
        w.a_operator.id
    );
    assert_eq!(app.count(&to_assignee), 0);
}

#[actix_web::test]
async fn the_bell_counts_and_marks_read() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    for i in 0..3 {
        post_message(&app, &w.a_operator.token, &case, &format!("m{i}")).await;
    }
    let count = app
        .get("/v1/notifications/unread-count", &w.client.token)
        .await;
    assert_eq!(count.assert_status(200)["count"], 3);
    let list = app.get("/v1/notifications", &w.client.token).await;
    let first = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    // Someone else's ids change nothing.
    let res = app
        .post(
            "/v1/notifications/read",
            &w.a_operator.token,
            json!({"ids": [first]}),
        )
        .await;
    assert_eq!(res.assert_status(200)["updated"], 0);
    let res = app
        .post(
            "/v1/notifications/read",
            &w.client.token,
            json!({"ids": [first]}),
        )
        .await;
    assert_eq!(res.assert_status(200)["updated"], 1);
    assert_eq!(res.body["unread"], 2);
    let unread = app
        .get("/v1/notifications?unread=true", &w.client.token)
        .await;
    assert_eq!(
        unread.assert_status(200)["items"].as_array().unwrap().len(),
        2
    );
    app.post("/v1/notifications/read", &w.client.token, json!({}))
        .await
        .assert_problem(422, "one_of");
    app.post(
        "/v1/notifications/read",
        &w.client.token,
        json!({"ids": [first], "all": true}),
    )
    .await
    .assert_problem(422, "one_of");
    // "All" up to the newest the user was shown: what arrived since stays unread. The bound
    // is one of the user's own notifications.
    post_message(&app, &w.a_operator.token, &case, "m3").await;
    let none_of_theirs = uuid::Uuid::now_v7();
    let res = app
        .post(
            "/v1/notifications/read",
            &w.client.token,
            json!({"all": true, "up_to": none_of_theirs}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "not_found")["errors"][0]["pointer"],
        "/up_to"
    );
    let up_to = |ids: Value| json!({"ids": ids, "up_to": first});
    app.post(
        "/v1/notifications/read",
        &w.client.token,
        up_to(json!([first])),
    )
    .await
    .assert_problem(422, "not_allowed");
    let res = app
        .post(
            "/v1/notifications/read",
            &w.client.token,
            json!({"all": true, "up_to": first}),
        )
        .await;
    assert_eq!(res.assert_status(200)["updated"], 2);
    assert_eq!(res.body["unread"], 1);
    let unread = app
        .get("/v1/notifications?unread=true", &w.client.token)
        .await;
    assert_eq!(unread.assert_status(200)["items"][0]["body"], "m3");
    let res = app
        .post(
            "/v1/notifications/read",
            &w.client.token,
            json!({"all": true}),
        )
        .await;
    assert_eq!(res.assert_status(200)["updated"], 1);
    let count = app
        .get("/v1/notifications/unread-count", &w.client.token)
        .await;
    assert_eq!(count.body["count"], 0);
    let list = app.get("/v1/notifications", &w.client.token).await;
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["read"] == Value::Bool(true))
    );
}

/// Opens the stream over a real TCP connection and reads until `until` has arrived `times`
/// times (or 10 s pass); returns everything read.
fn read_stream(
    addr: std::net::SocketAddr,
    token: &str,
    last_event_id: Option<&str>,
    until: &'static str,
    times: usize,
) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    write!(
        tcp,
        "GET /v1/notifications/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n{resume}\r\n"
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < std::time::Duration::from_secs(10) {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if String::from_utf8_lossy(&seen).matches(until).count() >= times {
            break;
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// What the stream tests share: one-second heartbeats, the world, a case, and the app served
/// on a real TCP port (the stream is read over a socket).
struct Served<S> {
    app: crate::helpers::TestApp<S>,
    w: World,
    case: String,
    addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

async fn served() -> Served<impl AppService + use<>> {
    served_beating("1").await
}

/// As [`served`], with heartbeats every `seconds`.
async fn served_beating(seconds: &str) -> Served<impl AppService + use<>> {
    let app = crate::helpers::spawn_with(&[("DOSSIER_SSE_HEARTBEAT_SECONDS", seconds)]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = dossier::app::serve(app.state.clone(), listener, Some(1)).unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Served {
        app,
        w,
        case,
        addr,
        handle,
    }
}

#[actix_web::test]
async fn the_live_stream_pushes_beats_resumes_and_ends_with_access() {
    let Served {
        app,
        w,
        case,
        addr,
        handle,
    } = served().await;

    // Idle: a heartbeat comes.
    let token = w.client.token.clone();
    let beat = actix_web::web::block(move || read_stream(addr, &token, None, ": heartbeat", 1))
        .await
        .unwrap();
    assert!(beat.starts_with("HTTP/1.1 200"), "{beat}");
    assert!(
        beat.to_lowercase()
            .contains("content-type: text/event-stream")
    );
    assert!(beat.contains(": heartbeat"));

    // A message from the agency arrives on the client's open stream.
    let token = w.client.token.clone();
    let reader = actix_web::web::block(move || read_stream(addr, &token, None, "Status update", 1));
    actix_web::rt::time::sleep(std::time::Duration::from_millis(500)).await;
    post_message(&app, &w.a_operator.token, &case, "Status update").await;
    let got = reader.await.unwrap();
    assert!(got.contains("event: notification"), "{got}");
    assert!(got.contains("\"event\":\"message_received\""), "{got}");
    assert!(got.contains("Status update"));

    // Reconnecting with Last-Event-ID replays what came after it.
    post_message(&app, &w.a_operator.token, &case, "Missed one").await;
    let list = app.get("/v1/notifications", &w.client.token).await;
    let older = list.body["items"][1]["id"].as_str().unwrap().to_owned();
    let token = w.client.token.clone();
    let replay =
        actix_web::web::block(move || read_stream(addr, &token, Some(&older), "Missed one", 1))
            .await
            .unwrap();
    assert!(replay.contains("Missed one"), "{replay}");
    assert!(
        !replay.contains("Status update"),
        "only what came after the id"
    );
    // Another agency's stream, open while the client is notified, carries nothing of it; and
    // those commits, every 150 ms for 4.5 s, do not hold back its heartbeats (one a second).
    let token = w.b_operator.token.clone();
    let theirs = std::thread::spawn(move || read_stream(addr, &token, None, ": heartbeat", 2));
    for _ in 0..30 {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(150)).await;
        post_message(&app, &w.a_operator.token, &case, "Not for Garcia").await;
    }
    assert!(
        theirs.is_finished(),
        "no heartbeats while others' commits came"
    );
    let theirs = theirs.join().unwrap();
    assert!(theirs.matches(": heartbeat").count() >= 2, "{theirs}");
    assert!(!theirs.contains("event: notification"), "{theirs}");

    // The stream ends (the chunked body's last chunk) when the user is deactivated...
    const END: &str = "\r\n0\r\n\r\n";
    let token = w.client2.token.clone();
    let open = actix_web::web::block(move || read_stream(addr, &token, None, END, 1));
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    app.deactivate_user(&w.platform.token, &w.client2.id).await;
    let ended = open.await.unwrap();
    assert!(ended.starts_with("HTTP/1.1 200"), "{ended}");
    assert!(ended.ends_with(END), "{ended}");
    // ... when the user's sessions end (logged out everywhere, from another device) ...
    let token = w.b_operator.token.clone();
    let open = actix_web::web::block(move || read_stream(addr, &token, None, END, 1));
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let elsewhere = app.session("op@garcia.example").await;
    assert_eq!(app.logout(&elsewhere, true).await.status.as_u16(), 204);
    let ended = open.await.unwrap();
    assert!(ended.starts_with("HTTP/1.1 200"), "{ended}");
    assert!(ended.ends_with(END), "{ended}");
    // ... and when the token expires: this one has two seconds of its leeway left.
    let now = chrono::Utc::now().timestamp();
    let expiring = crate::auth::sign(
        &crate::auth::claims(json!({"sub": w.client.id, "exp": now - 28})),
        crate::helpers::SECRET,
    );
    let ended = actix_web::web::block(move || read_stream(addr, &expiring, None, END, 1))
        .await
        .unwrap();
    assert!(ended.starts_with("HTTP/1.1 200"), "{ended}");
    assert!(ended.ends_with(END), "{ended}");
    handle.stop(false).await;
}

/// A value of the server's Prometheus metrics.
async fn metric<S>(app: &crate::helpers::TestApp<S>, name: &str) -> f64
where
    S: AppService,
{
    let res = app
        .send(actix_web::test::TestRequest::get().uri("/metrics"))
        .await;
    let text = res.body.as_str().unwrap().to_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("dossier_{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no dossier_{name} in {text}"))
}

/// A stream reads the database when its own user is notified, or to beat: other users'
/// writes, however many, do not wake it (each open stream used to read at every commit).
#[actix_web::test]
async fn a_stream_wakes_for_its_own_user_only() {
    let Served {
        app,
        w,
        case,
        addr,
        handle,
    } = served().await;

    let token = w.b_operator.token.clone();
    let theirs = actix_web::web::block(move || read_stream(addr, &token, None, ": heartbeat", 2));
    while metric(&app, "live_streams").await < 1.0 {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = metric(&app, "live_stream_reads_total").await;
    let started = std::time::Instant::now();
    for i in 0..20 {
        post_message(&app, &w.a_operator.token, &case, &format!("Update {i}")).await;
    }
    let reads = metric(&app, "live_stream_reads_total").await - before;
    // A read per heartbeat (one a second) at most, and one spare; not one per write.
    let allowed = started.elapsed().as_secs_f64().ceil() + 1.0;
    assert!(
        reads <= allowed,
        "{reads} reads for 20 writes to someone else"
    );
    let theirs = theirs.await.unwrap();
    assert!(!theirs.contains("event: notification"), "{theirs}");

    // The client's own stream hears of the next one at once.
    let token = w.client.token.clone();
    let reader = actix_web::web::block(move || read_stream(addr, &token, None, "Just for you", 1));
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    post_message(&app, &w.a_operator.token, &case, "Just for you").await;
    let got = reader.await.unwrap();
    assert!(
        got.contains("event: notification") && got.contains("Just for you"),
        "{got}"
    );
    handle.stop(false).await;
}

/// On PostgreSQL a write that took its notification's id first can commit after a later one:
/// the stream still sends it, once (SQLite commits writes in the order of their ids).
#[actix_web::test]
async fn a_notification_committed_after_a_later_one_still_reaches_the_stream() {
    use diesel::connection::SimpleConnection;

    let Served {
        app,
        w,
        case,
        addr,
        handle,
    } = served().await;
    if !app._db.is_postgres() {
        return;
    }

    // A write in flight: its notification's id is taken, its commit still to come.
    let mut conn = app.state.pool.get().unwrap();
    conn.batch_execute(&format!(
        "BEGIN; INSERT INTO notifications (id, user_id, case_id, event, title, created_at) \
         VALUES ('{}', '{}', '{case}', 'message_received', 'Late but there', NOW())",
        uuid::Uuid::now_v7(),
        w.client.id
    ))
    .unwrap();
    let token = w.client.token.clone();
    let reader =
        actix_web::web::block(move || read_stream(addr, &token, None, "Late but there", 1));
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    post_message(&app, &w.a_operator.token, &case, "On time").await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    conn.batch_execute("COMMIT").unwrap();
    let got = reader.await.unwrap();
    assert_eq!(got.matches("On time").count(), 1, "{got}");
    assert_eq!(got.matches("Late but there").count(), 1, "{got}");
    handle.stop(false).await;
}

/// A notification that commits late, below the last id a client received, after its stream
/// ended, still reaches the stream the client resumes with `Last-Event-ID`.
#[actix_web::test]
async fn a_resumed_stream_sends_what_committed_late_below_its_last_id() {
    let Served {
        app,
        w,
        case,
        addr,
        handle,
    } = served().await;
    // The late write's id is taken first; the message's notification follows and is received.
    let late = uuid::Uuid::now_v7();
    post_message(&app, &w.a_operator.token, &case, "On time").await;
    let res = app.get("/v1/notifications?limit=1", &w.client.token).await;
    let last = res.assert_status(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The stream has ended (its token expired, say); then the late write commits.
    app.sql(&format!(
        "INSERT INTO notifications (id, user_id, case_id, event, title, created_at) \
         VALUES ('{late}', '{}', '{case}', 'message_received', 'Late but there', \
         '2026-12-05 10:00:00')",
        w.client.id
    ));
    let token = w.client.token.clone();
    let got =
        actix_web::web::block(move || read_stream(addr, &token, Some(&last), "Late but there", 1))
            .await
            .unwrap();
    assert_eq!(got.matches("Late but there").count(), 1, "{got}");
    assert_eq!(got.matches("On time").count(), 0, "{got}");
    handle.stop(false).await;
}

#[actix_web::test]
async fn a_user_holds_a_bounded_number_of_streams() {
    let app = crate::helpers::spawn_with(&[
        ("DOSSIER_MAX_STREAMS_PER_USER", "2"),
        ("DOSSIER_SSE_HEARTBEAT_SECONDS", "7"),
    ])
    .await;
    let w = World::new(&app).await;
    let open = || {
        actix_web::test::TestRequest::get()
            .uri("/v1/notifications/stream")
            .insert_header(("authorization", format!("Bearer {}", w.client.token)))
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .to_request()
    };
    // HEAD answers the stream's status and headers and holds no stream: three of them, kept,
    // leave both places free.
    let mut heads = Vec::new();
    for _ in 0..3 {
        let mut head = open();
        head.head_mut().method = actix_web::http::Method::HEAD;
        let res = actix_web::test::call_service(&app.service, head).await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        heads.push(res);
    }
    // Two streams, kept open (their bodies unread).
    let first = actix_web::test::call_service(&app.service, open()).await;
    let second = actix_web::test::call_service(&app.service, open()).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    // A third is refused, with when to retry; another user is not.
    let res = app.send_request(open()).await;
    res.assert_problem(429, "too_many_requests");
    assert_eq!(res.header("retry-after"), Some("7"));
    let other = actix_web::test::TestRequest::get()
        .uri("/v1/notifications/stream")
        .insert_header(("authorization", format!("Bearer {}", w.client2.token)))
        .peer_addr("127.0.0.1:40000".parse().unwrap())
        .to_request();
    let other = actix_web::test::call_service(&app.service, other).await;
    assert_eq!(other.status().as_u16(), 200);
    // One closes: there is room again.
    drop(first);
    let again = actix_web::test::call_service(&app.service, open()).await;
    assert_eq!(again.status().as_u16(), 200);
    drop((second, other, again, heads));
}

/// Several API nodes on one PostgreSQL (DESIGN.md "Data and scale"): a write relays the users it
/// notified on the `dossier_live` channel when it commits, and a node wakes its streams of the
/// users another node relayed. Heartbeats are 30 s apart: only the relay brings it at once.
#[actix_web::test]
async fn another_nodes_notification_reaches_the_stream_through_postgres() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection};

    let Served {
        app,
        w,
        case,
        addr,
        handle,
    } = served_beating("30").await;
    if !app._db.is_postgres() {
        return;
    }
    // This node's relay, and a connection listening as another node would.
    dossier::live::relay::spawn(app._db.url()).unwrap();
    let mut other_node = PgConnection::establish(app._db.url()).unwrap();
    other_node.batch_execute("LISTEN dossier_live").unwrap();
    let listening = "SELECT COUNT(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND query = 'LISTEN dossier_live'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.count(listening) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the relay does not listen"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Readiness and metrics tell it listens (once its LISTEN has been answered).
    let relay_state = || async {
        let ready = app
            .send(actix_web::test::TestRequest::get().uri("/health/ready"))
            .await;
        ready.assert_status(200)["live_relay"].clone()
    };
    while relay_state().await != "listening" {
        assert!(
            std::time::Instant::now() < deadline,
            "readiness does not tell it listens"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&app, r#"live_relay{state="listening"}"#).await, 1.0);

    // What this node's writes send, once committed: the users they notified.
    post_message(&app, &w.a_operator.token, &case, "Relayed").await;
    let started = std::time::Instant::now();
    let mut payloads = Vec::new();
    while started.elapsed() < std::time::Duration::from_secs(5)
        && !payloads.iter().any(|p: &String| p.contains(&w.client.id))
    {
        payloads.extend(other_node.notifications_iter().map(|n| n.unwrap().payload));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sent: Value = serde_json::from_str(
        payloads
            .iter()
            .find(|p| p.contains(&w.client.id))
            .unwrap_or_else(|| panic!("the client's wake was not relayed: {payloads:?}")),
    )
    .unwrap();
    assert_eq!(sent["users"], json!([w.client.id]));
    assert!(sent["node"].is_string());

    // What another node relays wakes this node's stream of that user.
    let token = w.client.token.clone();
    let reader =
        actix_web::web::block(move || read_stream(addr, &token, None, "From another node", 1));
    while metric(&app, "live_streams").await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream does not open"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The stream has read once; the other node's write commits, then relays.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    app.sql(&format!(
        "INSERT INTO notifications (id, user_id, case_id, event, title, created_at) \
         VALUES ('{}', '{}', '{case}', 'message_received', 'From another node', NOW()); \
         NOTIFY dossier_live, '{{\"node\": \"another\", \"users\": [\"{}\"]}}'",
        uuid::Uuid::now_v7(),
        w.client.id,
        w.client.id
    ));
    let relayed = std::time::Instant::now();
    let got = reader.await.unwrap();
    assert!(got.contains("From another node"), "{got}");
    assert!(
        relayed.elapsed() < std::time::Duration::from_secs(5),
        "not woken by the relay: {:?}",
        relayed.elapsed()
    );

    // Its connection cut, the relay reports it is reconnecting, then listens again.
    drop(other_node);
    app.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query = 'LISTEN dossier_live'",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for state in ["reconnecting", "listening"] {
        while relay_state().await != state {
            assert!(std::time::Instant::now() < deadline, "never {state}");
            actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    handle.stop(false).await;
}
