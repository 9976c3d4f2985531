use actix_web::test::TestRequest;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::{AppService, PASSWORD, SECRET, TestApp, spawn};
use crate::world::{World, buy, id, post_message};

#[actix_web::test]
async fn login_issues_tokens_that_open_me() {
    let app = spawn().await;
    app.create_user("Ana@Example.com", "client", None, false);
    let res = app.login("ana@EXAMPLE.com", PASSWORD).await;
    let body = res.assert_status(200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let token = body["access_token"].as_str().unwrap();
    let me = app.get("/v1/me", token).await;
    let me = me.assert_status(200);
    assert_eq!(me["email"], "ana@example.com");
    assert_eq!(me["role"], "client");
    assert_eq!(me["agency_id"], serde_json::Value::Null);
}

/// The claims part of an access token, unverified.
fn payload(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[actix_web::test]
async fn an_access_token_names_its_user_role_agency_and_admin_right() {
    let app = spawn().await;
    let w = World::new(&app).await;
    // The world's tokens come from logins.
    let (admin, agent, client) = (
        payload(&w.a_admin.token),
        payload(&w.a_agent.token),
        payload(&w.client.token),
    );
    let seen = |c: &serde_json::Value| {
        let agency = c.get("agency_id").cloned();
        (
            c["sub"].clone(),
            c["role"].clone(),
            agency,
            c["admin"].clone(),
        )
    };
    assert_eq!(
        seen(&admin),
        (
            json!(w.a_admin.id),
            json!("agency"),
            Some(json!(w.agency_a)),
            json!(true)
        )
    );
    assert_eq!(
        seen(&agent),
        (
            json!(w.a_agent.id),
            json!("agent"),
            Some(json!(w.agency_a)),
            json!(false)
        )
    );
    assert_eq!(
        seen(&client),
        (json!(w.client.id), json!("client"), None, json!(false))
    );
    for claims in [admin, agent, client] {
        for required in ["iss", "aud", "exp", "iat", "nbf", "jti"] {
            assert!(claims.get(required).is_some(), "{required} in {claims}");
        }
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lifetime, 900);
    }
}

#[actix_web::test]
async fn wrong_password_unknown_email_and_inactive_user_answer_alike() {
    let app = spawn().await;
    let admin = app.admin().await;
    let id = app.create_user("c@example.com", "client", None, false);
    let wrong = app.login("c@example.com", "not the password at all").await;
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    app.deactivate_user(&admin, &id).await;
    let inactive = app.login("c@example.com", PASSWORD).await;
    for res in [&wrong, &unknown, &inactive] {
        let body = res.assert_problem(401, "invalid_credentials");
        assert_eq!(body["detail"], wrong.body["detail"]);
        // No access token was sent, so none is called invalid.
        assert_eq!(
            res.header("www-authenticate"),
            Some("Bearer realm=\"dossier\"")
        );
    }
}

/// The throttle learns a login's outcome from the write that issues its tokens: a password
/// changed while the old one was being checked makes the login a failure, not a success that
/// clears the account's earlier failures.
#[actix_web::test]
async fn a_login_refused_by_a_password_changed_meanwhile_counts_as_a_failure() {
    let app = spawn().await;
    app.create_user("c@example.com", "client", None, false);
    for _ in 0..2 {
        app.login("c@example.com", "wrong password here")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let changed = "UPDATE users SET password_hash = 'changed elsewhere' \
                   WHERE email = 'c@example.com'";
    app.while_held(changed, app.login("c@example.com", PASSWORD))
        .await
        .assert_problem(401, "invalid_credentials");
    app.login("c@example.com", PASSWORD)
        .await
        .assert_problem(429, "too_many_requests");
}

#[actix_web::test]
async fn repeated_failures_for_one_account_are_throttled_even_with_the_right_password() {
    let app = spawn().await;
    app.create_user("c@example.com", "client", None, false);
    for _ in 0..3 {
        app.login("c@example.com", "wrong password here")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let res = app.login("c@example.com", PASSWORD).await;
    res.assert_problem(429, "too_many_requests");
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
    // Another account from another address is not affected.
    app.create_user("d@example.com", "client", None, false);
    let other = app
        .send(
            TestRequest::post()
                .uri("/v1/auth/token")
                .peer_addr("10.0.0.9:1".parse().unwrap())
                .set_json(json!({"email": "d@example.com", "password": PASSWORD})),
        )
        .await;
    other.assert_status(200);
}

/// Attempts sent at once count before their passwords are checked: no more of them get a
/// verdict than the limit allows. Successful logins take their attempt back.
#[actix_web::test]
async fn attempts_sent_at_once_cannot_pass_the_limit() {
    let app = spawn().await;
    app.create_user("c@example.com", "client", None, false);
    let attempts = (0..8).map(|_| app.login("c@example.com", "wrong password here"));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|res| res.status.as_u16())
        .collect();
    let count = |status| statuses.iter().filter(|&&s| s == status).count();
    assert_eq!((count(401), count(429)), (3, 5), "{statuses:?}");
    // The address has 3 failures of its 6; eight successful logins from it add none.
    app.create_user("d@example.com", "client", None, false);
    for _ in 0..8 {
        app.login("d@example.com", PASSWORD)
            .await
            .assert_status(200);
    }
}

/// Behind a trusted proxy the client's address is the one the proxy appended to
/// `X-Forwarded-For`; from anyone else the header is ignored, so it cannot dodge the limit.
#[actix_web::test]
async fn the_address_counted_is_the_clients_behind_a_trusted_proxy_only() {
    let login = |email: &str, password: &str, forwarded_for: &str| {
        TestRequest::post()
            .uri("/v1/auth/token")
            .insert_header(("x-forwarded-for", forwarded_for.to_owned()))
            .set_json(json!({"email": email, "password": password}))
    };
    // The tests' requests come from 127.0.0.1: here a trusted proxy.
    let app = crate::helpers::spawn_with(&[("DOSSIER_TRUSTED_PROXIES", "127.0.0.0/8, ::1")]).await;
    app.create_user("c@example.com", "client", None, false);
    for i in 0..6 {
        // What the client wrote itself (left) does not count; what the proxy appended does.
        let spoofed = format!("198.51.100.{i}, 203.0.113.5");
        app.send(login(
            &format!("nobody{i}@example.com"),
            "wrong password",
            &spoofed,
        ))
        .await
        .assert_problem(401, "invalid_credentials");
    }
    app.send(login("c@example.com", PASSWORD, "203.0.113.5"))
        .await
        .assert_problem(429, "too_many_requests");
    // A byte the client slipped into the line does not hide the entry the proxy appended.
    let garbled = actix_web::http::header::HeaderValue::from_bytes(b"\xff, 203.0.113.5").unwrap();
    app.send(
        TestRequest::post()
            .uri("/v1/auth/token")
            .insert_header(("x-forwarded-for", garbled))
            .set_json(json!({"email": "c@example.com", "password": PASSWORD})),
    )
    .await
    .assert_problem(429, "too_many_requests");
    // A proxy that writes the port too: the same client, held back alike.
    app.send(login("c@example.com", PASSWORD, "203.0.113.5:4711"))
        .await
        .assert_problem(429, "too_many_requests");
    // Another client behind the same proxy is not held back by the first one's failures.
    app.send(login("c@example.com", PASSWORD, "203.0.113.6, 127.0.0.1"))
        .await
        .assert_status(200);

    // An IPv6 client counts by its /64: a new address in it each time does not dodge the
    // limit, while another /64 is not held back.
    for i in 0..6 {
        app.send(login(
            &format!("nobody{i}@example.com"),
            "wrong password",
            &format!("2001:db8:1:2::{i:x}"),
        ))
        .await
        .assert_problem(401, "invalid_credentials");
    }
    app.send(login("c@example.com", PASSWORD, "2001:db8:1:2:ffff::9"))
        .await
        .assert_problem(429, "too_many_requests");
    app.send(login("c@example.com", PASSWORD, "[2001:db8:1:2::7]:4711"))
        .await
        .assert_problem(429, "too_many_requests");
    app.send(login("c@example.com", PASSWORD, "2001:db8:1:3::1"))
        .await
        .assert_status(200);

    // A proxy configured by its IPv4-mapped address (a dual-stack listener's view) is trusted
    // as its IPv4 one.
    let app = crate::helpers::spawn_with(&[("DOSSIER_TRUSTED_PROXIES", "::ffff:127.0.0.1")]).await;
    app.create_user("c@example.com", "client", None, false);
    for i in 0..6 {
        app.send(login(
            &format!("nobody{i}@example.com"),
            "wrong password",
            "203.0.113.9",
        ))
        .await
        .assert_problem(401, "invalid_credentials");
    }
    app.send(login("c@example.com", PASSWORD, "203.0.113.10"))
        .await
        .assert_status(200);

    // Without trusted proxies the header changes nothing: every attempt is the peer's.
    let app = spawn().await;
    app.create_user("c@example.com", "client", None, false);
    for i in 0..6 {
        app.send(login(
            &format!("nobody{i}@example.com"),
            "wrong password",
            &format!("203.0.113.{i}"),
        ))
        .await
        .assert_problem(401, "invalid_credentials");
    }
    app.send(login("c@example.com", PASSWORD, "203.0.113.99"))
        .await
        .assert_problem(429, "too_many_requests");
}

#[actix_web::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let app = spawn().await;
    app.create_user("c@example.com", "client", None, false);
    for i in 0..6 {
        app.login(&format!("nobody{i}@example.com"), "whatever it is")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let res = app.login("c@example.com", PASSWORD).await;
    res.assert_problem(429, "too_many_requests");
    assert!(res.header("retry-after").is_some());
}

pub fn claims(overrides: serde_json::Value) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    let mut base = json!({
        "role": "platform", "admin": true, "iss": "dossier", "aud": "dossier-api",
        "exp": now + 600, "iat": now, "nbf": now, "jti": "t"
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

pub fn sign(claims: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[actix_web::test]
async fn tampered_and_malformed_tokens_are_refused() {
    let app = spawn().await;
    let id = app.create_user("root@example.com", "platform", None, true);
    let now = chrono::Utc::now().timestamp();
    let good = sign(&claims(json!({"sub": id})), SECRET);
    app.get("/v1/me", &good).await.assert_status(200);

    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let parts: Vec<&str> = good.split('.').collect();
    let tampered_payload = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims(json!({"sub": id, "role": "client"}))),
        parts[2]
    );
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    let cases = [
        (
            "signature by another key",
            sign(
                &claims(json!({"sub": id})),
                "another-secret-that-is-long-enough-xx",
            ),
        ),
        ("payload edited after signing", tampered_payload),
        ("alg none", alg_none),
        (
            "expired",
            sign(&claims(json!({"sub": id, "exp": now - 3600})), SECRET),
        ),
        (
            "wrong audience",
            sign(&claims(json!({"sub": id, "aud": "someone-else"})), SECRET),
        ),
        (
            "wrong issuer",
            sign(&claims(json!({"sub": id, "iss": "evil"})), SECRET),
        ),
        ("missing sub", sign(&claims(json!({})), SECRET)),
        (
            "missing exp",
            sign(&claims(json!({"sub": id, "exp": null})), SECRET),
        ),
        (
            "not yet valid",
            sign(&claims(json!({"sub": id, "nbf": now + 3600})), SECRET),
        ),
        (
            "unknown user",
            sign(
                &claims(json!({"sub": uuid::Uuid::now_v7().to_string()})),
                SECRET,
            ),
        ),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    // `/v1/notifications` looks the caller up before the handler (`AuthUser`); `/v1/me` and
    // the case routes inside their own transaction (`Token`).
    for (what, token) in cases {
        for path in ["/v1/me", "/v1/cases", "/v1/notifications"] {
            let res = app.get(path, &token).await;
            assert_eq!(res.status.as_u16(), 401, "{what} {path}: {}", res.body);
            res.assert_problem(401, "invalid_token");
            assert_eq!(
                res.header("www-authenticate"),
                Some("Bearer realm=\"dossier\", error=\"invalid_token\""),
                "{what} {path}"
            );
        }
    }
    let missing = app.send(TestRequest::get().uri("/v1/me")).await;
    missing.assert_problem(401, "missing_token");
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"dossier\"")
    );
    // A header that is not ASCII is no bearer token, even when trimming Unicode's blanks off it
    // would leave a valid one.
    let padded = format!("Bearer {good}\u{a0}");
    app.call(
        "GET",
        "/v1/me",
        "",
        None,
        &[("authorization", padded.as_str())],
    )
    .await
    .assert_problem(401, "missing_token");
}

/// Tokens that passed are remembered (`Tokens::verify`); a remembered one still expires.
#[actix_web::test]
async fn a_token_accepted_before_is_refused_once_it_expires() {
    let app = spawn().await;
    let id = app.create_user("root@example.com", "platform", None, true);
    let now = chrono::Utc::now().timestamp();
    // Expired 27 s ago: inside the 30 s leeway for 3 s more, so accepted (and remembered)...
    let token = sign(
        &claims(json!({"sub": id, "exp": now - 27, "iat": now - 900, "nbf": now - 900})),
        SECRET,
    );
    for path in ["/v1/me", "/v1/notifications"] {
        app.get(path, &token).await.assert_status(200);
    }
    // ...and refused once past the leeway, on every way in.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(4_500)).await;
    for path in ["/v1/me", "/v1/cases", "/v1/notifications"] {
        app.get(path, &token)
            .await
            .assert_problem(401, "invalid_token");
    }
}

/// Every way a caller is authenticated turns the token away: before the handler, and inside the
/// handler's transaction (`/v1/me`, the case routes), even for a case that does not exist.
async fn assert_locked_out<S>(app: &TestApp<S>, token: &str)
where
    S: AppService,
{
    let case = uuid::Uuid::now_v7();
    let other = uuid::Uuid::now_v7();
    // Most routes look the caller up inside their own transaction, first: 401 before the 404
    // a missing case would give an active caller.
    for path in [
        "/v1/me".to_owned(),
        "/v1/notifications".to_owned(),
        "/v1/notifications/unread-count".to_owned(),
        "/v1/cases".to_owned(),
        format!("/v1/cases/{case}"),
        format!("/v1/cases/{case}/storyline"),
        format!("/v1/cases/{case}/messages"),
        format!("/v1/cases/{case}/agents"),
        format!("/v1/cases/{case}/attachments"),
        format!("/v1/cases/{case}/requests"),
        format!("/v1/cases/{case}/video-calls"),
        format!("/v1/cases/{case}/required-data"),
        format!("/v1/video-calls/{other}/join"),
        format!("/v1/cases/{case}/audit"),
        format!("/v1/tickets/{other}/audit"),
        "/v1/audit/verify".to_owned(),
        "/v1/services".to_owned(),
        format!("/v1/services/{other}"),
        "/v1/agencies".to_owned(),
        format!("/v1/agencies/{other}"),
        format!("/v1/attachments/{other}"),
        "/v1/me/email-preferences".to_owned(),
        "/v1/emails".to_owned(),
        "/v1/users".to_owned(),
        format!("/v1/users/{other}"),
    ] {
        let res = app.get(&path, token).await;
        assert_eq!(res.status.as_u16(), 401, "{path}: {}", res.body);
        res.assert_problem(401, "invalid_token");
    }
    let version = [("if-match", "\"1\"")];
    let writes = [
        (
            "POST",
            "/v1/cases".to_owned(),
            json!({"service_id": other, "payment_method": "card", "title": "Title", "description": "Long enough text"}),
        ),
        (
            "POST",
            "/v1/services".to_owned(),
            json!({"title": "Tracking", "description": "GPS", "price_minor": 1, "currency": "EUR"}),
        ),
        ("POST", "/v1/agencies".to_owned(), json!({"name": "Rossi"})),
        (
            "POST",
            "/v1/notifications/read".to_owned(),
            json!({"all": true}),
        ),
        (
            "POST",
            format!("/v1/cases/{case}/messages/read"),
            json!({"up_to": other}),
        ),
        (
            "PATCH",
            format!("/v1/cases/{case}"),
            json!({"title": "Another title"}),
        ),
        (
            "PATCH",
            format!("/v1/services/{other}"),
            json!({"title": "Another title"}),
        ),
        (
            "PATCH",
            format!("/v1/agencies/{other}"),
            json!({"name": "Another name"}),
        ),
        (
            "POST",
            format!("/v1/cases/{case}/assignment"),
            json!({"action": "take"}),
        ),
        ("POST", format!("/v1/cases/{case}/attachments"), json!({})),
        ("DELETE", format!("/v1/attachments/{other}"), json!({})),
        (
            "PATCH",
            "/v1/me/email-preferences".to_owned(),
            json!({"events": [{"event": "message_received", "email": false}]}),
        ),
        ("POST", format!("/v1/emails/{other}/retry"), json!({})),
        (
            "POST",
            format!("/v1/cases/{case}/requests/{other}/answer"),
            json!({"text": "Yes"}),
        ),
        (
            "PUT",
            format!("/v1/cases/{case}/required-data/fields"),
            json!({"fields": [{"key": "subject", "label": "Subject", "type": "text"}]}),
        ),
        (
            "PATCH",
            format!("/v1/cases/{case}/required-data/values"),
            json!({"values": {"subject": "x"}}),
        ),
        (
            "PATCH",
            format!("/v1/cases/{case}/storyline/{other}"),
            json!({"title": "Leaves the club"}),
        ),
        (
            "PUT",
            format!("/v1/cases/{case}/agents"),
            json!({"agent_ids": []}),
        ),
        (
            "POST",
            format!("/v1/cases/{case}/requests"),
            json!({"kind": "document", "prompt": "A photo, please."}),
        ),
        (
            "POST",
            format!("/v1/cases/{case}/requests/{other}/cancel"),
            json!({}),
        ),
        ("POST", format!("/v1/cases/{case}/video-calls"), json!({})),
        (
            "POST",
            format!("/v1/cases/{case}/storyline"),
            json!({"occurred_at": "2026-11-21T14:05:00Z", "kind": "sighting", "title": "Enters the club"}),
        ),
        (
            "POST",
            format!("/v1/cases/{case}/storyline/{other}/publish"),
            json!({}),
        ),
        (
            "DELETE",
            format!("/v1/cases/{case}/storyline/{other}"),
            json!({}),
        ),
    ];
    let written = || {
        app.rows_in(&[
            "cases",
            "services",
            "agencies",
            "audit_log",
            "notifications",
            "message_reads",
        ])
    };
    let before = written();
    for (method, path, body) in writes {
        let res = app.call(method, &path, token, Some(body), &version).await;
        assert_eq!(res.status.as_u16(), 401, "{method} {path}: {}", res.body);
        res.assert_problem(401, "invalid_token");
    }
    assert_eq!(written(), before);
}

#[actix_web::test]
async fn a_deactivated_users_tokens_stop_working() {
    let app = spawn().await;
    let admin = app.admin().await;
    let id = app.create_user("c@example.com", "client", None, false);
    let login = app
        .login("c@example.com", PASSWORD)
        .await
        .assert_status(200)
        .clone();
    let token = login["access_token"].as_str().unwrap().to_owned();
    app.get("/v1/me", &token).await.assert_status(200);
    app.deactivate_user(&admin, &id).await;
    assert_locked_out(&app, &token).await;
    // Its refresh tokens were revoked too, and stay dead after reactivation.
    app.patch(&format!("/v1/users/{id}"), &admin, json!({"active": true}))
        .await
        .assert_status(200);
    app.refresh(login["refresh_token"].as_str().unwrap())
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.get("/v1/me", &token)
        .await
        .assert_problem(401, "invalid_token");
    app.token("c@example.com").await;
}

/// A deactivated agency's staff are locked out, go offline, hear of nothing, and get none of
/// their tokens back when it is reactivated; another agency's sessions are untouched. Its
/// webhooks hear nothing more (what they were still to hear ends untold) and its triggers do
/// not run, until it is reactivated.
#[actix_web::test]
async fn a_deactivated_agency_locks_its_staff_out() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let hook = app
        .post(
            "/v1/webhooks",
            &w.a_admin.token,
            json!({"url": "https://crm.rossi.example/hooks", "events": ["message_received"]}),
        )
        .await
        .assert_status(201)
        .clone();
    let deliveries = |status: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{}' \
             AND status = '{status}'",
            id(&hook)
        ))
    };
    let rule = json!({
        "name": "Heard", "event": "message_received",
        "actions": [{"type": "add_tag", "tag": "heard"}],
    });
    app.post("/v1/triggers", &w.a_admin.token, rule)
        .await
        .assert_status(201);
    // One rule-log entry each time the trigger runs.
    let ran = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM rule_log WHERE rule = 'trigger' AND case_id = '{case}' \
             AND trigger_event = 'message_received'"
        ))
    };
    post_message(&app, &w.client.token, &case, "Before").await;
    assert_eq!((deliveries("pending"), ran()), (1, 1));
    let agency = format!("/v1/agencies/{}", w.agency_a);
    let ours = app.session("op@rossi.example").await;
    let theirs = app.session("op@garcia.example").await;
    crate::world::set_presence(&app, &w.a_operator.token, "available").await;
    crate::world::set_presence(&app, &w.b_operator.token, "available").await;
    // Only platform staff deactivate an agency: its own admin cannot, and ends nothing.
    app.patch(&agency, &w.a_admin.token, json!({"active": false}))
        .await
        .assert_problem(403, "forbidden");
    app.get("/v1/me", &w.a_operator.token)
        .await
        .assert_status(200);
    app.patch(&agency, &w.platform.token, json!({"active": false}))
        .await
        .assert_status(200);
    assert_locked_out(&app, &w.a_operator.token).await;
    app.login("op@rossi.example", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    // Their sessions ended: offline (another agency's operator stays available).
    let status = |user: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM presence WHERE user_id = '{user}' AND status = 'available'"
        ))
    };
    assert_eq!((status(&w.a_operator.id), status(&w.b_operator.id)), (0, 1));
    let staff_bell = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE user_id IN \
             (SELECT id FROM users WHERE agency_id = '{}')",
            w.agency_a
        ))
    };
    let heard = staff_bell();
    post_message(&app, &w.client.token, &case, "Is anyone there?").await;
    assert_eq!(
        staff_bell(),
        heard,
        "a deactivated agency's staff were notified"
    );
    let ended = app.count(&format!(
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{}' \
         AND status = 'dead' AND last_error = 'agency_deactivated'",
        id(&hook)
    ));
    assert_eq!((deliveries("pending"), ended, ran()), (0, 1, 1));
    // A delivery that a write queued after the deactivation ended the others (the write read
    // the agency before the deactivation committed, on PostgreSQL) ends unposted in its turn;
    // nobody retries one while the agency is deactivated.
    app.sql(&format!(
        "UPDATE webhook_deliveries SET status = 'pending', last_error = NULL, \
         next_attempt_at = '2026-01-01 00:00:00' WHERE webhook_id = '{}'",
        id(&hook)
    ));
    dossier::webhooks::deliver_due(&app.state).await.unwrap();
    let dead = format!(
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = '{}' \
         AND status = 'dead' AND last_error = 'agency_deactivated' AND attempts = 1",
        id(&hook)
    );
    assert_eq!((deliveries("pending"), app.count(&dead)), (0, 1));
    let listed = format!("/v1/webhooks/{}/deliveries", id(&hook));
    let listed = app.get(&listed, &w.platform.token).await;
    let delivery = listed.assert_status(200)["items"][0]["id"].clone();
    let retry = format!(
        "/v1/webhooks/{}/deliveries/{}/retry",
        id(&hook),
        delivery.as_str().unwrap()
    );
    app.post(&retry, &w.platform.token, json!({}))
        .await
        .assert_problem(409, "agency_deactivated");

    app.patch(&agency, &w.platform.token, json!({"active": true}))
        .await
        .assert_status(200);
    app.refresh(&ours)
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.refresh(&theirs).await.assert_status(200);
    // Nor do their access tokens work again (the agency's epoch moved on), while another
    // agency's and the client's do; a new login does.
    for path in ["/v1/me", "/v1/cases"] {
        for theirs in [&w.a_operator.token, &w.a_agent.token, &w.a_admin.token] {
            app.get(path, theirs)
                .await
                .assert_problem(401, "invalid_token");
        }
        app.get(path, &w.b_operator.token).await.assert_status(200);
        app.get(path, &w.client.token).await.assert_status(200);
    }
    let again = app.token("op@rossi.example").await;
    app.get("/v1/me", &again).await.assert_status(200);
    app.session("op@rossi.example").await;
    post_message(&app, &w.client.token, &case, "Hello again").await;
    assert!(
        staff_bell() > heard,
        "a reactivated agency's staff hear again"
    );
    assert_eq!((deliveries("pending"), ran()), (1, 2));
}

