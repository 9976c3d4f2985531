//! Outbound webhooks: who subscribes, what is refused, and each event on a case or a support
//! ticket posted once per subscriber, signed, retried on failure until dead, listed under its
//! webhook.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{SECRETS_KEY, TestApp, spawn_with};
use crate::receiver::Receiver;
use crate::world::{World, act, buy, id, post_message};

/// Whether one of a `Dossier-Signature` header's `v1=` signs the body with the secret.
fn signed_by(header: &str, secret: &str, body: &str) -> bool {
    let mut parts = header.split(',');
    let Some(t) = parts.next().and_then(|p| p.strip_prefix("t=")) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    parts.any(|p| p.strip_prefix("v1=") == Some(expected.as_str()))
}

async fn round<S>(app: &TestApp<S>) -> usize {
    dossier::webhooks::deliver_due(&app.state).await.unwrap()
}

#[actix_web::test]
async fn case_events_are_posted_signed_and_retried_until_dead() {
    let app = spawn_with(&[
        ("DOSSIER_WEBHOOK_RETRY_BASE_MS", "1"),
        ("DOSSIER_WEBHOOK_MAX_ATTEMPTS", "3"),
    ])
    .await;
    let w = World::new(&app).await;
    let receiver = Receiver::start().await;
    let platform_receiver = Receiver::start().await;

    // Refused, nothing written.
    let before = app.rows_in(&["webhooks", "audit_log"]);
    for (body, code) in [
        (
            json!({"url": "ftp://crm.example/x", "events": ["status_changed"]}),
            "invalid_url",
        ),
        (
            json!({"url": "https://user:pw@crm.example/x", "events": ["status_changed"]}),
            "invalid_url",
        ),
        // 1 999 characters, three bytes each: past PostgreSQL's index entry (a 500 there).
        (
            json!({"url": format!("https://crm.example/{}", "界".repeat(1980)), "events": ["status_changed"]}),
            "invalid_url",
        ),
        (
            json!({"url": "not a url", "events": ["status_changed"]}),
            "invalid_url",
        ),
        (
            json!({"url": receiver.url, "events": ["assigned", "assigned"]}),
            "repeated",
        ),
    ] {
        let res = app.post("/v1/webhooks", &w.a_admin.token, body).await;
        res.assert_problem(422, code);
    }
    let res = app
        .post(
            "/v1/webhooks",
            &w.a_admin.token,
            json!({"url": receiver.url, "events": ["case_opened"]}),
        )
        .await;
    let problem = res.assert_problem(422, "validation_failed");
    assert_eq!(problem["errors"][0]["pointer"], "/events/0");
    for token in [
        &w.a_operator.token,
        &w.client.token,
        &w.platform_staff.token,
    ] {
        app.post(
            "/v1/webhooks",
            token,
            json!({"url": receiver.url, "events": ["status_changed"]}),
        )
        .await
        .assert_problem(403, "forbidden");
    }
    assert_eq!(app.rows_in(&["webhooks", "audit_log"]), before);

    let res = app
        .post(
            "/v1/webhooks",
            &w.a_admin.token,
            json!({"url": receiver.url, "events": ["status_changed", "message_received"]}),
        )
        .await;
    let hook = res.assert_status(201).clone();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 70,
        "{secret}"
    );
    assert_eq!(hook["agency_id"], w.agency_a.as_str());
    let deliveries = format!("/v1/webhooks/{}/deliveries", id(&hook));
    assert_eq!(
        res.header("location").unwrap(),
        format!("/v1/webhooks/{}", id(&hook))
    );
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let platform_hook = app
        .post(
            "/v1/webhooks",
            &w.platform.token,
            json!({"url": platform_receiver.url, "events": ["status_changed"]}),
        )
        .await
        .assert_status(201)
        .clone();
    assert_eq!(platform_hook["agency_id"], Value::Null);
    // Listed without the secret, to their owners only.
    let listed = app.get("/v1/webhooks", &w.a_admin.token).await;
    let items = listed.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 1);
    assert!(items[0].get("secret").is_none());
    let of_b = app.get("/v1/webhooks", &w.b_admin.token).await;
    assert_eq!(of_b.assert_status(200)["items"], json!([]));
    app.get(&deliveries, &w.b_admin.token)
        .await
        .assert_problem(404, "not_found");
    // Only admins read webhooks; `agency_id` is the platform's to use.
    for token in [&w.a_operator.token, &w.a_agent.token, &w.client.token] {
        app.get(&deliveries, token)
            .await
            .assert_problem(403, "forbidden");
        app.get("/v1/webhooks", token)
            .await
            .assert_problem(403, "forbidden");
    }
    let of_a = format!("/v1/webhooks?agency_id={}", w.agency_a);
    app.get(&of_a, &w.b_admin.token)
        .await
        .assert_problem(403, "forbidden");
    let seen = app.get(&of_a, &w.platform.token).await;
    assert_eq!(seen.assert_status(200)["items"][0]["id"], hook["id"]);

    // An event on agency A's case: one delivery to A's webhook and one to the platform's.
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    // Agency B's case reaches the platform's webhook only.
    let b_case = id(&buy(&app, &w.client.token, &w.service_b, "card").await);
    act(&app, &w.b_operator.token, &b_case, "accept")
        .await
        .assert_status(200);
    let page = app.get(&deliveries, &w.a_admin.token).await;
    let items = page.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "pending");
    assert_eq!(items[0]["case_id"], case.as_str());

    // The receiver fails once: the delivery waits for its retry.
    receiver.answer_with(&[500]);
    assert_eq!(round(&app).await, 3);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(request.path, "/hooks/dossier");
    assert_eq!(request.headers["dossier-event"], "status_changed");
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(
        signed_by(
            &request.headers["dossier-signature"],
            &secret,
            &request.body
        ),
        "{request:?}"
    );
    assert!(!signed_by(
        &request.headers["dossier-signature"],
        "whsec_other",
        &request.body
    ));
    let payload: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(payload["event"], "status_changed");
    assert_eq!(payload["case"]["id"], case.as_str());
    assert_eq!(payload["case"]["status"], "approved");
    assert_eq!(payload["id"], request.headers["dossier-delivery"].as_str());
    let delivery = &app.get(&deliveries, &w.a_admin.token).await.body["items"][0].clone();
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_status"], 500);
    let platform_got = platform_receiver.received();
    let cases: Vec<&str> = platform_got
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .map(|p| p["case"]["id"].as_str().unwrap().to_owned())
        .map(|id| {
            if id == case {
                "a"
            } else if id == b_case {
                "b"
            } else {
                "?"
            }
        })
        .collect();
    assert_eq!(cases.len(), 2);
    assert!(cases.contains(&"a") && cases.contains(&"b"), "{cases:?}");

    // The retry lands; the same delivery id comes again.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(round(&app).await, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].headers["dossier-delivery"],
        got[0].headers["dossier-delivery"]
    );
    let delivery = &app.get(&deliveries, &w.platform.token).await.body["items"][0].clone();
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["last_status"], 200);
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    assert!(delivery["delivered_at"].is_string());
    assert_eq!(round(&app).await, 0);

    // A message: its text stays out of the payload. The receiver keeps failing: dead after
    // the third attempt.
    post_message(
        &app,
        &w.client.token,
        &case,
        "The secret plan is in the garage.",
    )
    .await;
    receiver.answer_with(&[503, 503, 503, 503]);
    for _ in 0..3 {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(round(&app).await, 1);
    }
    actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(round(&app).await, 0);
    let got = receiver.received();
    assert_eq!(got.len(), 5);
    assert!(!got[4].body.contains("garage"), "{}", got[4].body);
    assert_eq!(got[4].headers["dossier-event"], "message_received");
    let delivery = &app.get(&deliveries, &w.a_admin.token).await.body["items"][0].clone();
    assert_eq!(delivery["event"], "message_received");
    assert_eq!(delivery["status"], "dead");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status"], 503);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'webhook' AND entity_id = '{}'",
            id(&hook)
        )),
        2
    );

    // A dead delivery is retried by hand: queued again with a fresh count, posted at once with
    // the same id. Nobody else's to retry; only a dead one, while the webhook is active.
    let dead = delivery["id"].as_str().unwrap().to_owned();
    let retry_of = |delivery: &str| format!("{deliveries}/{delivery}/retry");
    let retry = retry_of(&dead);
    let delivered = app.get(&deliveries, &w.a_admin.token).await.body["items"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let of_platform = app
        .get(
            &format!("/v1/webhooks/{}/deliveries", id(&platform_hook)),
            &w.platform.token,
        )
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Listed by state: the dead one alone, the delivered one alone.
    for (state, expected) in [("dead", &dead), ("delivered", &delivered)] {
        let page = app
            .get(&format!("{deliveries}?status={state}"), &w.a_admin.token)
            .await;
        let items = page.assert_status(200)["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1, "{state}: {items:?}");
        assert_eq!(
            (&items[0]["id"], &items[0]["status"]),
            (&json!(expected), &json!(state))
        );
    }
    // Both states at once (API.md: the parameter repeats), newest first.
    let both = app
        .get(
            &format!("{deliveries}?status=delivered&status=dead"),
            &w.a_admin.token,
        )
        .await;
    let listed: Vec<&Value> = both.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["id"])
        .collect();
    let mut expected = [json!(dead), json!(delivered)];
    expected.sort_by(|a, b| b.as_str().cmp(&a.as_str()));
    assert_eq!(listed, expected.iter().collect::<Vec<_>>());
    app.get(&format!("{deliveries}?status=lost"), &w.a_admin.token)
        .await
        .assert_problem(400, "invalid_query");
    let before = app.rows_in(&["webhook_deliveries", "audit_log"]);
    let still_dead = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE id = '{dead}' AND status = 'dead' \
             AND attempts = 3"
        ))
    };
    app.post(&retry, &w.b_admin.token, json!({}))
        .await
        .assert_problem(404, "not_found");
    for token in [
        &w.a_operator.token,
        &w.client.token,
        &w.platform_staff.token,
    ] {
        app.post(&retry, token, json!({}))
            .await
            .assert_problem(403, "forbidden");
    }
    for other in [&of_platform, "00000000-0000-7000-e400-000000000009"] {
        app.post(&retry_of(other), &w.a_admin.token, json!({}))
            .await
            .assert_problem(404, "not_found");
    }
    app.post(&retry_of(&delivered), &w.a_admin.token, json!({}))
        .await
        .assert_problem(409, "not_dead");
    assert_eq!(
        (
            app.rows_in(&["webhook_deliveries", "audit_log"]),
            still_dead()
        ),
        (before, 1)
    );
    let hook_path = format!("/v1/webhooks/{}", id(&hook));
    app.patch(&hook_path, &w.a_admin.token, json!({"active": false}))
        .await
        .assert_status(200);
    let before = app.rows_in(&["webhook_deliveries", "audit_log"]);
    app.post(&retry, &w.a_admin.token, json!({}))
        .await
        .assert_problem(409, "webhook_paused");
    // Not dead wins over paused: there is nothing to retry.
    app.post(&retry_of(&delivered), &w.a_admin.token, json!({}))
        .await
        .assert_problem(409, "not_dead");
    assert_eq!(
        (
            app.rows_in(&["webhook_deliveries", "audit_log"]),
            still_dead()
        ),
        (before, 1)
    );
    app.patch(&hook_path, &w.a_admin.token, json!({"active": true}))
        .await
        .assert_status(200);
    let res = app.post(&retry, &w.platform.token, json!({})).await;
    let queued = res.assert_status(200);
    assert_eq!(
        (&queued["status"], &queued["attempts"], &queued["id"]),
        (&json!("pending"), &json!(0), &json!(dead))
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'webhook_delivery' \
             AND entity_id = '{dead}' AND action = 'retry' AND field = 'status' \
             AND old_value = 'dead' AND new_value = 'pending' AND actor_id = '{}'",
            w.platform.id
        )),
        1
    );
    // The receiver's script has one 503 left: the fresh count lets the retry fail and come
    // again.
    assert_eq!(round(&app).await, 1);
    actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(round(&app).await, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 7);
    for again in &got[5..] {
        assert_eq!(again.headers["dossier-delivery"], dead.as_str());
        assert_eq!(again.body, got[4].body);
        assert!(signed_by(
            &again.headers["dossier-signature"],
            &secret,
            &again.body
        ));
    }
    let delivery = &app.get(&deliveries, &w.a_admin.token).await.body["items"][0].clone();
    assert_eq!(
        (
            &delivery["status"],
            &delivery["attempts"],
            &delivery["last_status"]
        ),
        (&json!("delivered"), &json!(2), &json!(200))
    );

    // Finished deliveries go after 30 days; pending ones stay whatever their age.
    let before = app.rows_in(&["webhook_deliveries"])[0];
    app.sql(&format!(
        "UPDATE webhook_deliveries SET next_attempt_at = '2026-01-01 00:00:00'; \
         UPDATE webhook_deliveries SET status = 'pending' WHERE webhook_id = '{}'",
        id(&platform_hook)
    ));
    dossier::housekeeping::sweep(&app.state).await.unwrap();
    assert_eq!(app.rows_in(&["webhook_deliveries"])[0], before - 2);
    let page = app.get(&deliveries, &w.a_admin.token).await;
    assert_eq!(page.assert_status(200)["items"], json!([]));
}

