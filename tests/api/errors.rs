//! Every kind of bad request gets a problem document and changes nothing.

use actix_web::test::TestRequest;

use crate::helpers::spawn;

#[actix_web::test]
async fn each_kind_of_bad_request_gets_a_problem_document() {
    let app = spawn().await;
    let admin = app.admin().await;
    let auth = ("authorization", format!("Bearer {admin}"));
    let post = |body: &str, content_type: &str| {
        TestRequest::post()
            .uri("/v1/agencies")
            .insert_header(auth.clone())
            .insert_header(("content-type", content_type.to_owned()))
            .set_payload(body.to_owned())
    };

    app.send(post("{\"name\": ", "application/json"))
        .await
        .assert_problem(400, "malformed_json");
    let res = app
        .send(post("{\"name\": \"A\", \"colour\": 1}", "application/json"))
        .await;
    assert_eq!(
        res.assert_problem(400, "unknown_field")["errors"][0]["pointer"],
        "/colour"
    );
    let res = app.send(post("{\"name\": 42}", "application/json")).await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["pointer"],
        "/name"
    );
    // Members in order as an array, which serde would read as the struct: refused, nothing
    // written.
    for body in [
        "[\"Agency by array\", null]",
        "[\"Agency by array\"]",
        "[]",
        "\"x\"",
        "null",
    ] {
        let res = app.send(post(body, "application/json")).await;
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], "", "{body}");
        // RFC 9110's names, as the spec's example has them.
        assert_eq!(problem["title"], "Unprocessable Content");
    }
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM agencies"), 0);
    let res = app.send(post("{}", "application/json")).await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["code"],
        "required"
    );
    app.send(post("{\"name\": \"A\"}", "text/plain"))
        .await
        .assert_problem(415, "unsupported_media_type");
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let res = app.send(post(&huge, "application/json")).await;
    assert_eq!(
        res.assert_problem(413, "payload_too_large")["title"],
        "Content Too Large"
    );

    let res = app.get("/v1/users/not-a-uuid", &admin).await;
    res.assert_problem(400, "invalid_path_parameter");
    let res = app.get("/v1/users?role=wizard", &admin).await;
    res.assert_problem(400, "invalid_query");
    let res = app.get("/v1/users?colour=blue", &admin).await;
    res.assert_problem(400, "invalid_query");
    // Every route reads its query alike: an empty value and a repeat of a parameter that is
    // no list are refused with the parameter's pointer.
    // Names are read decoded (`li%6Dit` is `limit`).
    for (path, name) in [
        ("/v1/users?limit=", "limit"),
        ("/v1/users?limit", "limit"),
        ("/v1/users?role=", "role"),
        ("/v1/users?li%6Dit=", "limit"),
        ("/v1/users?limit=5&cursor=", "cursor"),
    ] {
        let res = app.get(path, &admin).await;
        let problem = res.assert_problem(400, "invalid_query");
        assert_eq!(
            problem["errors"][0]["pointer"],
            format!("/{name}"),
            "{path}"
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("has no value"), "{detail}");
    }
    // The repeat blamed is the one that is no list, also beside a list's own repeats.
    for path in [
        "/v1/users?limit=1&limit=2",
        "/v1/users?limit=1&li%6Dit=2",
        "/v1/cases?status=in_approval&status=closed&limit=1&limit=2",
    ] {
        let res = app.get(path, &admin).await;
        let problem = res.assert_problem(400, "invalid_query");
        assert_eq!(problem["errors"][0]["pointer"], "/limit", "{path}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("`limit` is given more than once"),
            "{detail}"
        );
    }
    // At most 100 parameters, checked before anything else is parsed: past it the answer is
    // 400 even when the query is otherwise fine, and a query of repeats costs one parse per
    // repeated name.
    let many = |n: usize, pair: &str| vec![pair; n].join("&");
    let res = app
        .get(&format!("/v1/cases?{}", many(100, "status=closed")), &admin)
        .await;
    res.assert_status(200);
    let res = app
        .get(&format!("/v1/cases?{}", many(101, "status=closed")), &admin)
        .await;
    let problem = res.assert_problem(400, "invalid_query");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("at most 100 query parameters"), "{detail}");
    let repeats = format!("/v1/users?{}&{}", many(50, "limit=1"), many(50, "cursor=a"));
    let problem = app.get(&repeats, &admin).await;
    let problem = problem.assert_problem(400, "invalid_query");
    assert_eq!(problem["errors"][0]["pointer"], "/limit");

    let res = app.get("/v1/nothing-here", &admin).await;
    assert_eq!(
        res.assert_problem(404, "not_found")["instance"],
        "/v1/nothing-here"
    );
    let res = app
        .send(
            TestRequest::delete()
                .uri("/v1/users")
                .insert_header(auth.clone()),
        )
        .await;
    res.assert_problem(405, "method_not_allowed");
    assert_eq!(res.header("allow"), Some("GET, HEAD, POST"));
    let res = app
        .send(
            TestRequest::put()
                .uri(&format!("/v1/users/{}", uuid::Uuid::now_v7()))
                .insert_header(auth.clone()),
        )
        .await;
    assert_eq!(
        res.assert_problem(405, "method_not_allowed").clone()["status"],
        405
    );
    assert_eq!(res.header("allow"), Some("GET, HEAD, PATCH"));
    // `…/messages/read` answers POST only, though `GET …/messages/{message_id}` matches its
    // path too: the resource is `read`, whatever method names it; a message id that is no
    // id is still a bad parameter.
    let case = uuid::Uuid::now_v7();
    for method in [TestRequest::get(), TestRequest::delete()] {
        let res = app
            .send(
                method
                    .uri(&format!("/v1/cases/{case}/messages/read"))
                    .insert_header(auth.clone()),
            )
            .await;
        res.assert_problem(405, "method_not_allowed");
        assert_eq!(res.header("allow"), Some("POST"));
    }
    let res = app
        .get(&format!("/v1/cases/{case}/messages/reed"), &admin)
        .await;
    res.assert_problem(400, "invalid_path_parameter");

    // None of it created an agency.
    let list = app.get("/v1/agencies", &admin).await;
    assert_eq!(list.assert_status(200)["items"], serde_json::json!([]));
}