#[actix_web::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = spawn().await;
    app.create_user("c@example.com", "client", None, false);
    let first = app
        .login("c@example.com", PASSWORD)
        .await
        .assert_status(200)
        .clone();
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();

    let second = app.refresh(&r1).await;
    let second = second.assert_status(200).clone();
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    app.get("/v1/me", second["access_token"].as_str().unwrap())
        .await
        .assert_status(200);

    // r1 again: reuse. It fails and takes r2 (same family) down with it.
    app.refresh(&r1)
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.refresh(&r2)
        .await
        .assert_problem(401, "invalid_refresh_token");

    // A separate login is a separate family and still works.
    let other = app
        .login("c@example.com", PASSWORD)
        .await
        .assert_status(200)
        .clone();
    app.refresh(other["refresh_token"].as_str().unwrap())
        .await
        .assert_status(200);
    app.refresh("never-issued")
        .await
        .assert_problem(401, "invalid_refresh_token");
}

#[actix_web::test]
async fn a_password_change_revokes_refresh_tokens() {
    let app = spawn().await;
    let admin = app.admin().await;
    let id = app.create_user("c@example.com", "client", None, false);
    let login = app
        .login("c@example.com", PASSWORD)
        .await
        .assert_status(200)
        .clone();
    app.patch(
        &format!("/v1/users/{id}"),
        &admin,
        json!({"password": "a brand new passphrase"}),
    )
    .await
    .assert_status(200);
    app.refresh(login["refresh_token"].as_str().unwrap())
        .await
        .assert_problem(401, "invalid_refresh_token");
    // The access tokens issued before end too; a login with the new password works.
    app.get("/v1/me", login["access_token"].as_str().unwrap())
        .await
        .assert_problem(401, "invalid_token");
    let res = app.login("c@example.com", "a brand new passphrase").await;
    let token = res.assert_status(200)["access_token"].as_str().unwrap();
    app.get("/v1/me", token).await.assert_status(200);
}

