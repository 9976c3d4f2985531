//! Settings read from the environment (and an optional `.env` file).
//!
//! Every problem is reported as one [`ConfigError`] naming the variable, so `main` can print it
//! and exit with code 2 before any port is bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::sealing::{SecretsKey, SecretsSettings};

/// Shortest HS256 secret accepted in production (bytes): 256 bits, the size of the hash.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    pub name: &'static str,
    pub message: String,
}

fn invalid(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// How access tokens are signed and verified. The algorithm is pinned: a token that names any
/// other algorithm in its header is rejected.
#[derive(Clone)]
pub enum JwtKeys {
    /// HS256 with a shared secret.
    Secret(Vec<u8>),
    /// EdDSA or RS256 with PEM key files.
    KeyPair {
        algorithm: Algorithm,
        private_pem: Vec<u8>,
        public_pem: Vec<u8>,
    },
}

impl JwtKeys {
    /// The server's own secret material (the HS256 secret, or the private key): a key for
    /// digests no one outside may compute (see `auth::password::keyed_digest`).
    pub fn private_material(&self) -> &[u8] {
        match self {
            JwtKeys::Secret(secret) => secret,
            JwtKeys::KeyPair { private_pem, .. } => private_pem,
        }
    }
}

impl std::fmt::Debug for JwtKeys {
    // Key material never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKeys::Secret(_) => f.write_str("JwtKeys::Secret(<redacted>)"),
            JwtKeys::KeyPair { algorithm, .. } => write!(f, "JwtKeys::KeyPair({algorithm:?})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub keys: JwtKeys,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct LoginThrottle {
    /// Failed logins allowed for one account within `window` before it is locked out.
    pub max_failures_per_account: u32,
    /// Failed logins allowed from one address within `window`.
    pub max_failures_per_address: u32,
    pub window: Duration,
    /// Proxies (addresses or networks) whose `X-Forwarded-For` names the client's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub email: String,
    pub password: String,
}

/// Where attachment blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSettings {
    /// A local folder (`DOSSIER_STORAGE_DIR`), created at start.
    Directory(PathBuf),
    /// An S3-compatible bucket (`DOSSIER_STORAGE_URL=s3://bucket/prefix`) with the store's
    /// options (credentials, region, endpoint) read from the usual `AWS_*` variables.
    S3 {
        url: String,
        options: Vec<(String, String)>,
    },
}

/// Outbound webhooks' delivery.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// How long a receiver has to answer a delivery.
    pub timeout: Duration,
    /// The first retry waits this long; each further one twice as long as the one before.
    pub retry_base: Duration,
    /// Attempts before a delivery is dead.
    pub max_attempts: u32,
    /// Only `https` URLs, and no IP literal of a private, loopback or link-local network
    /// (production); development also takes `http` and local receivers.
    pub public_https_only: bool,
}

/// Outgoing e-mail; absent when `DOSSIER_SMTP_URL` is not set (e-mail is off).
#[derive(Clone)]
pub struct EmailSettings {
    /// lettre's SMTP URL, e.g. `smtp://user:pass@mail.example:587?tls=required`.
    pub smtp_url: String,
    /// The sender, e.g. `Dossier <no-reply@dossier.example>`.
    pub from: lettre::message::Mailbox,
    /// The first retry waits this long; each further one twice as long as the one before.
    pub retry_base: Duration,
    /// Attempts before a mail is parked as dead.
    pub max_attempts: u32,
}