#[actix_web::test]
async fn production_takes_only_https_urls_of_public_hosts() {
    let secret = "a-production-secret-of-32-bytes!";
    let app = spawn_with(&[
        ("DOSSIER_ENV", "production"),
        ("DOSSIER_JWT_SECRET", secret),
    ])
    .await;
    let w = World::new(&app).await;
    for url in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://10.0.0.5/x",
        "https://100.64.1.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[::ffff:a00:5]/x",
        "https://[::7f00:1]/x",
        "https://[2002:a00:5::1]/x",
        "https://[2001:0:4136:e378::1]/x",
        "https://[fec0::1]/x",
        "https://[fe80::1]/x",
        "https://localhost./x",
        "https://api.localhost/x",
    ] {
        let res = app
            .post(
                "/v1/webhooks",
                &w.a_admin.token,
                json!({"url": url, "events": ["status_changed"]}),
            )
            .await;
        res.assert_problem(422, "invalid_url");
    }
    // Public addresses, IPv6 ones and a 6to4 one carrying a public IPv4 address included.
    for url in ["https://[2606:4700::1111]/x", "https://[2002:808:808::1]/x"] {
        let body = json!({"url": url, "events": ["status_changed"]});
        app.post("/v1/webhooks", &w.a_admin.token, body)
            .await
            .assert_status(201);
    }
    let url = "https://hooks.example.com/x";
    let body = json!({"url": url, "events": ["status_changed"]});
    app.post("/v1/webhooks", &w.a_admin.token, body.clone())
        .await
        .assert_status(201);
    // One webhook per URL.
    app.post("/v1/webhooks", &w.a_admin.token, body)
        .await
        .assert_problem(422, "duplicate_url");
    assert_eq!(app.rows_in(&["webhooks"]), [3]);
}