/// A login whose password was checked just before the password changed gets no session: the
/// change revoked every session, and one issued after it would outlive it.
#[actix_web::test]
async fn a_login_racing_a_password_change_gets_no_session() {
    let app = spawn().await;
    let user = app.create_user("racer@clients.example", "client", None, false);
    let change = format!(
        "UPDATE users SET password_hash = 'changed', version = version + 1 WHERE id = '{user}'; \
         UPDATE refresh_tokens SET revoked_at = '2026-12-05 10:00:00' \
         WHERE user_id = '{user}' AND revoked_at IS NULL"
    );
    let login = app.login("racer@clients.example", PASSWORD);
    let res = app.while_held(&change, login).await;
    res.assert_problem(401, "invalid_credentials");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = '{user}'"
        )),
        0
    );
}

#[actix_web::test]
async fn logging_out_ends_that_session_and_the_last_one_sets_the_presence_offline() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let presence = async |token: &str| {
        let res = app.get("/v1/me/presence", token).await;
        res.assert_status(200)["status"].clone()
    };
    // The operator is logged in on a laptop and a phone, and available. The World's own login
    // has expired (unrevoked: an expired session counts as ended).
    app.sql(&format!(
        "UPDATE refresh_tokens SET expires_at = '2026-01-01 09:00:00' WHERE user_id = '{}'",
        w.a_operator.id
    ));
    let laptop = app.session("op@rossi.example").await;
    let phone = app.session("op@rossi.example").await;
    crate::world::set_presence(&app, &w.a_operator.token, "available").await;

    // The laptop logs out: its session ends, the phone's goes on, still available.
    assert_eq!(app.logout(&laptop, false).await.status.as_u16(), 204);
    app.refresh(&laptop)
        .await
        .assert_problem(401, "invalid_refresh_token");
    let res = app.refresh(&phone).await;
    let phone = res.assert_status(200)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(presence(&w.a_operator.token).await, "available");
    // Again, or with a token never issued: the same 204, nothing else changes. The ended
    // session's token cannot end every session: 401.
    for token in [laptop.as_str(), "never-issued"] {
        assert_eq!(app.logout(token, false).await.status.as_u16(), 204);
    }
    app.logout(&laptop, true)
        .await
        .assert_problem(401, "invalid_refresh_token");
    assert_eq!(presence(&w.a_operator.token).await, "available");

    // The phone logs out too: no session is left, so the operator is offline and a paid case
    // waits for someone else.
    assert_eq!(app.logout(&phone, false).await.status.as_u16(), 204);
    assert_eq!(presence(&w.a_operator.token).await, "offline");
    let case = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(case["assignee"].is_null(), "{case}");

    // The admin, available, logs out everywhere: offline too, and the access tokens issued
    // before are refused (the World's included). Another agency's operator, available and
    // logged in, stays as they were.
    let admin = app.session("admin@rossi.example").await;
    crate::world::set_presence(&app, &w.a_admin.token, "available").await;
    let other = app.session("op@garcia.example").await;
    crate::world::set_presence(&app, &w.b_operator.token, "available").await;
    assert_eq!(app.logout(&admin, true).await.status.as_u16(), 204);
    for path in ["/v1/me", "/v1/me/presence", "/v1/cases"] {
        app.get(path, &w.a_admin.token)
            .await
            .assert_problem(401, "invalid_token");
    }
    let fresh = app.token("admin@rossi.example").await;
    assert_eq!(presence(&fresh).await, "offline");
    assert_eq!(presence(&w.b_operator.token).await, "available");
    app.refresh(&other).await.assert_status(200);
    // A single session's logout leaves access tokens to expire by themselves.
    assert_eq!(presence(&w.a_operator.token).await, "offline");
    // A password change ends every session too: offline, without a logout.
    app.patch(
        &format!("/v1/users/{}", w.b_operator.id),
        &w.b_admin.token,
        json!({"password": "a brand new passphrase"}),
    )
    .await
    .assert_status(200);
    let offline = format!(
        "SELECT COUNT(*) AS n FROM presence WHERE user_id = '{}' AND status = 'offline'",
        w.b_operator.id
    );
    assert_eq!(app.count(&offline), 1);
}

