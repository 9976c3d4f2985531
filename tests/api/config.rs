use std::collections::HashMap;

use dossier::config::{ConfigError, Settings, Source};

fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_source(&Source(|name| map.get(name).cloned()))
}

#[test]
fn defaults_are_development_sqlite_and_an_ephemeral_secret() {
    let s = load(&[]).unwrap();
    assert_eq!(s.database_url, "sqlite://data/dossier.db");
    assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
    assert!(s.jwt_secret_is_ephemeral);
    // SQLite: one connection per core (at least two); PostgreSQL: ten; either as configured.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    assert_eq!(s.db_pool_size, cores.max(2));
    let pg = load(&[("DATABASE_URL", "postgres://localhost/dossier")]).unwrap();
    assert_eq!(pg.db_pool_size, 10);
    let set = load(&[("DOSSIER_DB_POOL_SIZE", "7")]).unwrap();
    assert_eq!(set.db_pool_size, 7);
}

/// The defaults DESIGN.md states: cases and resolved tickets close after 3 days without an
/// answer, attachments up to 10 MiB, 3 open conversations per operator.
#[test]
fn the_designed_defaults_hold() {
    let s = load(&[]).unwrap();
    let three_days = std::time::Duration::from_secs(3 * 24 * 3600);
    assert_eq!(s.auto_close_after, three_days);
    assert_eq!(s.ticket_auto_close_after, three_days);
    assert_eq!(s.max_upload_bytes, 10 * 1024 * 1024);
    assert_eq!(s.operator_capacity, 3);
    assert_eq!(s.db_limits.lock_timeout.as_millis(), 5_000);
    assert_eq!(s.db_limits.statement_timeout.as_millis(), 30_000);
}

#[test]
fn production_refuses_a_missing_or_weak_secret() {
    let e = load(&[("DOSSIER_ENV", "production")]).unwrap_err();
    assert_eq!(e.name, "DOSSIER_JWT_SECRET");
    let e = load(&[
        ("DOSSIER_ENV", "production"),
        ("DOSSIER_JWT_SECRET", "short"),
    ])
    .unwrap_err();
    assert_eq!(e.name, "DOSSIER_JWT_SECRET");
    let e = load(&[
        ("DOSSIER_ENV", "production"),
        ("DOSSIER_JWT_SECRET", &"k".repeat(32)),
    ])
    .unwrap_err();
    assert_eq!(e.name, "DOSSIER_SECRETS_KEY");
    assert!(
        load(&[
            ("DOSSIER_ENV", "production"),
            ("DOSSIER_JWT_SECRET", &"k".repeat(32)),
            ("DOSSIER_SECRETS_KEY", crate::helpers::SECRETS_KEY),
        ])
        .is_ok()
    );
}