/// Its owner pauses, resumes and changes a webhook; pausing ends what is pending, and a
/// delivery written just before the pause committed is not posted either.
#[actix_web::test]
async fn a_webhook_is_paused_resumed_and_changed_by_its_owner() {
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let res = app
        .post(
            "/v1/webhooks",
            &w.a_admin.token,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["message_received"]}),
        )
        .await;
    let hook = id(res.assert_status(201));
    let path = format!("/v1/webhooks/{hook}");
    let deliveries = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{hook}'"
        ))
    };
    let pending = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{hook}' \
             AND status = 'pending'"
        ))
    };
    post_message(&app, &w.client.token, &case, "One").await;
    assert_eq!((deliveries(), pending()), (1, 1));

    // Nobody else's to change: another agency's admin, an operator, the client.
    let before = app.rows_in(&["webhooks", "webhook_deliveries", "audit_log"]);
    app.patch(&path, &w.b_admin.token, json!({"active": false}))
        .await
        .assert_problem(404, "not_found");
    for token in [&w.a_operator.token, &w.client.token] {
        app.patch(&path, token, json!({"active": false}))
            .await
            .assert_problem(403, "forbidden");
    }
    let res = app
        .patch(&path, &w.a_admin.token, json!({"events": ["case_opened"]}))
        .await;
    res.assert_problem(422, "validation_failed");
    app.patch(&path, &w.a_admin.token, json!({"paused": true}))
        .await
        .assert_problem(400, "unknown_field");
    assert_eq!(
        app.rows_in(&["webhooks", "webhook_deliveries", "audit_log"]),
        before
    );

    // Paused: what was pending ends dead, and nothing more is written for it.
    let res = app
        .patch(&path, &w.a_admin.token, json!({"active": false}))
        .await;
    assert_eq!(res.assert_status(200)["active"], false);
    assert_eq!((deliveries(), pending()), (1, 0));
    let page = app
        .get(&format!("{path}/deliveries"), &w.a_admin.token)
        .await;
    let ended = &page.assert_status(200)["items"][0];
    assert_eq!(
        (&ended["status"], &ended["last_error"]),
        (&json!("dead"), &json!("paused"))
    );
    post_message(&app, &w.client.token, &case, "Two").await;
    assert_eq!(deliveries(), 1);

    // Resumed by a platform admin (who may pause or resume any), it hears what follows.
    let res = app
        .patch(&path, &w.platform.token, json!({"active": true}))
        .await;
    assert_eq!(res.assert_status(200)["active"], true);
    post_message(&app, &w.client.token, &case, "Three").await;
    assert_eq!((deliveries(), pending()), (2, 1));

    // Other events from now on.
    let res = app
        .patch(
            &path,
            &w.a_admin.token,
            json!({"events": ["status_changed"]}),
        )
        .await;
    assert_eq!(res.assert_status(200)["events"], json!(["status_changed"]));
    post_message(&app, &w.client.token, &case, "Four").await;
    assert_eq!(deliveries(), 2);
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    assert_eq!(deliveries(), 3);
    let audited = |action: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'webhook' AND entity_id = '{hook}' \
             AND action = '{action}'"
        ))
    };
    assert_eq!(audited("update"), 3);

    // A delivery written by a write that read the webhook before its pause committed (here:
    // the pause written straight to the table) is not posted: the worker ends it as paused.
    app.sql(&format!(
        "UPDATE webhooks SET active = FALSE WHERE id = '{hook}'"
    ));
    assert_eq!(pending(), 2);
    assert_eq!(round(&app).await, 2);
    assert_eq!(pending(), 0);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{hook}' \
             AND status = 'dead' AND last_error = 'paused' AND last_status IS NULL"
        )),
        3
    );
}