#[actix_web::test]
async fn logging_out_everywhere_ends_every_session_of_that_user_only() {
    let app = spawn().await;
    app.create_user("c@example.com", "client", None, false);
    app.create_user("d@example.com", "client", None, false);
    let first = app.session("c@example.com").await;
    let second = app.session("c@example.com").await;
    let other = app.session("d@example.com").await;
    let live =
        "SELECT COUNT(*) AS n FROM refresh_tokens WHERE revoked_at IS NULL AND used_at IS NULL";
    // A token never issued cannot end every session: 401, nothing ends.
    app.logout("never-issued", true)
        .await
        .assert_problem(401, "invalid_refresh_token");
    assert_eq!(app.count(live), 3);
    // Nor can a spent one (it would be anyone's old copy): 401, and as on a refresh it is
    // reuse, so the session it came from ends; the others go on.
    let res = app.refresh(&first).await;
    let first_now = res.assert_status(200)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.logout(&first, true)
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.refresh(&first_now)
        .await
        .assert_problem(401, "invalid_refresh_token");
    assert_eq!(app.count(live), 2);

    let third = app.session("c@example.com").await;
    assert_eq!(app.logout(&second, true).await.status.as_u16(), 204);
    for token in [&second, &third] {
        app.refresh(token)
            .await
            .assert_problem(401, "invalid_refresh_token");
    }
    assert_eq!(app.count(live), 1);
    app.refresh(&other).await.assert_status(200);
    // Malformed bodies change nothing either.
    let send = |body: serde_json::Value| TestRequest::post().uri("/v1/auth/logout").set_json(body);
    app.send(send(json!({"refresh_token": ""})))
        .await
        .assert_problem(422, "validation_failed");
    app.send(send(json!({"refresh_token": other, "all": true})))
        .await
        .assert_problem(400, "unknown_field");
    assert_eq!(app.count(live), 1);
}