impl std::fmt::Debug for EmailSettings {
    // The SMTP URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("smtp_url", &"<redacted>")
            .field("from", &self.from.to_string())
            .field("retry_base", &self.retry_base)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub database_url: String,
    pub db_pool_size: u32,
    /// How long a statement waits for a lock, and runs, before it fails with 503.
    pub db_limits: crate::db::DbLimits,
    pub bind: SocketAddr,
    pub jwt: JwtSettings,
    /// Generated at start because no secret was configured (development only).
    pub jwt_secret_is_ephemeral: bool,
    pub cors_origins: Vec<String>,
    pub login_throttle: LoginThrottle,
    pub bootstrap_admin: Option<BootstrapAdmin>,
    pub json_limit_bytes: usize,
    /// Largest attachment; uploads past it answer 413 while streaming.
    pub max_upload_bytes: usize,
    pub storage: StorageSettings,
    /// Video call rooms are this URL followed by an unguessable room name.
    pub video_base_url: String,
    /// The app's link to a case; `{case_id}` is replaced.
    pub app_link_template: String,
    /// The app's link to a support ticket; `{ticket_id}` is replaced.
    pub ticket_link_template: String,
    /// How often an idle notification stream sends a heartbeat comment.
    pub sse_heartbeat: Duration,
    /// Notification streams one user may hold open at once (per process).
    pub max_streams_per_user: usize,
    /// Writes one user may make a minute (per process); 0: no limit.
    pub writes_per_minute: u32,
    /// PostgreSQL: relay the streams' wakes to and from the other nodes (`live::relay`). Off
    /// for one node, or an engine without `LISTEN/NOTIFY`.
    pub live_relay: bool,
    /// How long a completed case waits for its client to confirm or dispute before the
    /// `auto_close` rule closes it.
    pub auto_close_after: Duration,
    /// How long a resolved ticket waits for its requester to reactivate it before the
    /// `auto_close` rule closes it.
    pub ticket_auto_close_after: Duration,
    /// How many open cases (open tickets, for platform staff) an operator holds at most; their
    /// room is what is left of it (`GET /v1/presence`).
    pub operator_capacity: u32,
    pub email: Option<EmailSettings>,
    pub webhooks: WebhookSettings,
    /// The keys that seal webhook secrets and stored answers in the database (`sealing`).
    pub secrets: SecretsSettings,
}

/// Reads variables through a lookup function so tests can feed their own map.
pub struct Source<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Source<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        what: &str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| invalid(name, format!("expected {what}, got {raw:?}"))),
        }
    }

    fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parsed(name, default, "a whole number of seconds")?;
        // Ten years at most: times this far out still add to a date without overflowing.
        const MAX: u64 = 10 * 365 * 24 * 3600;
        if !(1..=MAX).contains(&secs) {
            return Err(invalid(name, format!("must be from 1 to {MAX} seconds")));
        }
        Ok(Duration::from_secs(secs))
    }

    fn positive(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
        let n: u32 = self.parsed(name, default, "a positive whole number")?;
        if n == 0 {
            return Err(invalid(name, "must be at least 1"));
        }
        Ok(n)
    }
}

fn db_limits<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
) -> Result<crate::db::DbLimits, ConfigError> {
    let default = crate::db::DbLimits::default();
    let millis = |name, default: Duration| -> Result<Duration, ConfigError> {
        let ms = src.positive(name, u32::try_from(default.as_millis()).unwrap_or(u32::MAX))?;
        // PostgreSQL's settings and SQLite's busy_timeout are 32-bit signed milliseconds.
        if ms > i32::MAX as u32 {
            return Err(invalid(name, format!("must be at most {} ms", i32::MAX)));
        }
        Ok(Duration::from_millis(ms.into()))
    };
    Ok(crate::db::DbLimits {
        lock_timeout: millis("DOSSIER_DB_LOCK_TIMEOUT_MS", default.lock_timeout)?,
        statement_timeout: millis("DOSSIER_DB_STATEMENT_TIMEOUT_MS", default.statement_timeout)?,
    })
}

/// SQLite reads run on this machine's cores: connections (and the blocking threads that go
/// with them) beyond one per core only wake and sleep in turn, which cost the card a fifth of
/// its CPU on two cores (bench/RESULTS.md). PostgreSQL connections wait on round trips, so more
/// of them pay.
fn default_pool_size(engine: &crate::db::DatabaseUrl) -> u32 {
    match engine {
        crate::db::DatabaseUrl::Sqlite(_) => std::thread::available_parallelism()
            .map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .max(2),
        crate::db::DatabaseUrl::Postgres(_) => 10,
    }
}