/// PostgreSQL refuses text holding NUL (a 500 there; SQLite stored it): refused first, on both.
#[actix_web::test]
async fn nul_characters_are_refused_before_they_reach_the_database() {
    let app = spawn().await;
    let admin = app.admin().await;
    let res = app
        .post(
            "/v1/agencies",
            &admin,
            serde_json::json!({"name": "Nul\u{0}Agency"}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["pointer"],
        "/name"
    );
    let res = app.login("nobody\u{0}@example.com", "whatever it is").await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["pointer"],
        "/email"
    );
    app.get("/v1/cases?q=%00", &admin)
        .await
        .assert_problem(400, "invalid_query");
    app.get("/v1/users/%00", &admin)
        .await
        .assert_problem(400, "invalid_path_parameter");
    // Also where the route takes no query: the spec lists 400 on every operation.
    app.get("/v1/me?x=%00", &admin)
        .await
        .assert_problem(400, "invalid_query");
    let list = app.get("/v1/agencies", &admin).await;
    assert_eq!(list.assert_status(200)["items"], serde_json::json!([]));
}

#[actix_web::test]
async fn request_ids_are_echoed_or_made() {
    let app = spawn().await;
    let res = app
        .send(
            TestRequest::get()
                .uri("/health/live")
                .insert_header(("x-request-id", "abc-123")),
        )
        .await;
    assert_eq!(res.header("x-request-id"), Some("abc-123"));
    let res = app
        .send(
            TestRequest::get()
                .uri("/health/live")
                .insert_header(("x-request-id", "bad id with spaces")),
        )
        .await;
    let made = res.header("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
    let res = app
        .send(
            TestRequest::get()
                .uri("/nope")
                .insert_header(("x-request-id", "trace-9")),
        )
        .await;
    assert_eq!(
        res.assert_problem(404, "not_found")["request_id"],
        "trace-9"
    );
}

/// A browser frontend on an allowed origin may send the API's request headers and read its
/// response headers (a replay's `Idempotent-Replayed` too); another origin is refused.
#[actix_web::test]
async fn allowed_origins_may_call_and_read_the_headers_others_may_not() {
    let app = crate::helpers::spawn_with(&[("DOSSIER_CORS_ORIGINS", "https://app.example")]).await;
    let preflight = |origin: &'static str| {
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/v1/cases")
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header((
                "access-control-request-headers",
                "authorization, content-type, idempotency-key, if-match",
            ))
    };
    let res = app.send(preflight("https://app.example")).await;
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let allowed = res
        .header("access-control-allow-headers")
        .unwrap()
        .to_owned();
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "if-match",
    ] {
        assert!(allowed.contains(name), "{allowed}");
    }
    let res = app.send(preflight("https://evil.example")).await;
    assert!(res.status.is_client_error(), "{}", res.status);
    assert_eq!(res.header("access-control-allow-origin"), None);

    let admin = app.admin().await;
    let res = app
        .call(
            "GET",
            "/v1/agencies",
            &admin,
            None,
            &[("origin", "https://app.example")],
        )
        .await;
    res.assert_status(200);
    let exposed = res
        .header("access-control-expose-headers")
        .unwrap()
        .to_owned();
    for name in [
        "etag",
        "link",
        "location",
        "retry-after",
        "x-request-id",
        "idempotent-replayed",
        "content-disposition",
    ] {
        assert!(exposed.contains(name), "{exposed}");
    }
}