#[actix_web::test]
async fn the_sweep_forgets_refresh_tokens_a_month_after_they_expired() {
    let app = spawn().await;
    app.create_user("c@example.com", "client", None, false);
    for _ in 0..3 {
        app.login("c@example.com", PASSWORD)
            .await
            .assert_status(200);
    }
    let ago = |days: i64| {
        (chrono::Utc::now() - chrono::Duration::days(days))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    // One expired 31 days ago, one 29 days ago (still caught as reuse if spent), one live.
    let (old, recent) = (ago(31), ago(29));
    app.sql(&format!(
        "UPDATE refresh_tokens SET expires_at = '{old}' \
         WHERE id = (SELECT MIN(id) FROM refresh_tokens); \
         UPDATE refresh_tokens SET expires_at = '{recent}' \
         WHERE id = (SELECT MAX(id) FROM refresh_tokens)"
    ));
    // And years of sessions never swept (of the one user): more than one write's share.
    app.sql(&format!(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at, created_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5003) \
         SELECT 'old-' || i, 'old-' || i, (SELECT id FROM users), 'old-' || i, '{old}', '{old}' \
         FROM n"
    ));
    // One write takes at most its share; the sweep writes until a share is not full.
    let month_ago = dossier::db::now() - chrono::Duration::days(30);
    let mut conn = app.state.pool.get().unwrap();
    let removed = dossier::repo::refresh_tokens::delete_expired_before(&mut conn, month_ago, 2);
    assert_eq!(removed.unwrap(), 2);
    drop(conn);
    assert_eq!(
        dossier::housekeeping::sweep(&app.state).await.unwrap(),
        5_002
    );
    let with = |at: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE expires_at = '{at}'"
        ))
    };
    assert_eq!((with(&old), with(&recent)), (0, 1));
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM refresh_tokens"), 2);
    assert_eq!(dossier::housekeeping::sweep(&app.state).await.unwrap(), 0);
}