impl Settings {
    /// Loads `.env` (if present) and reads the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        // A missing .env is normal; a malformed one is a configuration error.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(invalid(".env", e.to_string())),
        }
        Settings::from_source(&Source(|name| std::env::var(name).ok()))
    }

    pub fn from_source<F: Fn(&str) -> Option<String>>(
        src: &Source<F>,
    ) -> Result<Settings, ConfigError> {
        let environment = match src.get("DOSSIER_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(invalid(
                    "DOSSIER_ENV",
                    format!("expected \"development\" or \"production\", got {other:?}"),
                ));
            }
        };
        let database_url = src
            .get("DATABASE_URL")
            .unwrap_or_else(|| "sqlite://data/dossier.db".into());
        let engine =
            crate::db::DatabaseUrl::parse(&database_url).map_err(|m| invalid("DATABASE_URL", m))?;

        let (keys, jwt_secret_is_ephemeral) = jwt_keys(src, environment)?;
        let jwt = JwtSettings {
            keys,
            issuer: src
                .get("DOSSIER_JWT_ISSUER")
                .unwrap_or_else(|| "dossier".into()),
            audience: src
                .get("DOSSIER_JWT_AUDIENCE")
                .unwrap_or_else(|| "dossier-api".into()),
            access_ttl: src.seconds("DOSSIER_ACCESS_TOKEN_TTL", 900)?,
            refresh_ttl: src.seconds("DOSSIER_REFRESH_TOKEN_TTL", 14 * 24 * 3600)?,
        };

        let cors_origins = cors_origins(src, environment)?;
        let bootstrap_admin = match (
            src.get("DOSSIER_BOOTSTRAP_ADMIN_EMAIL"),
            src.get("DOSSIER_BOOTSTRAP_ADMIN_PASSWORD"),
        ) {
            (None, None) => None,
            (Some(email), Some(password)) => Some(BootstrapAdmin { email, password }),
            (Some(_), None) => {
                return Err(invalid(
                    "DOSSIER_BOOTSTRAP_ADMIN_PASSWORD",
                    "required with DOSSIER_BOOTSTRAP_ADMIN_EMAIL",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "DOSSIER_BOOTSTRAP_ADMIN_EMAIL",
                    "required with DOSSIER_BOOTSTRAP_ADMIN_PASSWORD",
                ));
            }
        };

        Ok(Settings {
            environment,
            database_url,
            db_pool_size: src.positive("DOSSIER_DB_POOL_SIZE", default_pool_size(&engine))?,
            db_limits: db_limits(src)?,
            bind: src.parsed(
                "DOSSIER_BIND",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
                "an address such as 127.0.0.1:8080",
            )?,
            jwt,
            jwt_secret_is_ephemeral,
            cors_origins,
            login_throttle: LoginThrottle {
                max_failures_per_account: src
                    .positive("DOSSIER_LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)?,
                max_failures_per_address: src
                    .positive("DOSSIER_LOGIN_MAX_FAILURES_PER_ADDRESS", 20)?,
                window: src.seconds("DOSSIER_LOGIN_THROTTLE_WINDOW", 900)?,
                trusted_proxies: trusted_proxies(src)?,
            },
            bootstrap_admin,
            json_limit_bytes: src.positive("DOSSIER_JSON_LIMIT_BYTES", 64 * 1024)? as usize,
            max_upload_bytes: src.positive("DOSSIER_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)? as usize,
            storage: storage(src)?,
            video_base_url: video_base_url(src)?,
            sse_heartbeat: src.seconds("DOSSIER_SSE_HEARTBEAT_SECONDS", 15)?,
            max_streams_per_user: src.positive("DOSSIER_MAX_STREAMS_PER_USER", 5)? as usize,
            writes_per_minute: src.parsed(
                "DOSSIER_WRITES_PER_MINUTE",
                600,
                "a whole number of writes (0: no limit)",
            )?,
            live_relay: src.parsed("DOSSIER_LIVE_RELAY", true, "true or false")?,
            auto_close_after: src.seconds("DOSSIER_AUTO_CLOSE_AFTER", 3 * 24 * 3600)?,
            ticket_auto_close_after: src
                .seconds("DOSSIER_TICKET_AUTO_CLOSE_AFTER", 3 * 24 * 3600)?,
            operator_capacity: src.positive("DOSSIER_OPERATOR_CAPACITY", 3)?,
            email: email(src)?,
            secrets: secrets(src, environment)?,
            webhooks: WebhookSettings {
                timeout: webhook_timeout(src)?,
                retry_base: Duration::from_millis(
                    src.positive("DOSSIER_WEBHOOK_RETRY_BASE_MS", 30_000)?
                        .into(),
                ),
                max_attempts: src.positive("DOSSIER_WEBHOOK_MAX_ATTEMPTS", 8)?,
                public_https_only: environment == Environment::Production,
            },
            app_link_template: link_template(
                src,
                "DOSSIER_APP_LINK_TEMPLATE",
                "dossier://cases/{case_id}",
                "{case_id}",
            )?,
            ticket_link_template: link_template(
                src,
                "DOSSIER_APP_TICKET_LINK_TEMPLATE",
                "dossier://tickets/{ticket_id}",
                "{ticket_id}",
            )?,
        })
    }
}