#[actix_web::test]
async fn a_delivery_being_posted_when_its_webhook_is_paused_keeps_its_outcome() {
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let receiver = Receiver::start().await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let body = json!({"url": receiver.url, "events": ["message_received"]});
    let res = app.post("/v1/webhooks", &w.a_admin.token, body).await;
    let hook = id(res.assert_status(201));
    let path = format!("/v1/webhooks/{hook}");
    // The webhook is paused once the receiver has the post, before it answers.
    let posted_while_paused = || {
        let (app, receiver, token, path) = (&app, &receiver, &w.a_admin.token, &path);
        async move {
            let answers = receiver.hold_answers().await;
            let seen = receiver.received().len();
            let switch = async {
                while receiver.received().len() == seen {
                    actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                let res = app.patch(path, token, json!({"active": false})).await;
                res.assert_status(200);
                drop(answers);
            };
            // Bounded: a post that never reached the receiver fails the test, not hangs it.
            let both = futures_util::future::join(round(app), switch);
            let (posted, ()) = tokio::time::timeout(std::time::Duration::from_secs(20), both)
                .await
                .expect("the post reached the receiver");
            assert_eq!(posted, 1);
            let page = app.get(&format!("{path}/deliveries"), token).await;
            let last = page.assert_status(200)["items"][0].clone();
            let fields = ["status", "attempts", "last_status", "last_error"];
            fields.map(|f| last[f].clone())
        }
    };

    // It reached the receiver: delivered, not ended by the pause.
    post_message(&app, &w.client.token, &case, "One").await;
    assert_eq!(
        posted_while_paused().await,
        [json!("delivered"), json!(1), json!(200), Value::Null]
    );
    assert_eq!(receiver.received().len(), 1);
    // Refused by the receiver: the pause's end stands (no retry follows a pause).
    app.patch(&path, &w.a_admin.token, json!({"active": true}))
        .await
        .assert_status(200);
    post_message(&app, &w.client.token, &case, "Two").await;
    receiver.answer_with(&[503]);
    assert_eq!(
        posted_while_paused().await,
        [json!("dead"), json!(0), Value::Null, json!("paused")]
    );
}

#[actix_web::test]
async fn a_webhook_is_read_moved_rekeyed_and_deleted_by_its_owner() {
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let res = app
        .post(
            "/v1/webhooks",
            &w.a_admin.token,
            json!({"url": first.url, "events": ["message_received"]}),
        )
        .await;
    let created = res.assert_status(201).clone();
    assert_eq!(res.header("etag"), Some("\"1\""));
    let old_secret = created["secret"].as_str().unwrap().to_owned();
    let hook = id(&created);
    let path = format!("/v1/webhooks/{hook}");
    let written = || app.rows_in(&["webhooks", "webhook_deliveries", "audit_log"]);
    // The webhook exactly as it is, to show that a refused request changed nothing of it (its
    // secret as the app opens it: the column holds it sealed).
    let is = |url: &str, secret: &str, version: i64, live: bool| {
        let deleted = if live { "IS NULL" } else { "IS NOT NULL" };
        let stored = app.texts(&format!(
            "SELECT secret AS t FROM webhooks WHERE id = '{hook}' AND url = '{url}' \
             AND version = {version} AND active = {live} AND deleted_at {deleted}"
        ));
        let opened = |stored: &str| {
            let context = dossier::sealing::webhook_context(&hook);
            app.state.sealer.open(&context, stored).unwrap()
        };
        matches!(stored.as_slice(), [Some(s)] if opened(s) == secret)
    };
    assert!(is(&first.url, &old_secret, 1, true));
    let trigger = app
        .post(
            "/v1/triggers",
            &w.a_admin.token,
            json!({"name": "Forward", "event": "status_changed",
                   "actions": [{"type": "send_webhook", "webhook_id": hook}]}),
        )
        .await
        .assert_status(201)
        .clone();

    // Read by its owner and platform admins, without its secret; 304 when unchanged.
    let res = app.get(&path, &w.a_admin.token).await;
    let read = res.assert_status(200).clone();
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert_eq!(read["version"], 1);
    assert_eq!(read["url"], first.url.as_str());
    assert!(read.get("secret").is_none(), "{read}");
    app.get(&path, &w.platform.token).await.assert_status(200);
    let res = app
        .call(
            "GET",
            &path,
            &w.a_admin.token,
            None,
            &[("if-none-match", "\"1\"")],
        )
        .await;
    assert_eq!(res.status.as_u16(), 304);
    app.get(&path, &w.b_admin.token)
        .await
        .assert_problem(404, "not_found");
    for token in [
        &w.a_operator.token,
        &w.client.token,
        &w.platform_staff.token,
    ] {
        app.get(&path, token).await.assert_problem(403, "forbidden");
    }

    // Refused changes write nothing: a stale If-Match, a URL refused or taken, the wrong side.
    let other = app
        .post(
            "/v1/webhooks",
            &w.a_admin.token,
            json!({"url": "http://127.0.0.1:9/other", "events": ["survey_requested"]}),
        )
        .await;
    other.assert_status(201);
    let before = written();
    let rekey = json!({"url": second.url, "rotate_secret": true});
    let res = app
        .call(
            "PATCH",
            &path,
            &w.a_admin.token,
            Some(rekey.clone()),
            &[("if-match", "\"7\"")],
        )
        .await;
    res.assert_problem(412, "precondition_failed");
    // A bad body is refused as such, stale or not.
    app.call(
        "PATCH",
        &path,
        &w.a_admin.token,
        Some(json!({"url": "0"})),
        &[("if-match", "\"7\"")],
    )
    .await
    .assert_problem(422, "invalid_url");
    for (body, code) in [
        (json!({"url": "http://127.0.0.1:9/other"}), "duplicate_url"),
        (json!({"url": "ftp://crm.example/x"}), "invalid_url"),
        (json!({"url": ""}), "validation_failed"),
    ] {
        app.patch(&path, &w.a_admin.token, body)
            .await
            .assert_problem(422, code);
    }
    app.patch(&path, &w.b_admin.token, rekey.clone())
        .await
        .assert_problem(404, "not_found");
    for token in [
        &w.a_operator.token,
        &w.client.token,
        &w.platform_staff.token,
    ] {
        app.patch(&path, token, rekey.clone())
            .await
            .assert_problem(403, "forbidden");
    }
    assert_eq!(written(), before);
    assert!(is(&first.url, &old_secret, 1, true));
    // The version guards a change made meanwhile, and the database one URL per owner.
    {
        use dossier::repo::webhooks::{WebhookChanges, WebhookRow, insert, update};
        let mut conn = app.state.pool.get().unwrap();
        let pause = WebhookChanges {
            active: Some(false),
            ..WebhookChanges::default()
        };
        assert!(!update(&mut conn, &hook, 2, &pause).unwrap());
        let twin = WebhookRow {
            id: "00000000-0000-7000-e400-000000000002".into(),
            agency_id: Some(w.agency_a.clone()),
            url: first.url.clone(),
            secret: "whsec_twin".into(),
            events: "[]".into(),
            active: true,
            created_by: w.a_admin.id.clone(),
            created_at: chrono::Utc::now().naive_utc(),
            version: 1,
            deleted_at: None,
            old_secret: None,
            old_secret_expires_at: None,
        };
        assert!(matches!(
            insert(&mut conn, &twin),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        ));
    }
    assert!(is(&first.url, &old_secret, 1, true));

    // Moved and rekeyed: the new secret once, audited without it, signing what follows.
    let res = app
        .call(
            "PATCH",
            &path,
            &w.a_admin.token,
            Some(rekey),
            &[("if-match", "\"1\"")],
        )
        .await;
    let moved = res.assert_status(200).clone();
    assert_eq!(res.header("etag"), Some("\"2\""));
    let new_secret = moved["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret.len() == 70);
    assert_ne!(new_secret, old_secret);
    assert_eq!(
        (&moved["url"], &moved["version"]),
        (&json!(second.url), &json!(2))
    );
    assert!(
        app.get(&path, &w.a_admin.token)
            .await
            .assert_status(200)
            .get("secret")
            .is_none()
    );
    let audited = |field: &str, new: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'webhook' AND entity_id = '{hook}' \
             AND action = 'update' AND field = '{field}' AND new_value = '{new}'"
        ))
    };
    assert_eq!(
        (audited("url", &second.url), audited("secret", "rotated")),
        (1, 1)
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) AS n FROM audit_log WHERE new_value LIKE '%whsec_%' \
                   OR old_value LIKE '%whsec_%'"
        ),
        0
    );
    post_message(&app, &w.client.token, &case, "One").await;
    assert_eq!(round(&app).await, 1);
    let posted = second.received();
    assert_eq!((first.received().len(), posted.len()), (0, 1));
    let signature = &posted[0].headers["dossier-signature"];
    assert!(signed_by(signature, &new_secret, &posted[0].body));
    assert!(!signed_by(signature, &old_secret, &posted[0].body));

    // Deleted: gone from every answer, its pending delivery ended unposted, its URL free, and
    // the trigger that sends to it skips that action.
    post_message(&app, &w.client.token, &case, "Two").await;
    let status = |last_error: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{hook}' \
             AND status = 'dead' AND last_error = '{last_error}'"
        ))
    };
    let pending = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{hook}' \
             AND status = 'pending'"
        ))
    };
    let before = written();
    assert_eq!((status("deleted"), pending()), (0, 1));
    let res = app
        .call(
            "DELETE",
            &path,
            &w.a_admin.token,
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    res.assert_problem(412, "precondition_failed");
    app.call("DELETE", &path, &w.b_admin.token, None, &[])
        .await
        .assert_problem(404, "not_found");
    for token in [
        &w.a_operator.token,
        &w.client.token,
        &w.platform_staff.token,
    ] {
        app.call("DELETE", &path, token, None, &[])
            .await
            .assert_problem(403, "forbidden");
    }
    assert_eq!(written(), before);
    assert!(is(&second.url, &new_secret, 2, true));
    assert_eq!((status("deleted"), pending()), (0, 1));
    let res = app
        .call(
            "DELETE",
            &path,
            &w.a_admin.token,
            None,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(res.status.as_u16(), 204);
    assert!(is(&second.url, &new_secret, 3, false));
    assert_eq!((status("deleted"), pending()), (1, 0));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'webhook' AND entity_id = '{hook}' \
             AND action = 'delete' AND field = 'url' AND new_value IS NULL"
        )),
        1
    );
    for method in ["GET", "DELETE"] {
        app.call(method, &path, &w.a_admin.token, None, &[])
            .await
            .assert_problem(404, "not_found");
    }
    app.patch(&path, &w.platform.token, json!({"active": true}))
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("{path}/deliveries"), &w.a_admin.token)
        .await
        .assert_problem(404, "not_found");
    let listed = app.get("/v1/webhooks", &w.a_admin.token).await;
    let items = listed.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 1);
    assert_ne!(items[0]["id"], hook.as_str());
    let deliveries = app.count(&format!(
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{hook}'"
    ));
    post_message(&app, &w.client.token, &case, "Three").await;
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{hook}'"
        )),
        deliveries
    );
    let skipped = app.count(&format!(
        "SELECT COUNT(*) AS n FROM rule_log WHERE rule = 'trigger' AND case_id = '{case}' \
         AND outcome = 'nothing_to_do' AND detail LIKE '%{}%send_webhook: the webhook is gone%'",
        id(&trigger)
    ));
    assert_eq!(skipped, 1);

    // A delivery written by a write that read the webhook before its deletion committed (here:
    // written straight to the table) keeps its foreign key, and the worker ends it unposted.
    app.sql(&format!(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, case_id, payload, status, \
         attempts, next_attempt_at, created_at) VALUES ('00000000-0000-7000-e400-000000000001', \
         '{hook}', 'message_received', '{case}', '{{}}', 'pending', 0, '2026-01-01 00:00:00', \
         '2026-01-01 00:00:00')"
    ));
    assert_eq!(round(&app).await, 1);
    assert_eq!((second.received().len(), status("deleted")), (1, 2));

    // Its URL is free again.
    app.post(
        "/v1/webhooks",
        &w.a_admin.token,
        json!({"url": second.url, "events": ["message_received"]}),
    )
    .await
    .assert_status(201);

    // Swept with its deliveries once it has been deleted for an hour, not before.
    let kept = || {
        (
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM webhooks WHERE id = '{hook}'"
            )),
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{hook}'"
            )),
        )
    };
    dossier::housekeeping::sweep(&app.state).await.unwrap();
    assert_eq!(kept(), (1, 3));
    app.sql(&format!(
        "UPDATE webhooks SET deleted_at = '2026-01-01 00:00:00' WHERE id = '{hook}'"
    ));
    dossier::housekeeping::sweep(&app.state).await.unwrap();
    assert_eq!(kept(), (0, 0));
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM webhooks WHERE deleted_at IS NULL"),
        2
    );
}