#[test]
fn secrets_keys_must_be_32_bytes_of_base64_and_are_never_printed() {
    for (name, value) in [
        ("DOSSIER_SECRETS_KEY", "not base64!"),
        // 31 bytes.
        (
            "DOSSIER_SECRETS_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        ),
        (
            "DOSSIER_SECRETS_OLD_KEYS",
            "giSW2K8ngX5UwS+CUhBVoK9B4ME8uYFOWNSJeFAF8fA=,short",
        ),
    ] {
        let e = load(&[(name, value)]).unwrap_err();
        assert_eq!(e.name, name, "{value}");
    }
    let settings = load(&[
        ("DOSSIER_SECRETS_KEY", crate::helpers::SECRETS_KEY),
        (
            "DOSSIER_SECRETS_OLD_KEYS",
            " giSW2K8ngX5UwS+CUhBVoK9B4ME8uYFOWNSJeFAF8fA= , ",
        ),
    ])
    .unwrap();
    assert_eq!(settings.secrets.old_keys.len(), 1);
    let printed = format!("{settings:?}");
    let id = settings.secrets.key.as_ref().unwrap().id();
    assert!(printed.contains(&format!("SecretsKey({id})")), "{printed}");
    assert!(!printed.contains("bytes: ["), "{printed}");
    assert!(!printed.contains(crate::helpers::SECRETS_KEY), "{printed}");
    assert!(!printed.contains("giSW2K8ngX5U"), "{printed}");
}

#[test]
fn each_invalid_setting_is_named() {
    for (name, value) in [
        ("DOSSIER_ENV", "staging"),
        ("DOSSIER_BIND", "not-an-address"),
        ("DATABASE_URL", "mysql://x"),
        ("DOSSIER_ACCESS_TOKEN_TTL", "soon"),
        ("DOSSIER_REFRESH_TOKEN_TTL", "0"),
        ("DOSSIER_CORS_ORIGINS", "app.example"),
        ("DOSSIER_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
        ("DOSSIER_JWT_ALGORITHM", "HS512"),
        ("DOSSIER_DB_POOL_SIZE", "0"),
        ("DOSSIER_AUTO_CLOSE_AFTER", "0"),
        // Past ten years a date plus the duration could overflow.
        ("DOSSIER_AUTO_CLOSE_AFTER", "315360001"),
        ("DOSSIER_DB_LOCK_TIMEOUT_MS", "0"),
        // PostgreSQL refuses it, SQLite would read it as no wait at all.
        ("DOSSIER_DB_LOCK_TIMEOUT_MS", "2147483648"),
        ("DOSSIER_DB_STATEMENT_TIMEOUT_MS", "soon"),
    ] {
        let e = load(&[(name, value)]).unwrap_err();
        assert_eq!(e.name, name, "{value}");
    }
    let longest = load(&[("DOSSIER_DB_STATEMENT_TIMEOUT_MS", "2147483647")]).unwrap();
    assert_eq!(
        longest.db_limits.statement_timeout.as_millis(),
        2_147_483_647
    );
    let ten_years = load(&[("DOSSIER_AUTO_CLOSE_AFTER", "315360000")]).unwrap();
    assert_eq!(ten_years.auto_close_after.as_secs(), 315_360_000);
    let e = load(&[("DOSSIER_BOOTSTRAP_ADMIN_EMAIL", "a@b.example")]).unwrap_err();
    assert_eq!(e.name, "DOSSIER_BOOTSTRAP_ADMIN_PASSWORD");
}

#[test]
fn email_settings_are_checked_and_the_smtp_password_never_printed() {
    assert!(load(&[]).unwrap().email.is_none(), "off without SMTP");
    let smtp = (
        "DOSSIER_SMTP_URL",
        "smtp://mailer:s3cret@mail.example:587?tls=required",
    );
    for (name, value) in [
        ("DOSSIER_SMTP_URL", "http://mail.example"),
        ("DOSSIER_EMAIL_FROM", "not an address"),
        ("DOSSIER_EMAIL_MAX_ATTEMPTS", "0"),
        ("DOSSIER_EMAIL_RETRY_BASE_MS", "soon"),
    ] {
        let e = load(&[smtp, (name, value)]).unwrap_err();
        assert_eq!(e.name, name, "{value}");
    }
    let settings = load(&[smtp, ("DOSSIER_EMAIL_FROM", "Ops <ops@dossier.example>")]).unwrap();
    let email = settings.email.as_ref().unwrap();
    assert_eq!(email.from.email.to_string(), "ops@dossier.example");
    assert_eq!(email.max_attempts, 8);
    assert!(!format!("{settings:?}").contains("s3cret"));
}

#[test]
fn the_binary_exits_2_naming_the_setting_before_binding() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dossier"))
        .env("DOSSIER_BIND", "nowhere")
        .env(
            "DATABASE_URL",
            "sqlite:///nonexistent-dir-never-created/x.db",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DOSSIER_BIND"), "{stderr}");
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn key_files_must_exist_and_belong_together() {
    let e = load(&[("DOSSIER_JWT_ALGORITHM", "EdDSA")]).unwrap_err();
    assert_eq!(e.name, "DOSSIER_JWT_PRIVATE_KEY_FILE");
    let e = load(&[
        ("DOSSIER_JWT_ALGORITHM", "EdDSA"),
        (
            "DOSSIER_JWT_PRIVATE_KEY_FILE",
            &fixture("ed25519-other-private.pem"),
        ),
        (
            "DOSSIER_JWT_PUBLIC_KEY_FILE",
            &fixture("ed25519-public.pem"),
        ),
    ])
    .unwrap_err();
    assert!(e.message.contains("do not belong together"), "{e}");
}

#[actix_web::test]
async fn eddsa_tokens_work_and_hs256_tokens_are_then_refused() {
    let private = fixture("ed25519-private.pem");
    let public = fixture("ed25519-public.pem");
    let app = crate::helpers::spawn_with(&[
        ("DOSSIER_JWT_ALGORITHM", "EdDSA"),
        ("DOSSIER_JWT_PRIVATE_KEY_FILE", &private),
        ("DOSSIER_JWT_PUBLIC_KEY_FILE", &public),
    ])
    .await;
    let id = app.create_user("c@example.com", "client", None, false);
    let token = app.token("c@example.com").await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    app.get("/v1/me", &token).await.assert_status(200);
    // An HS256 token signed with the public key as the secret (algorithm confusion) is refused.
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"sub": id, "role": "client", "iss": "dossier", "aud": "dossier-api",
        "exp": now + 600, "iat": now, "nbf": now, "jti": "x"});
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&std::fs::read(&public).unwrap()),
    )
    .unwrap();
    app.get("/v1/me", &forged)
        .await
        .assert_problem(401, "invalid_token");
}