/// How long a webhook receiver has: at most a minute, so a round of posts ends well inside
/// the deliveries' lease.
fn webhook_timeout<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
) -> Result<Duration, ConfigError> {
    let name = "DOSSIER_WEBHOOK_TIMEOUT_SECONDS";
    let timeout = src.seconds(name, 10)?;
    if timeout > Duration::from_secs(60) {
        return Err(invalid(name, "must be from 1 to 60 seconds"));
    }
    Ok(timeout)
}

/// An app link template from `name`, which must contain `placeholder`.
fn link_template<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
    name: &'static str,
    default: &str,
    placeholder: &str,
) -> Result<String, ConfigError> {
    match src.get(name) {
        None => Ok(default.into()),
        Some(t) if t.contains(placeholder) => Ok(t),
        Some(t) => Err(invalid(
            name,
            format!("must contain {placeholder}, got {t:?}"),
        )),
    }
}

fn jwt_keys<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
    environment: Environment,
) -> Result<(JwtKeys, bool), ConfigError> {
    let algorithm = match src.get("DOSSIER_JWT_ALGORITHM").as_deref() {
        None | Some("HS256") => Algorithm::HS256,
        Some("EdDSA") => Algorithm::EdDSA,
        Some("RS256") => Algorithm::RS256,
        Some(other) => {
            return Err(invalid(
                "DOSSIER_JWT_ALGORITHM",
                format!("expected HS256, EdDSA or RS256, got {other:?}"),
            ));
        }
    };
    if algorithm != Algorithm::HS256 {
        let read = |name: &'static str| -> Result<Vec<u8>, ConfigError> {
            let path = src.get(name).ok_or_else(|| {
                invalid(
                    name,
                    format!("required when DOSSIER_JWT_ALGORITHM is {algorithm:?}"),
                )
            })?;
            std::fs::read(PathBuf::from(&path))
                .map_err(|e| invalid(name, format!("cannot read {path:?}: {e}")))
        };
        let private_pem = read("DOSSIER_JWT_PRIVATE_KEY_FILE")?;
        let public_pem = read("DOSSIER_JWT_PUBLIC_KEY_FILE")?;
        let keys = JwtKeys::KeyPair {
            algorithm,
            private_pem,
            public_pem,
        };
        crate::auth::jwt::TokenKeys::new(&keys)
            .map_err(|m| invalid("DOSSIER_JWT_PRIVATE_KEY_FILE", m))?;
        return Ok((keys, false));
    }
    match src.get("DOSSIER_JWT_SECRET") {
        Some(secret) if secret.len() >= MIN_SECRET_BYTES => {
            Ok((JwtKeys::Secret(secret.into_bytes()), false))
        }
        Some(_) if environment == Environment::Production => Err(invalid(
            "DOSSIER_JWT_SECRET",
            format!("too weak for production: use at least {MIN_SECRET_BYTES} random bytes"),
        )),
        Some(secret) => Ok((JwtKeys::Secret(secret.into_bytes()), false)),
        None if environment == Environment::Production => Err(invalid(
            "DOSSIER_JWT_SECRET",
            "required in production (at least 32 random bytes)",
        )),
        None => Ok((
            JwtKeys::Secret(crate::auth::random_bytes::<32>().to_vec()),
            true,
        )),
    }
}

/// `DOSSIER_SECRETS_KEY` seals; `DOSSIER_SECRETS_OLD_KEYS` (comma-separated) only open what
/// keys before it sealed. Production refuses to store secrets in the clear.
fn secrets<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
    environment: Environment,
) -> Result<SecretsSettings, ConfigError> {
    let key = match src.get("DOSSIER_SECRETS_KEY") {
        Some(text) => {
            Some(SecretsKey::from_base64(&text).map_err(|m| invalid("DOSSIER_SECRETS_KEY", m))?)
        }
        None if environment == Environment::Production => {
            return Err(invalid(
                "DOSSIER_SECRETS_KEY",
                "required in production (openssl rand -base64 32)",
            ));
        }
        None => None,
    };
    let old_keys = src
        .get("DOSSIER_SECRETS_OLD_KEYS")
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .map(|k| SecretsKey::from_base64(k).map_err(|m| invalid("DOSSIER_SECRETS_OLD_KEYS", m)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SecretsSettings { key, old_keys })
}

fn video_base_url<F: Fn(&str) -> Option<String>>(src: &Source<F>) -> Result<String, ConfigError> {
    let url = src
        .get("DOSSIER_VIDEO_BASE_URL")
        .unwrap_or_else(|| "https://meet.example/".into());
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid(
            "DOSSIER_VIDEO_BASE_URL",
            format!("expected an http(s) URL, got {url:?}"),
        ));
    }
    // The room name is appended as the last path segment.
    Ok(if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    })
}