/// A user change checks its caller again inside its write (after a password's hash, outside
/// it): sessions ended meanwhile (a logout everywhere, a password change) refuse it.
#[actix_web::test]
async fn a_user_change_whose_callers_sessions_end_while_it_runs_is_refused() {
    let app = spawn().await;
    let admin = app.admin().await;
    let target = app.create_user("c@example.com", "client", None, false);
    let ended = "UPDATE users SET session_epoch = session_epoch + 1 \
                 WHERE email = 'root@platform.example'";
    let path = format!("/v1/users/{target}");
    let change = app.patch(&path, &admin, json!({"name": "Renamed"}));
    let res = app.while_held(ended, change).await;
    res.assert_problem(401, "invalid_token");
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM users WHERE name = 'Renamed' OR version > 1"),
        0
    );
}

/// A login whose password was checked before the user's sessions ended (a logout everywhere,
/// elsewhere) issues its token under the epoch as it is once the row is locked: it works.
#[actix_web::test]
async fn a_login_racing_the_end_of_every_session_gets_a_working_token() {
    let app = spawn().await;
    app.create_user("racer@clients.example", "client", None, false);
    let ended = "UPDATE users SET session_epoch = session_epoch + 1 \
                 WHERE email = 'racer@clients.example'";
    let login = app.login("racer@clients.example", PASSWORD);
    let res = app.while_held(ended, login).await;
    let token = res.assert_status(200)["access_token"].as_str().unwrap();
    app.get("/v1/me", token).await.assert_status(200);
}

