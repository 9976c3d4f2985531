//! The benchmark dataset, written straight into the database: agencies with staff and a service
//! each, clients, cases in every working status, and messages and storyline events on a tenth of
//! the cases. Ids follow a pattern so the load generator can pick random cases of one agency or
//! one client with a regular expression. Shared by `bench_seed` and the query-plan test.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Datelike, Duration, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use dossier::db::DbConnection;
use serde_json::{Value, json};

const AGENCIES: u64 = 50;
const CLIENTS: u64 = 10_000;
const OPERATORS: u64 = 4;
const AGENTS: u64 = 5;
const PASSWORD: &str = "bench-password-1";
/// Rows per INSERT statement.
const CHUNK: usize = 500;

fn id(kind: char, n: u64) -> String {
    format!("00000000-0000-7000-{kind}000-{n:012}")
}
fn case_id(i: u64) -> String {
    id('8', i)
}
fn agency_id(a: u64) -> String {
    id('a', a)
}
fn staff_id(a: u64, k: u64) -> String {
    id('b', a * 100 + k)
}
fn client_id(c: u64) -> String {
    id('c', c)
}
fn service_id(a: u64) -> String {
    id('d', a)
}

/// Statuses by hundreds of case numbers: 60% in progress, the rest spread over the others.
fn status(i: u64) -> &'static str {
    match (i / 100) % 10 {
        0..=5 => "in_progress",
        6 => "in_approval",
        7 => "suspended",
        8 => "completed",
        _ => "closed",
    }
}

/// Inserts rows in multi-row statements (one transaction around the whole seed).
struct Inserter<'a> {
    conn: &'a mut DbConnection,
    head: String,
    rows: Vec<String>,
}

impl<'a> Inserter<'a> {
    fn new(conn: &'a mut DbConnection, table: &str, columns: &str) -> Self {
        Inserter {
            conn,
            head: format!("INSERT INTO {table} ({columns}) VALUES "),
            rows: Vec::with_capacity(CHUNK),
        }
    }

    fn row(&mut self, values: String) {
        self.rows.push(values);
        if self.rows.len() == CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.rows.is_empty() {
            return;
        }
        let sql = format!("{}{}", self.head, self.rows.join(","));
        self.conn.batch_execute(&sql).expect("insert");
        self.rows.clear();
    }
}

impl Drop for Inserter<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

fn ts(t: NaiveDateTime) -> String {
    format!("'{}'", t.format("%Y-%m-%d %H:%M:%S"))
}

