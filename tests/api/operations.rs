use actix_web::test::TestRequest;

use crate::helpers::spawn;

#[actix_web::test]
async fn health_and_metrics() {
    let app = spawn().await;
    let live = app.send(TestRequest::get().uri("/health/live")).await;
    assert_eq!(live.assert_status(200)["status"], "ok");
    let ready = app.send(TestRequest::get().uri("/health/ready")).await;
    assert_eq!(ready.assert_status(200)["status"], "ok");
    // Only a PostgreSQL node runs the relay (one of the PostgreSQL run's tests starts it).
    let relay = ready.body["live_relay"].as_str().unwrap();
    match app._db.is_postgres() {
        false => assert_eq!(relay, "off"),
        true => assert!(
            ["off", "listening", "reconnecting"].contains(&relay),
            "{relay}"
        ),
    }
    app.send(TestRequest::get().uri("/v1/me"))
        .await
        .assert_problem(401, "missing_token");
    // Methods a client makes up share one label: each would otherwise be a series kept for
    // the process's life.
    for invented in ["BREW", "WHEN"] {
        let method = actix_web::http::Method::from_bytes(invented.as_bytes()).unwrap();
        let res = app
            .send(TestRequest::default().method(method).uri("/health/live"))
            .await;
        res.assert_problem(405, "method_not_allowed");
    }
    // HEAD is answered by the GET route, and counted as HEAD.
    let head = actix_web::http::Method::HEAD;
    let res = app
        .send(
            TestRequest::default()
                .method(head.clone())
                .uri("/health/ready"),
        )
        .await;
    res.assert_status(200);
    app.send(TestRequest::default().method(head).uri("/v1/cases"))
        .await
        .assert_problem(401, "missing_token");
    let metrics = app.send(TestRequest::get().uri("/metrics")).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(
            r#"dossier_http_requests_total{method="GET",route="/health/ready",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"dossier_http_requests_total{method="HEAD",route="/health/ready",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"dossier_http_requests_total{method="other",route="/health/live",status="405"} 2"#
        ),
        "{text}"
    );
    assert!(!text.contains("BREW"), "{text}");
    assert!(
        text.contains(r#"dossier_http_requests_total{method="GET",route="/v1/me",status="401"} 1"#),
        "{text}"
    );
    assert!(text.contains("dossier_http_request_duration_seconds_bucket"));
    assert!(text.contains("dossier_db_pool_max_connections 4"));
    if !app._db.is_postgres() {
        assert!(
            text.contains(r#"dossier_live_relay{state="off"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dossier_live_relay{state="listening"} 0"#),
            "{text}"
        );
    }
}

#[actix_web::test]
async fn readiness_is_503_while_the_database_is_down_and_recovers() {
    // A PostgreSQL URL on a port where nothing listens yet: the pool cannot connect.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let settings = crate::helpers::settings(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        &[],
    );
    let state = actix_web::web::Data::new(dossier::app::AppState::new(settings).unwrap());
    let service = actix_web::test::init_service(dossier::app::build_app(state)).await;
    let res = actix_web::test::call_service(
        &service,
        TestRequest::get().uri("/health/ready").to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let body: serde_json::Value = actix_web::test::read_body_json(res).await;
    assert_eq!(body["code"], "service_unavailable");
    assert!(
        !body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "no internals: {body}"
    );
    let live = actix_web::test::call_service(
        &service,
        TestRequest::get().uri("/health/live").to_request(),
    )
    .await;
    assert_eq!(live.status().as_u16(), 200);

    // The database comes back (a forwarder to the real server, when one is configured).
    let Some(target) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return;
    };
    let upstream = target
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = std::net::TcpStream::connect(&upstream).unwrap();
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c1, mut s1) = (client, server);
            std::thread::spawn(move || std::io::copy(&mut c1, &mut s2));
            std::thread::spawn(move || std::io::copy(&mut s1, &mut c2));
        }
    });
    let res = actix_web::test::call_service(
        &service,
        TestRequest::get().uri("/health/ready").to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
}

/// The real binary: migrates an empty folder at start, serves, and on SIGTERM stops gracefully
/// with exit code 0.
#[test]
fn the_binary_starts_on_an_empty_folder_and_stops_on_sigterm() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dossier"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("DOSSIER_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let response = loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not come up"
        );
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream
                .write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            stream.read_to_string(&mut out).unwrap();
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // HEAD: the GET route's status and headers, and no body on the wire.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"HEAD /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut head = String::new();
    stream.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "headers alone: {head:?}");
    assert!(
        dir.path().join("data/dossier.db").exists(),
        "the default SQLite file is created"
    );

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
