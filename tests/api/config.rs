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
    assert!(
        load(&[
            ("DOSSIER_ENV", "production"),
            ("DOSSIER_JWT_SECRET", &"k".repeat(32))
        ])
        .is_ok()
    );
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
        ("DOSSIER_JWT_ALGORITHM", "HS512"),
        ("DOSSIER_DB_POOL_SIZE", "0"),
    ] {
        let e = load(&[(name, value)]).unwrap_err();
        assert_eq!(e.name, name, "{value}");
    }
    let e = load(&[("DOSSIER_BOOTSTRAP_ADMIN_EMAIL", "a@b.example")]).unwrap_err();
    assert_eq!(e.name, "DOSSIER_BOOTSTRAP_ADMIN_PASSWORD");
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