/// A staff login whose password was checked before its agency's sessions ended reads the
/// agency's epoch under the lock it takes: deactivated meanwhile, no session; its sessions
/// ended but still active (a deactivation and a reactivation), a token that works.
#[actix_web::test]
async fn a_login_racing_its_agencys_deactivation_gets_no_session() {
    let app = spawn().await;
    let admin = app.admin().await;
    let agency = app.agency(&admin, "Racing Investigations").await;
    let user = app.create_user("racer@agency.example", "agency", Some(&agency), false);
    let ends = |deactivates: bool| {
        format!(
            "UPDATE agencies SET active = {}, session_epoch = session_epoch + 1 \
             WHERE id = '{agency}'",
            if deactivates { "false" } else { "true" }
        )
    };
    let login = app.login("racer@agency.example", PASSWORD);
    let res = app.while_held(&ends(false), login).await;
    let token = res.assert_status(200)["access_token"].as_str().unwrap();
    app.get("/v1/me", token).await.assert_status(200);

    let login = app.login("racer@agency.example", PASSWORD);
    let res = app.while_held(&ends(true), login).await;
    res.assert_problem(401, "invalid_credentials");
    app.get("/v1/me", token)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = '{user}'"
        )),
        1,
        "only the first login's"
    );
}

/// Refresh and logout name a token without authenticating: one that does not exist (a guess,
/// or one swept long ago) is answered from a read and never takes the database's writer.
#[actix_web::test]
async fn an_unknown_refresh_token_is_refused_without_a_write() {
    let app = crate::helpers::spawn_with(&[("DOSSIER_DB_POOL_SIZE", "1")]).await;
    let recorded = app.record_statements();
    recorded.start();
    app.refresh("never-issued")
        .await
        .assert_problem(401, "invalid_refresh_token");
    assert_eq!(app.logout("never-issued", false).await.status.as_u16(), 204);
    app.logout("never-issued", true)
        .await
        .assert_problem(401, "invalid_refresh_token");
    let sent = recorded.take();
    // Three reads, each a read transaction (`BEGIN`, SQLite's deferred one, or PostgreSQL's
    // `READ ONLY` one; a write's is `BEGIN IMMEDIATE` or a bare `BEGIN`), its lookup, `COMMIT`.
    let postgres = app._db.is_postgres();
    let read = if postgres {
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    } else {
        "BEGIN"
    };
    let first_words: Vec<String> = sent
        .iter()
        .map(|sql| match sql.trim() {
            begin if begin.starts_with("BEGIN") => begin.to_owned(),
            other => other.split_whitespace().next().unwrap_or("").to_uppercase(),
        })
        .collect();
    assert_eq!(
        first_words,
        [read, "SELECT", "COMMIT"].repeat(3),
        "{sent:?}"
    );
}