/// The events of a receiver's deliveries, in the order written, with their payloads.
fn posted(receiver: &Receiver) -> Vec<(String, Value)> {
    let mut got: Vec<(String, Value)> = receiver
        .received()
        .iter()
        .map(|r| {
            let payload: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(
                r.headers["dossier-event"],
                payload["event"].as_str().unwrap()
            );
            (r.headers["dossier-event"].clone(), payload)
        })
        .collect();
    // Delivery ids are UUIDv7, in the order the deliveries were written.
    got.sort_by(|a, b| a.1["id"].as_str().cmp(&b.1["id"].as_str()));
    got
}

#[actix_web::test]
async fn ticket_events_reach_the_platforms_webhooks_and_the_requesting_agencys() {
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let each = json!({"first_response": 30, "decision": 60, "resolution": 300});
    app.post(
        "/v1/sla-policies",
        &w.platform.token,
        json!({"name": "Platform", "targets": {"low": each, "normal": each, "high": each, "urgent": each}}),
    )
    .await
    .assert_status(201);
    let ticket_events = json!([
        "ticket_opened",
        "ticket_message_received",
        "ticket_status_changed",
        "ticket_assigned",
        "ticket_sla_breached",
        "ticket_sla_warning",
        "ticket_updated"
    ]);
    let (platform, agency_a, agency_b) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let mut hooks = Vec::new();
    for (token, receiver) in [
        (&w.platform.token, &platform),
        (&w.a_admin.token, &agency_a),
        (&w.b_admin.token, &agency_b),
    ] {
        let body = json!({"url": receiver.url, "events": ticket_events});
        let res = app.post("/v1/webhooks", token, body).await;
        let hook = res.assert_status(201);
        assert_eq!(hook["events"], events_sorted(&ticket_events));
        hooks.push(format!("/v1/webhooks/{}", id(hook)));
    }

    // A client's ticket about agency A's case is the platform's business, not the agency's.
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let body = json!({"subject": "Refund", "description": "Private words.", "case_id": case});
    let res = app.post("/v1/tickets", &w.client.token, body).await;
    let client_ticket = res.assert_status(201).clone();
    let client_ticket = id(&client_ticket);
    // Agency A's own ticket reaches its webhook too.
    let body = json!({"subject": "Payout", "description": "Private words."});
    let res = app.post("/v1/tickets", &w.a_operator.token, body).await;
    let agency_ticket = id(res.assert_status(201));
    // Both first answers are overdue (as if half an hour went by), the client's first.
    for (ticket, minute) in [(&client_ticket, 0), (&agency_ticket, 1)] {
        app.sql(&format!(
            "UPDATE ticket_sla_clocks SET warn_at = '2026-01-01 09:0{minute}:00', \
             due_at = '2026-01-01 09:0{minute}:30' WHERE ticket_id = '{ticket}' \
             AND clock = 'first_response'; \
             UPDATE tickets SET sla_next_at = '2026-01-01 09:0{minute}:00' WHERE id = '{ticket}'"
        ));
    }
    let settled = dossier::sla::settle_due(&app.state).await.unwrap();
    assert_eq!((settled.done, settled.failed), (2, 0));
    let path = format!("/v1/tickets/{agency_ticket}");
    let messages = format!("{path}/messages");
    let transitions = format!("{path}/transitions");
    app.post(
        &messages,
        &w.platform_staff.token,
        json!({"body": "Secret answer."}),
    )
    .await
    .assert_status(201);
    // An edit that changes something is told by the names of what it changed; one that
    // changes nothing is not told.
    let edit =
        json!({"subject": "Payout late", "description": "Private words.", "priority": "high"});
    app.patch(&path, &w.platform_staff.token, edit.clone())
        .await
        .assert_status(200);
    app.patch(&path, &w.platform_staff.token, edit)
        .await
        .assert_status(200);
    // The requester's side edits too; a client's ticket is told to the platform only.
    let edit = json!({"description": "Private words, again."});
    app.patch(&path, &w.a_operator.token, edit)
        .await
        .assert_status(200);
    let edit = json!({"subject": "Refund please"});
    app.patch(
        &format!("/v1/tickets/{client_ticket}"),
        &w.client.token,
        edit,
    )
    .await
    .assert_status(200);
    app.post(
        &transitions,
        &w.platform_staff.token,
        json!({"action": "resolve", "resolution_type": "answered", "resolution": "Paid out."}),
    )
    .await
    .assert_status(200);
    app.post(
        &format!("/v1/tickets/{client_ticket}/assignment"),
        &w.platform_staff.token,
        json!({"action": "delegate", "user_id": w.platform.id}),
    )
    .await
    .assert_status(200);
    app.post(
        &transitions,
        &w.a_operator.token,
        json!({"action": "reactivate", "reason": "Not paid yet."}),
    )
    .await
    .assert_status(200);
    // The requester's answer to a ticket that waited on them opens it again.
    app.post(
        &transitions,
        &w.platform_staff.token,
        json!({"action": "wait_on_requester"}),
    )
    .await
    .assert_status(200);
    app.post(
        &messages,
        &w.a_operator.token,
        json!({"body": "Here it is."}),
    )
    .await
    .assert_status(201);
    // No delivery names a case of its own: the ticket's case is in its payload.
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE case_id IS NOT NULL"),
        0
    );
    let mut posted_in_all = 0;
    loop {
        match round(&app).await {
            0 => break,
            n => posted_in_all += n,
        }
    }
    assert_eq!(posted_in_all, 30);

    let got = posted(&platform);
    let (c, a) = (client_ticket.as_str(), agency_ticket.as_str());
    assert_eq!(
        tickets_told(&got),
        [
            ("ticket_opened", c),
            ("ticket_opened", a),
            ("ticket_sla_warning", c),
            ("ticket_sla_breached", c),
            ("ticket_sla_warning", a),
            ("ticket_sla_breached", a),
            ("ticket_message_received", a),
            ("ticket_status_changed", a),
            ("ticket_updated", a),
            ("ticket_updated", a),
            ("ticket_updated", c),
            ("ticket_status_changed", a),
            ("ticket_assigned", c),
            ("ticket_status_changed", c),
            ("ticket_status_changed", a),
            ("ticket_status_changed", a),
            ("ticket_message_received", a),
            ("ticket_status_changed", a),
        ]
    );
    let (_, opened) = &got[0];
    let number = app.get(&format!("/v1/tickets/{c}"), &w.client.token).await;
    let number = number.assert_status(200)["number"].clone();
    assert_eq!(
        opened["ticket"],
        json!({"id": c, "number": number, "agency_id": null, "case_id": case, "status": "new",
               "priority": "normal"})
    );
    assert!(opened.get("case").is_none());
    // Never a ticket's or a message's text; a move's reason or resolution, an SLA account.
    let detail = |i: usize| got[i].1["detail"].clone();
    assert!(detail(0).is_null());
    assert!(detail(2).is_string() && detail(3).is_string());
    assert!(detail(6).is_null());
    assert!(
        got.iter()
            .all(|(_, p)| !p.to_string().contains("Private words")
                && !p.to_string().contains("Payout")
                && !p.to_string().contains("Refund")
                && !p.to_string().contains("Secret answer"))
    );
    let status = |i: usize| got[i].1["ticket"]["status"].clone();
    // The platform's first answer opens the new ticket: the message, then the move.
    assert_eq!((status(6), status(7)), (json!("open"), json!("open")));
    assert!(detail(7).is_null());
    assert_eq!(detail(8), "subject, priority");
    assert_eq!(got[8].1["ticket"]["priority"], "high");
    assert_eq!(status(8), "open");
    assert_eq!(detail(9), "description");
    assert_eq!((detail(10), status(10)), (json!("subject"), json!("new")));
    assert_eq!(status(11), "resolved");
    assert_eq!(got[11].1["ticket"]["agency_id"], w.agency_a.as_str());
    assert_eq!(detail(11), "Paid out.");
    // A delegation opens a new ticket: the assignment, then the move.
    assert_eq!((status(12), status(13)), (json!("open"), json!("open")));
    assert!(detail(13).is_null());
    assert_eq!(status(14), "open");
    assert_eq!(detail(14), "Not paid yet.");
    assert_eq!(status(15), "waiting_on_requester");
    assert_eq!((status(16), status(17)), (json!("open"), json!("open")));
    assert!(detail(17).is_null());

    let got = posted(&agency_a);
    assert_eq!(
        tickets_told(&got),
        [
            ("ticket_opened", a),
            ("ticket_sla_warning", a),
            ("ticket_sla_breached", a),
            ("ticket_message_received", a),
            ("ticket_status_changed", a),
            ("ticket_updated", a),
            ("ticket_updated", a),
            ("ticket_status_changed", a),
            ("ticket_status_changed", a),
            ("ticket_status_changed", a),
            ("ticket_message_received", a),
            ("ticket_status_changed", a),
        ]
    );
    assert!(agency_b.received().is_empty(), "another agency's tickets");

    // The platform's delivered deliveries, paged by state: newest first, every one once, and
    // each next page's link keeps the filter.
    let listed = format!("{}/deliveries", hooks[0]);
    let mut next = Some(format!("{listed}?status=delivered&limit=4"));
    let mut paged: Vec<String> = Vec::new();
    while let Some(url) = next.take() {
        let page = app.get(&url, &w.platform.token).await;
        let body = page.assert_status(200).clone();
        for item in body["items"].as_array().unwrap() {
            assert_eq!(item["status"], "delivered");
            paged.push(id(item));
        }
        if let Some(cursor) = body["next_cursor"].as_str() {
            let link = page.header("link").unwrap();
            assert!(link.contains("status=delivered"), "{link}");
            next = Some(format!("{listed}?status=delivered&limit=4&cursor={cursor}"));
        }
    }
    let mut newest_first: Vec<String> = posted(&platform).iter().map(|(_, p)| id(p)).collect();
    newest_first.reverse();
    assert_eq!(paged, newest_first);
    let pending = app
        .get(&format!("{listed}?status=pending"), &w.platform.token)
        .await;
    assert_eq!(pending.assert_status(200)["items"], json!([]));

    // A paused and a deleted webhook hear of nothing more.
    app.patch(&hooks[0], &w.platform.token, json!({"active": false}))
        .await
        .assert_status(200);
    let res = app
        .call("DELETE", &hooks[1], &w.a_admin.token, None, &[])
        .await;
    assert_eq!(res.status.as_u16(), 204);
    let before = app.rows_in(&["webhook_deliveries"]);
    app.post(&messages, &w.a_operator.token, json!({"body": "Any news?"}))
        .await
        .assert_status(201);
    assert_eq!(app.rows_in(&["webhook_deliveries"]), before);
}