#[actix_web::test]
async fn the_bootstrap_admin_is_created_once_when_no_user_exists() {
    let app = crate::helpers::spawn_with(&[
        ("DOSSIER_BOOTSTRAP_ADMIN_EMAIL", "First@Admin.example"),
        ("DOSSIER_BOOTSTRAP_ADMIN_PASSWORD", "bootstrap passphrase"),
    ])
    .await;
    let res = app
        .login("first@admin.example", "bootstrap passphrase")
        .await;
    let token = res.assert_status(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.get("/v1/me", &token).await;
    let me = me.assert_status(200);
    assert_eq!(me["role"], "platform");
    assert_eq!(me["admin"], true);
    // A second start changes nothing.
    app.state.prepare().unwrap();
    let users = app.get("/v1/users", &token).await;
    assert_eq!(
        users.assert_status(200)["items"].as_array().unwrap().len(),
        1
    );
    // Its creation is in the audit trail, with no actor, from the command line's hand, and
    // the chain holds.
    let log = app.get("/v1/audit?limit=100", &token).await;
    let rows = log.assert_status(200)["items"].as_array().unwrap().clone();
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(row["entity"], "user");
        assert_eq!(row["entity_id"], me["id"]);
        assert_eq!(row["action"], "create");
        assert_eq!(row["actor_id"], serde_json::Value::Null);
        assert_eq!(row["request_id"], "command-line");
    }
    assert!(
        rows.iter()
            .any(|r| r["field"] == "role" && r["new_value"] == "platform")
    );
    let verified = app.get("/v1/audit/verify", &token).await;
    assert_eq!(verified.assert_status(200)["intact"], true);
}

/// A bootstrap password the rules refuse is named, never printed (validator's own message
/// carries the value, and start-up errors go to the logs).
#[test]
fn a_refused_bootstrap_password_is_never_printed() {
    let db = crate::helpers::TestDb::new();
    let settings = crate::helpers::settings(
        db.url(),
        &[
            ("DOSSIER_BOOTSTRAP_ADMIN_EMAIL", "first@admin.example"),
            ("DOSSIER_BOOTSTRAP_ADMIN_PASSWORD", "hunter2hunt"),
        ],
    );
    let state = dossier::app::AppState::new(settings).unwrap();
    let e = state.prepare().unwrap_err();
    assert!(e.contains("password"), "{e}");
    assert!(!e.contains("hunter2hunt"), "{e}");
}