/// Each user writes at most `DOSSIER_WRITES_PER_MINUTE` times a minute: past it, 429 with
/// `Retry-After` and nothing written; reads and other users' writes go on.
#[actix_web::test]
async fn a_users_writes_past_the_minutes_allowance_are_refused_and_change_nothing() {
    let app = crate::helpers::spawn_with(&[("DOSSIER_WRITES_PER_MINUTE", "3")]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    post_message(&app, &w.client.token, &case, "First").await;
    post_message(&app, &w.client.token, &case, "Second").await;
    let tables = ["messages", "notifications", "audit_log"];
    let before = app.rows_in(&tables);
    let path = format!("/v1/cases/{case}/messages");
    let res = app
        .post(&path, &w.client.token, json!({"body": "Third"}))
        .await;
    res.assert_problem(429, "too_many_requests");
    let wait: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "Retry-After: {wait}");
    // Every method that writes counts; a malformed body is refused before it is read.
    app.patch(
        &format!("/v1/cases/{case}"),
        &w.client.token,
        json!({"title": 1}),
    )
    .await
    .assert_problem(429, "too_many_requests");
    assert_eq!(app.rows_in(&tables), before);
    app.get(&path, &w.client.token).await.assert_status(200);
    post_message(&app, &w.a_operator.token, &case, "We are on it.").await;
}

/// Every user changes their own password, giving the current one: every session ends but the
/// one the answer carries, the presence stays, the log names the change. A wrong current
/// password changes nothing and counts as a failed login; one's own password is not a PATCH's.
#[actix_web::test]
async fn everyone_changes_their_own_password_with_the_current_one() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let laptop = app
        .login("op@rossi.example", PASSWORD)
        .await
        .assert_status(200)
        .clone();
    let laptop_access = laptop["access_token"].as_str().unwrap();
    crate::world::set_presence(&app, laptop_access, "available").await;
    let change = async |token: &str, current: &str, new: &str| {
        let body = json!({"current_password": current, "new_password": new});
        app.put("/v1/me/password", token, body).await
    };
    let passwords = || {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{}' AND field = 'password'",
            w.a_operator.id
        ))
    };
    let before = passwords();

    // Refused, nothing changed: a wrong current password, a short new one, unknown members.
    let res = change(
        laptop_access,
        "not my password",
        "a new and longer passphrase",
    )
    .await;
    let error = &res.assert_problem(422, "wrong_password")["errors"][0];
    assert_eq!(
        (&error["pointer"], &error["code"]),
        (&json!("/current_password"), &json!("wrong_password"))
    );
    let res = change(laptop_access, PASSWORD, "short").await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["pointer"],
        "/new_password"
    );
    app.put("/v1/me/password", laptop_access, json!({"current_password": PASSWORD, "new_password": "a new and longer passphrase", "password": "x"}))
        .await
        .assert_status(400);
    app.get("/v1/me", laptop_access).await.assert_status(200);
    assert_eq!(passwords(), before);

    // Changed: the laptop's tokens (and the World's) end, the answer's pair goes on.
    let res = change(laptop_access, PASSWORD, "a new and longer passphrase").await;
    let fresh = res.assert_status(200).clone();
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let fresh_access = fresh["access_token"].as_str().unwrap();
    for token in [laptop_access, w.a_operator.token.as_str()] {
        app.get("/v1/me", token)
            .await
            .assert_problem(401, "invalid_token");
    }
    app.refresh(laptop["refresh_token"].as_str().unwrap())
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.refresh(fresh["refresh_token"].as_str().unwrap())
        .await
        .assert_status(200);
    let presence = app.get("/v1/me/presence", fresh_access).await;
    assert_eq!(presence.assert_status(200)["status"], "available");
    app.login("op@rossi.example", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    app.login("op@rossi.example", "a new and longer passphrase")
        .await
        .assert_status(200);
    let rows = app.texts(&format!(
        "SELECT action || ' ' || COALESCE(old_value, '-') || ' ' || COALESCE(new_value, '-') \
         || ' ' || actor_id AS t FROM audit_log WHERE entity_id = '{}' AND field = 'password' \
         ORDER BY seq DESC LIMIT 1",
        w.a_operator.id
    ));
    assert_eq!(rows, [Some(format!("update - - {}", w.a_operator.id))]);
    assert_eq!(passwords(), before + 1);

    // An admin's own password is not a PATCH's either.
    let res = app
        .patch(
            &format!("/v1/users/{}", w.a_admin.id),
            &w.a_admin.token,
            json!({"password": "a brand new passphrase"}),
        )
        .await;
    let error = &res.assert_problem(422, "validation_failed")["errors"][0];
    assert_eq!(
        (&error["pointer"], &error["code"]),
        (&json!("/password"), &json!("not_allowed"))
    );
}

/// A wrong current password counts as a failed login of the account: a stolen access token
/// cannot guess the password for long.
#[actix_web::test]
async fn wrong_current_passwords_are_throttled_as_failed_logins() {
    let app = spawn().await;
    app.create_user("c@example.com", "client", None, false);
    let token = app.token("c@example.com").await;
    let change = |current: &str| {
        let body =
            json!({"current_password": current, "new_password": "a new and longer passphrase"});
        app.put("/v1/me/password", &token, body)
    };
    for _ in 0..3 {
        change("wrong password here")
            .await
            .assert_problem(422, "wrong_password");
    }
    let res = change(PASSWORD).await;
    res.assert_problem(429, "too_many_requests");
    assert!(res.header("retry-after").is_some());
    app.login("c@example.com", PASSWORD)
        .await
        .assert_problem(429, "too_many_requests");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) AS n FROM audit_log WHERE field = 'password' AND action = 'update'"
        ),
        0
    );
}