fn email<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
) -> Result<Option<EmailSettings>, ConfigError> {
    let Some(smtp_url) = src.get("DOSSIER_SMTP_URL") else {
        return Ok(None);
    };
    // Parsed here so a bad URL stops the start, not the first mail.
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&smtp_url).map_err(|e| {
        invalid(
            "DOSSIER_SMTP_URL",
            format!("expected smtp://[user:pass@]host[:port] or smtps://…: {e}"),
        )
    })?;
    let from = src
        .get("DOSSIER_EMAIL_FROM")
        .unwrap_or_else(|| "Dossier <no-reply@dossier.localhost>".into());
    let from = from.parse().map_err(|e| {
        invalid(
            "DOSSIER_EMAIL_FROM",
            format!("expected an address such as \"Dossier <no-reply@example.com>\": {e}"),
        )
    })?;
    let retry_base_ms = src.positive("DOSSIER_EMAIL_RETRY_BASE_MS", 30_000)?;
    Ok(Some(EmailSettings {
        smtp_url,
        from,
        retry_base: Duration::from_millis(retry_base_ms.into()),
        max_attempts: src.positive("DOSSIER_EMAIL_MAX_ATTEMPTS", 8)?,
    }))
}

/// The `AWS_*` variables an S3-compatible store is configured with.
const S3_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
];

fn storage<F: Fn(&str) -> Option<String>>(src: &Source<F>) -> Result<StorageSettings, ConfigError> {
    match src.get("DOSSIER_STORAGE_URL") {
        Some(url) if url.starts_with("s3://") && url.len() > "s3://".len() => {
            // object_store's builder takes these keys lower-cased.
            let options = S3_VARIABLES
                .iter()
                .filter_map(|name| src.get(name).map(|v| (name.to_ascii_lowercase(), v)))
                .collect();
            Ok(StorageSettings::S3 { url, options })
        }
        Some(url) => Err(invalid(
            "DOSSIER_STORAGE_URL",
            format!("expected s3://bucket[/prefix], got {url:?}"),
        )),
        None => Ok(StorageSettings::Directory(PathBuf::from(
            src.get("DOSSIER_STORAGE_DIR")
                .unwrap_or_else(|| "data/files".into()),
        ))),
    }
}

/// `DOSSIER_TRUSTED_PROXIES`: addresses or networks, comma-separated (`10.0.0.0/8, ::1`).
fn trusted_proxies<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(raw) = src.get("DOSSIER_TRUSTED_PROXIES") else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(ipv4_mapped_as_ipv4)
                .map_err(|_| {
                    invalid(
                        "DOSSIER_TRUSTED_PROXIES",
                        format!("{entry:?} is not an address or a network such as 10.0.0.0/8"),
                    )
                })
        })
        .collect()
}

/// `::ffff:10.0.0.0/104` as `10.0.0.0/8`: the throttle sees IPv4-mapped peers as plain IPv4.
fn ipv4_mapped_as_ipv4(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(ipnet::IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

fn cors_origins<F: Fn(&str) -> Option<String>>(
    src: &Source<F>,
    environment: Environment,
) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = src.get("DOSSIER_CORS_ORIGINS") else {
        return Ok(Vec::new());
    };
    let mut origins = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if origin == "*" {
            if environment == Environment::Production {
                return Err(invalid(
                    "DOSSIER_CORS_ORIGINS",
                    "\"*\" is not allowed in production; list the origins",
                ));
            }
        } else if !(origin.starts_with("http://") || origin.starts_with("https://"))
            || origin.ends_with('/')
        {
            return Err(invalid(
                "DOSSIER_CORS_ORIGINS",
                format!("{origin:?} is not an origin such as https://app.example"),
            ));
        }
        origins.push(origin.to_owned());
    }
    Ok(origins)
}