/// Seeds `cases` cases (a power of ten, 10 000 or more) and what surrounds them into a migrated,
/// empty database; returns what the benchmark needs to know about them.
pub fn seed(conn: &mut DbConnection, cases: u64) -> Value {
    let digits = cases.ilog10();
    assert!(
        cases >= 10_000 && 10u64.pow(digits) == cases,
        "cases must be a power of ten, at least 10 000"
    );
    let started = Instant::now();
    let hash = dossier::auth::password::hash(PASSWORD).expect("hash");
    let now = Utc::now().naive_utc();
    let t0 = ts(now);
    conn.batch_execute("BEGIN").unwrap();
    {
        let mut agencies = Inserter::new(
            conn,
            "agencies",
            "id, name, contact_email, active, version, created_at, updated_at",
        );
        for a in 0..AGENCIES {
            agencies.row(format!(
                "('{}', 'Agency {a}', 'desk@agency{a}.bench', TRUE, 1, {t0}, {t0})",
                agency_id(a)
            ));
        }
    }
    {
        let cols = "id, email, name, role, agency_id, is_admin, locale, active, password_hash, \
                    version, created_at, updated_at";
        let mut users = Inserter::new(conn, "users", cols);
        users.row(format!(
            "('{}', 'admin@platform.bench', 'Platform admin', 'platform', NULL, TRUE, 'en', TRUE, \
             '{hash}', 1, {t0}, {t0})",
            id('e', 0)
        ));
        for a in 0..AGENCIES {
            let agency = agency_id(a);
            users.row(format!(
                "('{}', 'admin@agency{a}.bench', 'Admin {a}', 'agency', '{agency}', TRUE, 'it', \
                 TRUE, '{hash}', 1, {t0}, {t0})",
                staff_id(a, 0)
            ));
            for k in 0..OPERATORS {
                users.row(format!(
                    "('{}', 'op{k}@agency{a}.bench', 'Operator {a}.{k}', 'agency', '{agency}', \
                     FALSE, 'it', TRUE, '{hash}', 1, {t0}, {t0})",
                    staff_id(a, 1 + k)
                ));
            }
            for k in 0..AGENTS {
                users.row(format!(
                    "('{}', 'agent{k}@agency{a}.bench', 'Agent {a}.{k}', 'agent', '{agency}', \
                     FALSE, 'it', TRUE, '{hash}', 1, {t0}, {t0})",
                    staff_id(a, 10 + k)
                ));
            }
        }
        let locales = ["en", "it", "es", "pl"];
        for c in 0..CLIENTS {
            users.row(format!(
                "('{}', 'client{c}@clients.bench', 'Client {c}', 'client', NULL, FALSE, '{}', \
                 TRUE, '{hash}', 1, {t0}, {t0})",
                client_id(c),
                locales[(c % 4) as usize]
            ));
        }
    }
    {
        let cols = "id, agency_id, title, description, price_minor, currency, active, \
                    default_priority, required_data_template, version, created_at, updated_at";
        let mut services = Inserter::new(conn, "services", cols);
        for a in 0..AGENCIES {
            services.row(format!(
                "('{}', '{}', 'Surveillance', 'Who, where, when.', 150000, 'EUR', TRUE, 'normal', \
                 '[]', 1, {t0}, {t0})",
                service_id(a),
                agency_id(a)
            ));
        }
    }
    let year = now.year();
    conn.batch_execute(&format!(
        "INSERT INTO case_counters (year, last) VALUES ({year}, {cases})"
    ))
    .unwrap();
    let first = now - Duration::seconds(cases as i64 + 3600);
    let priorities = ["low", "normal", "normal", "high", "urgent"];
    {
        let cols = "id, number, title, description, service_id, agency_id, client_id, status, \
                    priority, payment_method, payment_state, assignee_id, disputed, version, \
                    created_at, updated_at, closed_at";
        let mut rows = Inserter::new(conn, "cases", cols);
        for i in 0..cases {
            let a = i % AGENCIES;
            let status = status(i);
            let created = ts(first + Duration::seconds(i as i64));
            let assignee = if status == "in_approval" {
                "NULL".to_owned()
            } else {
                format!("'{}'", staff_id(a, 1 + (i / AGENCIES) % OPERATORS))
            };
            let closed = if status == "closed" {
                created.clone()
            } else {
                "NULL".into()
            };
            rows.row(format!(
                "('{}', 'DOS-{year}-{:06}', 'Case {i}', 'Where does he go on Fridays?', '{}', '{}', \
                 '{}', '{status}', '{}', 'card', 'paid', {assignee}, FALSE, 1, {created}, \
                 {created}, {closed})",
                case_id(i),
                i + 1,
                service_id(a),
                agency_id(a),
                client_id(i % CLIENTS),
                priorities[(i % 5) as usize],
            ));
        }
    }
    // The open-case counts the server keeps per client and agency (as its migration fills them).
    let terminal = dossier::workflow::statuses_where(|s| s.terminal)
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    conn.batch_execute(&format!(
        "INSERT INTO client_open_cases (client_id, agency_id, open_cases) \
         SELECT client_id, agency_id, COUNT(*) FROM cases \
         WHERE status NOT IN ({terminal}) GROUP BY client_id, agency_id"
    ))
    .expect("open-case counts");
    {
        let mut rows = Inserter::new(conn, "case_agents", "case_id, user_id, assigned_at");
        for i in (0..cases).filter(|&i| status(i) == "in_progress") {
            let agent = staff_id(i % AGENCIES, 10 + (i / AGENCIES) % AGENTS);
            rows.row(format!("('{}', '{agent}', {t0})", case_id(i)));
        }
    }
    // A tenth of the cases have a conversation and a storyline.
    let talkative = || (0..cases).step_by(10);
    let mut n = 0u64;
    {
        let cols = "id, case_id, sender_id, sender_role, direction, channel, internal, body, \
                    attachment_ids, created_at";
        let mut rows = Inserter::new(conn, "messages", cols);
        for i in talkative() {
            let created = first + Duration::seconds(i as i64);
            for m in 0..10u64 {
                let (sender, role, direction) = if m % 2 == 0 {
                    (client_id(i % CLIENTS), "client", "inbound")
                } else {
                    (
                        staff_id(i % AGENCIES, 1 + (i / AGENCIES) % OPERATORS),
                        "agency",
                        "outbound",
                    )
                };
                rows.row(format!(
                    "('{}', '{}', '{sender}', '{role}', '{direction}', 'in_app', FALSE, \
                     'Message {m} on case {i}: any news about Friday?', '[]', {})",
                    id('f', n),
                    case_id(i),
                    ts(created + Duration::minutes(m as i64))
                ));
                n += 1;
            }
        }
    }
    let mut e = 0u64;
    {
        let cols = "id, case_id, occurred_at, kind, title, body, latitude, longitude, place_name, \
                    attachment_ids, author_id, status, version, created_at, updated_at";
        let mut rows = Inserter::new(conn, "storyline_events", cols);
        for i in talkative() {
            let created = first + Duration::seconds(i as i64);
            let agent = staff_id(i % AGENCIES, 10 + (i / AGENCIES) % AGENTS);
            for k in 0..8u64 {
                let at = ts(created + Duration::hours(k as i64));
                let (lat, lon) = (45.46 + k as f64 * 0.003, 9.19 + k as f64 * 0.004);
                rows.row(format!(
                    "('{}', '{}', {at}, 'sighting', 'Seen at stop {k}', 'Left at {k}:00.', {lat}, \
                     {lon}, 'Via Example {k}, Milano', '[]', '{agent}', 'published', 1, {at}, {at})",
                    id('9', e),
                    case_id(i)
                ));
                e += 1;
            }
        }
    }
    {
        // The bell: the client and the assignee heard of each talkative case's last message.
        let cols = "id, user_id, case_id, event, title, body, created_at, read_at";
        let mut rows = Inserter::new(conn, "notifications", cols);
        for (k, i) in talkative().enumerate() {
            let at = ts(first + Duration::seconds(i as i64) + Duration::minutes(10));
            let operator = staff_id(i % AGENCIES, 1 + (i / AGENCIES) % OPERATORS);
            for (j, user) in [client_id(i % CLIENTS), operator].iter().enumerate() {
                rows.row(format!(
                    "('{}', '{user}', '{}', 'message_received', 'New message on DOS-{year}-{:06}', \
                     'Any news about Friday?', {at}, NULL)",
                    id('7', 2 * k as u64 + j as u64),
                    case_id(i),
                    i + 1
                ));
            }
        }
    }
    conn.batch_execute("COMMIT").unwrap();
    // PostgreSQL's autovacuum would gather statistics; SQLite plans from those its migrations
    // ship, as a database the app created does (migration 42).
    if matches!(conn, DbConnection::Postgresql(_)) {
        conn.batch_execute("ANALYZE").unwrap();
    } else {
        conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }

    // The platform admin's list of cases in progress, newest first: the cursor that reaches
    // `depth` rows deep (the last id of the page before): 50 000 from 100 000 cases up, five
    // sixths of the list below that.
    let in_progress = (0..cases).filter(|&i| status(i) == "in_progress").count() as u64;
    let depth = 50_000.min(in_progress * 5 / 6);
    let deep = (0..cases)
        .rev()
        .filter(|&i| status(i) == "in_progress")
        .nth(depth as usize - 1)
        .unwrap();
    let pad = "0".repeat(12 - digits as usize);
    let any = |n: u32| format!("[0-9]{{{n}}}");
    let prefix = "00000000-0000-7000-8000-";
    json!({
        "cases": cases,
        "messages": n,
        "storyline_events": e,
        "seconds": started.elapsed().as_secs_f64(),
        "password": PASSWORD,
        "platform": "admin@platform.bench",
        "operator": "op0@agency0.bench",
        "client": "client0@clients.bench",
        "service_id": service_id(0),
        "list_depth": depth,
        // Cursors are the last key of the page before, base64url-encoded.
        "deep_cursor": URL_SAFE_NO_PAD.encode(case_id(deep)),
        // Agency 0 owns the cases whose number ends in 00 or 50; client 0 those ending in 0000.
        "agency_case_regex": format!("{prefix}{pad}{}(00|50)", any(digits - 2)),
        "client_case_regex": format!("{prefix}{pad}{}0000", any(digits - 4)),
        // Agency 0's cases in progress (hundreds digit 0–5): they take messages.
        "open_case_regex": format!("{prefix}{pad}{}[0-5](00|50)", any(digits - 3)),
        // Agency 0's cases in progress, listed, for the suspend/resume pairs.
        "open_cases": (0..cases)
            .step_by(AGENCIES as usize)
            .filter(|&i| status(i) == "in_progress")
            .map(case_id)
            .collect::<Vec<_>>(),
    })
}