/// Each delivery's event and the ticket it names.
fn tickets_told(got: &[(String, Value)]) -> Vec<(&str, &str)> {
    got.iter()
        .map(|(event, p)| (event.as_str(), p["ticket"]["id"].as_str().unwrap()))
        .collect()
}

/// A creation's `events` as the answer gives them: sorted.
fn events_sorted(events: &Value) -> Value {
    let mut list: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    list.sort_unstable();
    json!(list)
}

/// A creation whose answer was lost is retried under its `Idempotency-Key` for the secret: the
/// first answer comes back, secret and all, never cached, and nothing is written twice.
#[actix_web::test]
async fn a_retried_creation_replays_the_secret_and_writes_nothing() {
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let receiver = Receiver::start().await;
    let body = json!({"url": receiver.url, "events": ["message_received"]});
    let create = |body: Value| {
        let app = &app;
        let token = w.a_admin.token.clone();
        async move {
            app.call(
                "POST",
                "/v1/webhooks",
                &token,
                Some(body),
                &[("idempotency-key", "hook-1")],
            )
            .await
        }
    };
    let first = create(body.clone()).await;
    let secret = first.assert_status(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(first.header("cache-control"), Some("no-store"));
    let written = || app.rows_in(&["webhooks", "audit_log", "idempotency_keys"]);
    let after = written();
    let again = create(body.clone()).await;
    assert_eq!(again.assert_status(201)["secret"], secret.as_str());
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("cache-control"), Some("no-store"));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), Some("\"1\""));
    assert_eq!(written(), after);
    let other = json!({"url": receiver.url, "events": ["status_changed"]});
    create(other)
        .await
        .assert_problem(422, "idempotency_key_reused");
    // Without the key, the same body is a second creation: refused for its URL.
    app.post("/v1/webhooks", &w.a_admin.token, body.clone())
        .await
        .assert_problem(422, "duplicate_url");
    assert_eq!(written(), after);
    // Another agency's admin under the same key makes their own webhook, with its own secret;
    // an operator is refused before any key is looked at.
    let key = [("idempotency-key", "hook-1")];
    let theirs = app
        .call(
            "POST",
            "/v1/webhooks",
            &w.b_admin.token,
            Some(body.clone()),
            &key,
        )
        .await;
    assert_ne!(theirs.assert_status(201)["secret"], secret.as_str());
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_eq!(theirs.body["agency_id"], w.agency_b.as_str());
    app.call(
        "POST",
        "/v1/webhooks",
        &w.a_operator.token,
        Some(body),
        &key,
    )
    .await
    .assert_problem(403, "forbidden");
}

