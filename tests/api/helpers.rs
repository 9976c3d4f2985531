use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_http::Request;
use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use diesel::connection::{Connection, InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use dossier::app::{AppState, build_app};
use dossier::config::{Settings, Source};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256!";
/// Seals webhook secrets and stored answers in every test's database (`sealing`).
pub const SECRETS_KEY: &str = "lk+mCqDkdkSVCWqcsFDBS8CzFgv5+WsOoYJpVEM5tVw=";
pub const PASSWORD: &str = "correct horse battery staple";

/// A database of its own: a temporary SQLite file, or a PostgreSQL database dropped at the end.
pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn new() -> TestDb {
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(admin_url) => {
                let name = format!("dossier_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn =
                    PgConnection::establish(&admin_url).expect("TEST_DATABASE_URL answers");
                // A natural-language collation, as production databases have: the server
                // must not lean on the byte order of the test server's default (C.UTF-8).
                conn.batch_execute(&format!(
                    "CREATE DATABASE {name} TEMPLATE template0 \
                     LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
                ))
                .expect("create test database");
                let (base, _) = admin_url.rsplit_once('/').expect("URL names a database");
                let url = format!("{base}/{name}");
                TestDb::Postgres {
                    admin_url,
                    name,
                    url,
                }
            }
            None => TestDb::new_sqlite(),
        }
    }

    pub fn new_sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/dossier.db", dir.path().display());
        TestDb::Sqlite { _dir: dir, url }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
            && let Ok(mut conn) = PgConnection::establish(admin_url)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

pub fn settings(db_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", db_url),
        ("DOSSIER_JWT_SECRET", SECRET),
        ("DOSSIER_SECRETS_KEY", SECRETS_KEY),
        ("DOSSIER_LOGIN_MAX_FAILURES_PER_ACCOUNT", "3"),
        ("DOSSIER_LOGIN_MAX_FAILURES_PER_ADDRESS", "6"),
        ("DOSSIER_DB_POOL_SIZE", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_source(&Source(|name| vars.get(name).cloned())).expect("valid test settings")
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Vary` value, lower-cased.
    pub fn varies(&self) -> Vec<String> {
        self.headers
            .get_all("vary")
            .flat_map(|v| v.to_str().unwrap().split(','))
            .map(|v| v.trim().to_ascii_lowercase())
            .collect()
    }

    /// Asserts a problem document with this status and code, and returns its body.
    pub fn assert_problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["type"], format!("urn:dossier:problem:{code}"));
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        assert!(self.body["request_id"].is_string());
        &self.body
    }

    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        &self.body
    }
}

/// The app under test as `spawn` builds it, the bound every helper puts on its service.
pub trait AppService:
    Service<Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
{
}

impl<S> AppService for S where
    S: Service<Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
{
}

pub struct TestApp<S> {
    pub service: S,
    pub state: web::Data<AppState>,
    // Kept so the database lives as long as the app (dropped with the last app on it).
    pub _db: Arc<TestDb>,
    /// The attachment store's folder, of this test alone.
    pub files: Arc<tempfile::TempDir>,
}

pub async fn spawn() -> TestApp<impl AppService> {
    spawn_with(&[]).await
}

pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp<impl AppService + use<>> {
    let db = Arc::new(TestDb::new());
    let files = Arc::new(tempfile::tempdir().expect("temp dir"));
    serve(db, files, extra).await.expect("the app starts")
}

/// The app on `db` and `files`, once it started as `main` does (`prepare`), or what stopped it.
async fn serve(
    db: Arc<TestDb>,
    files: Arc<tempfile::TempDir>,
    extra: &[(&str, &str)],
) -> Result<TestApp<impl AppService + use<>>, String> {
    let files_dir = files.path().display().to_string();
    let mut extra = extra.to_vec();
    extra.push(("DOSSIER_STORAGE_DIR", &files_dir));
    let state = AppState::new(settings(db.url(), &extra))?;
    state.prepare()?;
    let state = web::Data::new(state);
    let service = test::init_service(build_app(state.clone())).await;
    Ok(TestApp {
        service,
        state,
        _db: db,
        files,
    })
}

impl<S> TestApp<S>
where
    S: AppService,
{
    pub async fn send(&self, req: TestRequest) -> Response {
        self.send_request(
            req.peer_addr("127.0.0.1:40000".parse().unwrap())
                .to_request(),
        )
        .await
    }

    /// [`TestApp::send`] for a request built by hand (a streamed body).
    pub async fn send_request(&self, req: Request) -> Response {
        let res = test::call_service(&self.service, req).await;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = test::read_body(res).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    /// The raw bytes of a response (downloads).
    pub async fn bytes(&self, path: &str, token: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let req = TestRequest::get()
            .uri(path)
            .insert_header(("authorization", format!("Bearer {token}")))
            .to_request();
        let res = test::call_service(&self.service, req).await;
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, test::read_body(res).await.to_vec())
    }

    /// Every item of a list, page after page from `path` (which may carry a query) by each
    /// page's `next_cursor`, in the list's order.
    pub async fn every_item(&self, path: &str, token: &str) -> Vec<Value> {
        let joint = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut next = path.to_owned();
        loop {
            let page = self.get(&next, token).await;
            let page = page.assert_status(200);
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => next = format!("{path}{joint}cursor={cursor}"),
                None => return items,
            }
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.send(
            TestRequest::get()
                .uri(path)
                .insert_header(("authorization", format!("Bearer {token}"))),
        )
        .await
    }

    /// How many items the list at `path` answers `token` with (asserting a 200).
    pub async fn listed(&self, path: &str, token: &str) -> usize {
        let res = self.get(path, token).await;
        res.assert_status(200)["items"].as_array().unwrap().len()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.send(
            TestRequest::post()
                .uri(path)
                .insert_header(("authorization", format!("Bearer {token}")))
                .set_json(body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.send(
            TestRequest::patch()
                .uri(path)
                .insert_header(("authorization", format!("Bearer {token}")))
                .set_json(body),
        )
        .await
    }

    /// Creates a user straight through the CLI's code path and returns its id.
    pub fn create_user(
        &self,
        email: &str,
        role: &str,
        agency_id: Option<&str>,
        admin: bool,
    ) -> String {
        let mut conn = self.state.pool.get().unwrap();
        let input = dossier::cli::new_user_input(
            email.into(),
            PASSWORD.into(),
            dossier::domain::Role::from_code(role).unwrap(),
            agency_id.map(|a| a.parse().unwrap()),
            admin,
            None,
            dossier::domain::Locale::En,
        );
        dossier::cli::create_user(&mut conn, &input).expect("user created")
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.send(
            TestRequest::post()
                .uri("/v1/auth/token")
                .set_json(json!({"email": email, "password": password})),
        )
        .await
    }

    /// Logs in with the test password and returns `member` of the tokens.
    async fn logged_in(&self, email: &str, member: &str) -> String {
        let res = self.login(email, PASSWORD).await;
        res.assert_status(200)[member].as_str().unwrap().to_owned()
    }

    /// Logs in and returns the new session's refresh token.
    pub async fn session(&self, email: &str) -> String {
        self.logged_in(email, "refresh_token").await
    }

    /// `POST /v1/auth/refresh` with this refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        let body = json!({ "refresh_token": refresh_token });
        self.send(TestRequest::post().uri("/v1/auth/refresh").set_json(body))
            .await
    }

    /// `POST /v1/auth/logout` with this refresh token.
    pub async fn logout(&self, refresh_token: &str, everywhere: bool) -> Response {
        let body = json!({ "refresh_token": refresh_token, "everywhere": everywhere });
        self.send(TestRequest::post().uri("/v1/auth/logout").set_json(body))
            .await
    }

    pub async fn token(&self, email: &str) -> String {
        self.logged_in(email, "access_token").await
    }

    /// A platform admin's token.
    pub async fn admin(&self) -> String {
        self.create_user("root@platform.example", "platform", None, true);
        self.token("root@platform.example").await
    }

    pub async fn agency(&self, admin_token: &str, name: &str) -> String {
        let res = self
            .post("/v1/agencies", admin_token, json!({"name": name}))
            .await;
        res.assert_status(201)["id"].as_str().unwrap().to_owned()
    }

    /// Deactivates a user through the API, as platform staff (`admin_token`).
    pub async fn deactivate_user(&self, admin_token: &str, user_id: &str) {
        self.patch(
            &format!("/v1/users/{user_id}"),
            admin_token,
            json!({"active": false}),
        )
        .await
        .assert_status(200);
    }
}

impl<S> TestApp<S>
where
    S: AppService,
{
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Response {
        self.send(
            TestRequest::put()
                .uri(path)
                .insert_header(("authorization", format!("Bearer {token}")))
                .set_json(body),
        )
        .await
    }

    /// A request with extra headers (`If-Match`, `Idempotency-Key`, `Accept-Language`…).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = TestRequest::default()
            .method(method.parse().unwrap())
            .uri(path)
            .insert_header(("authorization", format!("Bearer {token}")));
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        if let Some(body) = body {
            req = req.set_json(body);
        }
        self.send(req).await
    }

    /// A new app on this one's database and files, with these settings beside the tests' own:
    /// the service restarted with another configuration. `Err`: what stopped its start.
    pub async fn restarted_with(
        &self,
        extra: &[(&str, &str)],
    ) -> Result<TestApp<impl AppService + use<S>>, String> {
        serve(self._db.clone(), self.files.clone(), extra).await
    }
}

/// The test database itself, beside the service.
impl<S> TestApp<S> {
    /// Runs SQL straight on the test database (to set up or inspect what the API cannot).
    pub fn sql(&self, statement: &str) {
        let mut conn = self.state.pool.get().unwrap();
        conn.batch_execute(statement).expect("SQL runs");
    }

    /// `statement` after the advisory lock `key` on PostgreSQL (as `db::lock_key` takes it),
    /// for [`Self::while_held`] to hold as a concurrent request holding that lock would.
    pub fn under_lock(&self, key: &str, statement: &str) -> String {
        match self._db.is_postgres() {
            true => format!("SELECT pg_advisory_xact_lock(hashtext('{key}')); {statement}"),
            false => statement.to_owned(),
        }
    }

    /// PostgreSQL backends of this test's database waiting for a lock (a request held up).
    pub fn waiting_on_locks(&self) -> i64 {
        self.count(
            "SELECT COUNT(*) AS n FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
    }

    /// Runs `request` while the statements `held` are written, not yet committed, on a
    /// connection of their own, as a racing write's would be, and commits them once the request
    /// waits for them: on PostgreSQL when a backend is seen waiting on a lock, on SQLite (whose
    /// writer then waits for the write lock) after half a second. On PostgreSQL a request that
    /// never waits fails the test: it did not race the held change.
    pub async fn while_held(
        &self,
        held: &str,
        request: impl std::future::Future<Output = Response>,
    ) -> Response {
        let mut conn = self.state.pool.get().unwrap();
        let postgres = matches!(&*conn, dossier::db::DbConnection::Postgresql(_));
        let begin = if postgres { "BEGIN" } else { "BEGIN IMMEDIATE" };
        conn.batch_execute(&format!("{begin}; {held}")).unwrap();
        let commit = async move {
            let mut waited = false;
            for round in 0..250 {
                actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
                waited = postgres && self.waiting_on_locks() > 0;
                if waited || (!postgres && round == 25) {
                    break;
                }
            }
            conn.batch_execute("COMMIT").unwrap();
            waited
        };
        let (res, waited) = futures_util::future::join(request, commit).await;
        assert!(
            waited || !postgres,
            "the request never waited for the held change: {held}"
        );
        res
    }

    /// Pairs of client and agency whose kept open-case count (`client_open_cases`) differs from
    /// their cases counted afresh: zero when every write kept it right.
    pub fn open_case_counts_off(&self) -> i64 {
        let terminal = dossier::workflow::statuses_where(|s| s.terminal)
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let open = format!("status NOT IN ({terminal})");
        self.count(&format!(
            "SELECT COUNT(*) AS n FROM client_open_cases o WHERE o.open_cases <> \
             (SELECT COUNT(*) FROM cases c WHERE c.client_id = o.client_id \
              AND c.agency_id = o.agency_id AND c.{open})"
        )) + self.count(&format!(
            "SELECT COUNT(*) AS n FROM cases c WHERE c.{open} AND NOT EXISTS \
             (SELECT 1 FROM client_open_cases o WHERE o.client_id = c.client_id \
              AND o.agency_id = c.agency_id)"
        ))
    }

    /// How many rows each of `tables` holds, in order: to show a request wrote nothing.
    pub fn rows_in(&self, tables: &[&str]) -> Vec<i64> {
        tables
            .iter()
            .map(|t| self.count(&format!("SELECT COUNT(*) AS n FROM {t}")))
            .collect()
    }

    /// The text column `t` of each row a query returns, in its order (`NULL`: `None`).
    pub fn texts(&self, query: &str) -> Vec<Option<String>> {
        #[derive(QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            t: Option<String>,
        }
        let mut conn = self.state.pool.get().unwrap();
        diesel::sql_query(query)
            .load::<Text>(&mut *conn)
            .expect("text query runs")
            .into_iter()
            .map(|row| row.t)
            .collect()
    }

    /// A single number from the test database.
    pub fn count(&self, query: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.state.pool.get().unwrap();
        diesel::sql_query(query)
            .get_result::<Count>(&mut *conn)
            .expect("count query runs")
            .n
    }

    /// Starts recording the statements the pool's connection and SQLite's writer run (spawn
    /// the app with `DOSSIER_DB_POOL_SIZE=1`, so the pool's is the only one).
    pub fn record_statements(&self) -> Statements {
        let statements = Statements::default();
        let recorder = |sink: Arc<Mutex<Option<Vec<String>>>>| {
            move |event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::StartQuery { query, .. } = event
                    && let Some(sent) = sink.lock().unwrap().as_mut()
                {
                    let sql = query.to_string();
                    let sql = sql.split(" -- binds: ").next().unwrap_or_default();
                    sent.push(sql.to_owned());
                }
            }
        };
        let pool = &self.state.pool;
        let mut conn = pool.get().unwrap();
        conn.set_instrumentation(recorder(statements.0.clone()));
        pool.instrument_sqlite_writer(recorder(statements.0.clone()))
            .unwrap();
        statements
    }
}

/// The SQL of each statement run between [`Statements::start`] and [`Statements::take`].
#[derive(Clone, Default)]
pub struct Statements(Arc<Mutex<Option<Vec<String>>>>);

impl Statements {
    pub fn start(&self) {
        *self.0.lock().unwrap() = Some(Vec::new());
    }

    pub fn take(&self) -> Vec<String> {
        self.0.lock().unwrap().take().expect("started")
    }

    /// [`Statements::take`] without the identifiers' quotes, which the engines write apart
    /// (`` `cases` `` on SQLite, `"cases"` on PostgreSQL), so one text matches both.
    pub fn take_unquoted(&self) -> Vec<String> {
        self.take()
            .iter()
            .map(|sql| sql.replace(['`', '"'], ""))
            .collect()
    }
}