/// A rotation may keep the old secret signing beside the new one for a while: each delivery
/// then carries both signatures, the new one first, until the old one expires; the sweep
/// forgets it then (another webhook's kept one stays). A rotation without hours, or another
/// rotation, keeps no older secret.
#[actix_web::test]
async fn a_rotation_keeps_the_old_secret_signing_for_the_hours_asked() {
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let (receiver, bystander) = (Receiver::start().await, Receiver::start().await);
    let token = w.a_admin.token.as_str();
    let create = |url: &str| {
        let body = json!({"url": url, "events": ["message_received"]});
        let app = &app;
        async move { app.post("/v1/webhooks", token, body).await }
    };
    let created = create(&receiver.url).await;
    let first_secret = created.assert_status(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(created.body["old_secret_expires_at"].is_null());
    let hook = id(&created.body);
    let path = format!("/v1/webhooks/{hook}");
    let rotate_at = |path: String, keep: Option<i64>| {
        let mut body = json!({"rotate_secret": true});
        if let Some(hours) = keep {
            body["keep_old_secret_hours"] = json!(hours);
        }
        let app = &app;
        async move { app.call("PATCH", &path, token, Some(body), &[]).await }
    };
    let rotate = |keep: Option<i64>| rotate_at(path.clone(), keep);
    let written = || app.rows_in(&["webhooks", "audit_log"]);

    // Refused, before a stale `If-Match`: hours without a rotation, or out of range.
    let before = written();
    let refusals = [
        (json!({"keep_old_secret_hours": 24}), "not_allowed"),
        (
            json!({"rotate_secret": false, "keep_old_secret_hours": 24}),
            "not_allowed",
        ),
        (
            json!({"rotate_secret": true, "keep_old_secret_hours": 0}),
            "validation_failed",
        ),
        (
            json!({"rotate_secret": true, "keep_old_secret_hours": 169}),
            "validation_failed",
        ),
    ];
    for (body, code) in refusals {
        let stale = [("if-match", "\"9\"")];
        let res = app
            .call("PATCH", &path, token, Some(body.clone()), &stale)
            .await;
        let problem = res.assert_problem(422, code);
        assert_eq!(
            problem["errors"][0]["pointer"], "/keep_old_secret_hours",
            "{body}"
        );
    }
    assert_eq!(written(), before);
    assert_eq!(app.get(&path, token).await.assert_status(200)["version"], 1);

    let rotated = rotate(Some(24)).await;
    let second_secret = rotated.assert_status(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let until = rotated.body["old_secret_expires_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let minutes = (until.parse::<chrono::DateTime<chrono::Utc>>().unwrap() - chrono::Utc::now())
        .num_minutes();
    assert!((23 * 60..=24 * 60).contains(&minutes), "{until}");
    let read = app.get(&path, token).await;
    assert_eq!(
        read.assert_status(200)["old_secret_expires_at"],
        until.as_str()
    );
    let audited = |old: &str, new: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{hook}' AND action = 'update' \
             AND field = 'old_secret_expires_at' AND COALESCE(old_value, '-') = '{old}' \
             AND COALESCE(new_value, '-') = '{new}'"
        ))
    };
    assert_eq!(audited("-", &until), 1, "the audit keeps the answer's text");

    // Both sign, the new secret first.
    let last_signed = |n: usize| {
        let got = receiver.received();
        assert_eq!(got.len(), n);
        let header = got[n - 1].headers["dossier-signature"].clone();
        let v1: Vec<String> = header.split(',').skip(1).map(str::to_owned).collect();
        let t = header.split(',').next().unwrap().to_owned();
        let one = move |i: usize| format!("{t},{}", v1[i]);
        (header, got[n - 1].body.clone(), one)
    };
    post_message(&app, &w.client.token, &case, "One").await;
    assert_eq!(round(&app).await, 1);
    let (header, body, one) = last_signed(1);
    assert_eq!(header.matches(",v1=").count(), 2, "{header}");
    assert!(signed_by(&one(0), &second_secret, &body));
    assert!(signed_by(&one(1), &first_secret, &body));

    // Another webhook's old secret, still kept, outlives this one's sweep.
    let other = id(create(&bystander.url).await.assert_status(201));
    rotate_at(format!("/v1/webhooks/{other}"), Some(24))
        .await
        .assert_status(200);

    // Once it expires it signs no more; the sweep forgets the secret itself, once. What the
    // webhook shows stays as it was: no new version.
    app.sql(&format!(
        "UPDATE webhooks SET old_secret_expires_at = '2000-01-01 00:00:00' WHERE id = '{hook}'"
    ));
    post_message(&app, &w.client.token, &case, "Two").await;
    assert_eq!(round(&app).await, 2, "ours and the bystander's");
    let (header, body, _) = last_signed(2);
    assert_eq!(header.matches(",v1=").count(), 1, "{header}");
    assert!(signed_by(&header, &second_secret, &body));
    assert!(!signed_by(&header, &first_secret, &body));
    let read = app.get(&path, token).await;
    assert_eq!(read.body["old_secret_expires_at"], "2000-01-01T00:00:00Z");
    assert_eq!(read.body["version"], 2);
    assert_eq!(dossier::housekeeping::sweep(&app.state).await.unwrap(), 1);
    assert_eq!(dossier::housekeeping::sweep(&app.state).await.unwrap(), 0);
    let read = app.get(&path, token).await;
    assert_eq!(read.body["old_secret_expires_at"], "2000-01-01T00:00:00Z");
    assert_eq!(read.body["version"], 2);
    let kept = |id: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhooks WHERE id = '{id}' AND old_secret IS NOT NULL"
        ))
    };
    assert_eq!((kept(&hook), kept(&other)), (0, 1));

    // A rotation keeps only the secret it replaces.
    let third_secret = rotate(Some(1)).await.assert_status(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let fourth = rotate(Some(2)).await;
    let fourth_secret = fourth.assert_status(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    post_message(&app, &w.client.token, &case, "Three").await;
    assert_eq!(round(&app).await, 2);
    let (header, body, one) = last_signed(3);
    assert_eq!(header.matches(",v1=").count(), 2, "{header}");
    assert!(signed_by(&one(0), &fourth_secret, &body));
    assert!(signed_by(&one(1), &third_secret, &body));
    assert!(!signed_by(&header, &second_secret, &body));

    // One without hours keeps none, and says so in the audit.
    let until = fourth.body["old_secret_expires_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let fifth = rotate(None).await;
    let fifth_secret = fifth.assert_status(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fifth.body["old_secret_expires_at"].is_null());
    assert_eq!(audited(&until, "-"), 1);
    assert_eq!(kept(&hook), 0);
    post_message(&app, &w.client.token, &case, "Four").await;
    assert_eq!(round(&app).await, 2);
    let (header, body, _) = last_signed(4);
    assert_eq!(header.matches(",v1=").count(), 1, "{header}");
    assert!(signed_by(&header, &fifth_secret, &body));
}

/// Webhook secrets and the stored answers of keyed creations are sealed in the database, each
/// bound to its row: a secret copied into another webhook's row signs nothing. A restart with
/// a new key, the old one kept to open, seals the secrets again without changing the webhook;
/// deliveries and replays go on. A start with no key that opens them stops; a development start
/// without a key but with the old one stores them in the clear again.
#[actix_web::test]
async fn secrets_are_sealed_at_rest_and_sealed_again_under_a_new_key() {
    const NEW_KEY: &str = "giSW2K8ngX5UwS+CUhBVoK9B4ME8uYFOWNSJeFAF8fA=";
    const STRANGER: &str = "jUjNxkiymA96DPktZzCvAvJIfSt2J2nMNb1XX+0pKzc=";
    let key_id = |key: &str| dossier::sealing::SecretsKey::from_base64(key).unwrap().id();
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let (receiver, other_receiver) = (Receiver::start().await, Receiver::start().await);
    let token = w.a_admin.token.as_str();
    let keyed = [("idempotency-key", "sealed-hook")];
    let body = json!({"url": receiver.url, "events": ["message_received"]});
    let created = app
        .call("POST", "/v1/webhooks", token, Some(body.clone()), &keyed)
        .await;
    let first = created.assert_status(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let hook = id(&created.body);
    let path = format!("/v1/webhooks/{hook}");
    let rotation = json!({"rotate_secret": true, "keep_old_secret_hours": 24});
    let rotated = app.call("PATCH", &path, token, Some(rotation), &[]).await;
    let second = rotated.assert_status(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored_answer = || {
        app.texts("SELECT body AS t FROM idempotency_keys")
            .into_iter()
            .map(Option::unwrap)
            .collect::<Vec<_>>()
    };
    let sealed_with = |key: &str, values: &[String]| {
        let prefix = format!("sealed:v1:{}:", key_id(key));
        values
            .iter()
            .all(|v| v.starts_with(&prefix) && !v.contains("whsec_"))
    };
    // The `n`th delivery the receiver got carries both secrets' signatures.
    let signed_by_both = |n: usize| {
        let got = receiver.received();
        let header = &got[n].headers["dossier-signature"];
        assert!(signed_by(header, &second, &got[n].body), "{header}");
        assert!(signed_by(header, &first, &got[n].body), "{header}");
    };
    let at_first = stored_secrets(&app, &hook);
    assert!(sealed_with(SECRETS_KEY, &at_first), "{at_first:?}");
    assert!(sealed_with(SECRETS_KEY, &stored_answer()));
    // The replay opens the stored answer: the first secret again.
    let again = app
        .call("POST", "/v1/webhooks", token, Some(body.clone()), &keyed)
        .await;
    assert_eq!(again.assert_status(201)["secret"], first.as_str());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    // Another webhook given this one's sealed secret signs nothing with it, and another
    // stored answer given this one's does not replay it.
    let other_body = json!({"url": other_receiver.url, "events": ["message_received"]});
    let other_key = [("idempotency-key", "other-hook")];
    let other = app
        .call(
            "POST",
            "/v1/webhooks",
            token,
            Some(other_body.clone()),
            &other_key,
        )
        .await;
    let other = id(other.assert_status(201));
    let (mine, theirs) = (&w.a_admin.id, &w.b_admin.id);
    let answer_of = |user: &str, key: &str| {
        format!("(SELECT body FROM idempotency_keys WHERE user_id = '{user}' AND key = '{key}')")
    };
    app.sql(&format!(
        "UPDATE idempotency_keys SET body = {} WHERE key = 'other-hook'",
        answer_of(mine, "sealed-hook")
    ));
    app.call("POST", "/v1/webhooks", token, Some(other_body), &other_key)
        .await
        .assert_problem(500, "internal_error");
    // Nor does another user's, under the same key.
    let b_token = w.b_admin.token.as_str();
    app.call("POST", "/v1/webhooks", b_token, Some(body.clone()), &keyed)
        .await
        .assert_status(201);
    app.sql(&format!(
        "UPDATE idempotency_keys SET body = {} WHERE user_id = '{theirs}'",
        answer_of(mine, "sealed-hook")
    ));
    app.call("POST", "/v1/webhooks", b_token, Some(body.clone()), &keyed)
        .await
        .assert_problem(500, "internal_error");
    app.sql(&format!(
        "UPDATE webhooks SET secret = '{}' WHERE id = '{other}'",
        at_first[0]
    ));
    post_message(&app, &w.client.token, &case, "One").await;
    assert_eq!(round(&app).await, 2);
    assert_eq!(receiver.received().len(), 1);
    assert!(other_receiver.received().is_empty());
    let tried = app
        .get(&format!("/v1/webhooks/{other}/deliveries"), token)
        .await;
    assert_eq!(
        tried.assert_status(200)["items"][0]["last_error"],
        "the webhook's secret cannot be read; nothing was sent"
    );
    // Nor does a start: it opens every secret, and stops at one that does not open.
    let Err(stopped) = app.restarted_with(&[]).await else {
        panic!("started with a secret moved to another row");
    };
    assert!(stopped.contains("does not open"), "{stopped}");
    assert!(
        stopped.contains(&format!("webhook {other}, secret")),
        "{stopped}"
    );
    app.sql(&format!(
        "DELETE FROM webhook_deliveries WHERE webhook_id = '{other}'; \
         DELETE FROM webhooks WHERE id = '{other}'; \
         DELETE FROM idempotency_keys WHERE key = 'other-hook' OR user_id = '{theirs}'"
    ));

    // A new key, the old one kept to open: the secrets are sealed again, the webhook unchanged.
    let audited = app.rows_in(&["audit_log"]);
    let rotated = [
        ("DOSSIER_SECRETS_KEY", NEW_KEY),
        ("DOSSIER_SECRETS_OLD_KEYS", SECRETS_KEY),
    ];
    let renewed = app.restarted_with(&rotated).await.unwrap();
    let resealed = stored_secrets(&renewed, &hook);
    assert!(sealed_with(NEW_KEY, &resealed), "{resealed:?}");
    assert_eq!(
        renewed.get(&path, token).await.assert_status(200)["version"],
        2
    );
    assert_eq!(renewed.rows_in(&["audit_log"]), audited);
    // Stored answers keep their key (they live a day); the old key still opens them.
    assert!(sealed_with(SECRETS_KEY, &stored_answer()));
    let replayed = renewed
        .call("POST", "/v1/webhooks", token, Some(body.clone()), &keyed)
        .await;
    assert_eq!(replayed.assert_status(201)["secret"], first.as_str());
    post_message(&renewed, &w.client.token, &case, "Two").await;
    assert_eq!(round(&renewed).await, 1);
    signed_by_both(1);
    // A second start under the same keys changes nothing.
    drop(renewed);
    let same = app.restarted_with(&rotated).await.unwrap();
    assert_eq!(stored_secrets(&same, &hook), resealed);
    drop(same);

    // No key that opens them, or none at all: the start stops, naming the key they need.
    for keys in [
        [
            ("DOSSIER_SECRETS_KEY", STRANGER),
            ("DOSSIER_SECRETS_OLD_KEYS", SECRETS_KEY),
        ],
        [
            ("DOSSIER_SECRETS_KEY", ""),
            ("DOSSIER_SECRETS_OLD_KEYS", ""),
        ],
    ] {
        let Err(stopped) = app.restarted_with(&keys).await else {
            panic!("started with {keys:?}");
        };
        assert!(stopped.contains(&key_id(NEW_KEY)), "{stopped}");
        assert!(!stopped.contains(NEW_KEY), "{stopped}");
    }
    assert_eq!(stored_secrets(&app, &hook), resealed);
    // Development without a key, the last one kept to open: stored in the clear again.
    let clear = app
        .restarted_with(&[
            ("DOSSIER_SECRETS_KEY", ""),
            ("DOSSIER_SECRETS_OLD_KEYS", NEW_KEY),
        ])
        .await
        .unwrap();
    assert_eq!(
        stored_secrets(&clear, &hook),
        [second.clone(), first.clone()]
    );
    drop(clear);
    // Stored in the clear (as before this version): the next start with a key seals them, and
    // they sign as before.
    let sealed_again = app.restarted_with(&[]).await.unwrap();
    assert!(sealed_with(
        SECRETS_KEY,
        &stored_secrets(&sealed_again, &hook)
    ));
    post_message(&sealed_again, &w.client.token, &case, "Three").await;
    assert_eq!(round(&sealed_again).await, 1);
    signed_by_both(2);
    drop(sealed_again);
    // An old secret that expired is forgotten by the start, as by the hourly sweep; the
    // webhook shows what it showed.
    app.sql(&format!(
        "UPDATE webhooks SET old_secret_expires_at = '2000-01-01 00:00:00' WHERE id = '{hook}'"
    ));
    let swept = app.restarted_with(&[]).await.unwrap();
    let old = swept.texts(&format!(
        "SELECT old_secret AS t FROM webhooks WHERE id = '{hook}'"
    ));
    assert_eq!(old, [None]);
    let shown = swept.get(&path, token).await;
    assert_eq!(shown.assert_status(200)["version"], 2);
    assert_eq!(shown.body["old_secret_expires_at"], "2000-01-01T00:00:00Z");
}

/// A webhook's current and old secrets as the database holds them.
fn stored_secrets<S>(app: &TestApp<S>, hook: &str) -> Vec<String> {
    ["secret", "old_secret"]
        .iter()
        .flat_map(|column| {
            app.texts(&format!(
                "SELECT {column} AS t FROM webhooks WHERE id = '{hook}'"
            ))
        })
        .map(Option::unwrap)
        .collect()
}

/// An owner holds at most 20 webhooks, each owner its own count, and a deleted one frees its
/// place; a refused creation writes nothing. A creation racing another for the last place
/// (held here, uncommitted, under the owner's lock as a concurrent creation holds it) waits
/// for it and is refused.
#[actix_web::test]
async fn an_owner_holds_at_most_twenty_webhooks() {
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let hook = |i: usize| json!({"url": format!("http://127.0.0.1:9/hook/{i}"), "events": ["message_received"]});
    let mut first = None;
    for i in 0..19 {
        let res = app.post("/v1/webhooks", &w.a_admin.token, hook(i)).await;
        let created = id(res.assert_status(201));
        first.get_or_insert(created);
    }
    let first = first.unwrap();
    let racing = app.under_lock(
        &format!("webhooks:{}", w.agency_a),
        &format!(
            "INSERT INTO webhooks (id, agency_id, url, secret, events, active, created_by, \
             created_at, version) SELECT '{}', agency_id, 'http://127.0.0.1:9/racing', secret, \
             events, active, created_by, created_at, 1 FROM webhooks WHERE id = '{first}'",
            uuid::Uuid::now_v7()
        ),
    );
    let create = app.post("/v1/webhooks", &w.a_admin.token, hook(19));
    let res = app.while_held(&racing, create).await;
    res.assert_problem(422, "too_many_webhooks");
    let before = app.rows_in(&["webhooks", "audit_log"]);
    let res = app.post("/v1/webhooks", &w.a_admin.token, hook(20)).await;
    assert_eq!(
        res.assert_problem(422, "too_many_webhooks")["errors"][0]["pointer"],
        "/url"
    );
    assert_eq!(app.rows_in(&["webhooks", "audit_log"]), before);
    for other in [&w.b_admin, &w.platform] {
        let res = app.post("/v1/webhooks", &other.token, hook(20)).await;
        res.assert_status(201);
    }
    let first = format!("/v1/webhooks/{first}");
    let res = app
        .call("DELETE", &first, &w.a_admin.token, None, &[])
        .await;
    res.assert_status(204);
    let res = app.post("/v1/webhooks", &w.a_admin.token, hook(20)).await;
    res.assert_status(201);
}
