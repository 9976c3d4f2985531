//! Query plans as tests: on the benchmark dataset (10 000 cases), every SELECT that the case
//! list (each filter), the card, messages, storyline, audit and rule-log routes run is
//! explained by the engine, and the test fails when one scans a whole large table, or when the
//! unread count of the card or of a list page reads the messages from the start instead of from
//! the reader's read mark.
//!
//! The statements are the app's own: the pool has one connection, instrumented to record the
//! SQL of each query while a request runs through HTTP.

#[path = "../../bench/dataset.rs"]
mod dataset;

use diesel::prelude::*;
use diesel::sql_types::Text;
use dossier::db::DbConnection;

use crate::helpers::{AppService, spawn_with};

/// Tables big enough that scanning one whole is a defect (agencies, services, webhooks and
/// triggers, at most 20 and 50 an owner, stay small).
const LARGE: &[&str] = &[
    "cases",
    "users",
    "messages",
    "storyline_events",
    "audit_log",
    "case_agents",
    "notifications",
    "client_open_cases",
    "rule_log",
    "tickets",
    "ticket_messages",
    "ticket_attachments",
    "sla_clocks",
    "ticket_sla_clocks",
    "webhook_deliveries",
    "case_tags",
];

#[derive(QueryableByName)]
struct SqlitePlanRow {
    #[diesel(sql_type = Text)]
    detail: String,
}

#[derive(QueryableByName)]
struct PgPlanRow {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "QUERY PLAN")]
    line: String,
}

/// The plan of `sql` (placeholders unbound: the plan must not depend on the values).
fn explain(conn: &mut DbConnection, sql: &str) -> Vec<String> {
    match conn {
        DbConnection::Sqlite(_) => diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load::<SqlitePlanRow>(conn)
            .unwrap_or_else(|e| panic!("explain {sql}: {e}"))
            .into_iter()
            .map(|r| r.detail)
            .collect(),
        DbConnection::Postgresql(_) => {
            // A generic plan: the one PostgreSQL uses for any values of the parameters.
            let params = (1..100)
                .take_while(|n| sql.contains(&format!("${n}")))
                .count();
            let nulls = vec!["NULL"; params].join(", ");
            diesel::sql_query("SET plan_cache_mode = force_generic_plan")
                .execute(conn)
                .unwrap();
            diesel::sql_query(format!("PREPARE probe AS {sql}"))
                .execute(conn)
                .unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
            let explain = if params == 0 {
                "EXPLAIN EXECUTE probe".to_owned()
            } else {
                format!("EXPLAIN EXECUTE probe({nulls})")
            };
            let plan = diesel::sql_query(explain)
                .load::<PgPlanRow>(conn)
                .unwrap_or_else(|e| panic!("explain {sql}: {e}"))
                .into_iter()
                .map(|r| r.line)
                .collect();
            diesel::sql_query("DEALLOCATE probe").execute(conn).unwrap();
            plan
        }
    }
}

/// The plan lines of `sql` that read a large table whole.
fn whole_scans(sql: &str, plan: &[String]) -> Vec<String> {
    plan.iter()
        .filter(|line| {
            let line = line.trim().trim_start_matches("->").trim();
            LARGE.iter().any(|table| {
                // SQLite: "SCAN cases" (no index at all); PostgreSQL: "Seq Scan on cases".
                (line == format!("SCAN {table}") && !walks_primary_key(sql, plan, table))
                    || line.starts_with(&format!("Seq Scan on {table} "))
                    || line == format!("Seq Scan on {table}")
            })
        })
        .cloned()
        .collect()
}

/// Whether a plan reads a case's messages from a lower bound on their id, along the primary
/// key `(case_id, id)`: SQLite's `SEARCH messages USING PRIMARY KEY (case_id=? AND id>?)`,
/// PostgreSQL's scan of `messages_pkey` with the bound in its index condition (the other
/// index, `(case_id, internal, id, …)`, would check it entry by entry).
fn starts_at_the_mark(plan: &[String]) -> bool {
    plan.iter()
        .any(|line| line.contains("SEARCH messages USING PRIMARY KEY (case_id=? AND id>?)"))
        || plan.windows(2).any(|pair| {
            pair[0].contains("using messages_pkey on messages")
                && pair[1].contains("Index Cond:")
                && pair[1].contains("(case_id = ")
                && pair[1].contains("(id > ")
        })
}

/// Whether a plan finds the cases of a tag through an index of `case_tags` (a filter on the
/// case row's JSON `tags` would walk the cases until a page is full): for an agency's staff its
/// own `(agency_id, tag, case_id)`, not the primary key `(tag, case_id)`, whose range holds
/// every agency's cases with that label.
fn searches_case_tags(plan: &[String], by_agency: bool) -> bool {
    let (sqlite, index, condition) = match by_agency {
        true => (
            "SEARCH case_tags USING COVERING INDEX case_tags_agency_idx (agency_id=? AND tag=?",
            // An index or a bitmap scan, the tags checked in its range or on it.
            "case_tags_agency_idx",
            "agency_id = ",
        ),
        false => (
            "SEARCH case_tags USING PRIMARY KEY (tag=?",
            "using case_tags_pkey on case_tags",
            "(tag = ",
        ),
    };
    plan.iter().any(|line| line.contains(sqlite))
        || plan.windows(2).any(|pair| {
            pair[0].contains(index)
                && pair[1].contains("Index Cond: ")
                && pair[1].contains(condition)
        })
}

/// Whether a plan finds a webhook's deliveries in one state through their own index, not by
/// walking all of the webhook's deliveries for the few in that state.
fn searches_deliveries_by_status(plan: &[String]) -> bool {
    plan.iter().any(|line| {
        line.contains(
            "USING INDEX webhook_deliveries_webhook_status_idx (webhook_id=? AND status=?",
        ) || line.contains("using webhook_deliveries_webhook_status_idx on webhook_deliveries")
    })
}

/// Whether `sql` reads `table` first, in the order of its primary key, and stops at the
/// statement's own LIMIT with no sort: SQLite names that walk of a WITHOUT ROWID table
/// "SCAN table", like a whole scan.
fn walks_primary_key(sql: &str, plan: &[String], table: &str) -> bool {
    // The statement's own ORDER BY is its last one, with no subquery's parenthesis after it.
    let order = sql.rsplit_once(" ORDER BY ").map_or("", |(_, order)| order);
    plan.first()
        .is_some_and(|first| first.trim() == format!("SCAN {table}"))
        && order.starts_with(&format!("`{table}`.`id`"))
        && order.contains(" LIMIT ")
        && !order.contains(')')
        && !plan.iter().any(|line| line.contains("USE TEMP B-TREE"))
}

/// Indexes over the whole platform by a filter's value alone: on SQLite a caller with a scope
/// of their own (an agency, a client) must reach their rows through the scope's index, or a
/// rare scope walks every row of the platform with that value (as SQLite without statistics
/// did). PostgreSQL may choose one for a value its statistics know to be rare.
const PLATFORM_WIDE: &[&str] = &[
    "cases_status_idx",
    "cases_priority_idx",
    "cases_sla_state_idx",
    "tickets_status_idx",
    "tickets_sla_state_idx",
    "audit_log_action_idx",
    "users_role_idx",
];

fn platform_wide(plan: &[String]) -> Vec<&'static str> {
    PLATFORM_WIDE
        .iter()
        .copied()
        .filter(|index| {
            plan.iter().any(|line| {
                line.contains(&format!("INDEX {index} ")) || line.contains(&format!(" {index} on "))
            })
        })
        .collect()
}

/// A webhook of agency 0, for its deliveries' list.
const WEBHOOK: &str = "00000000-0000-7000-e000-000000000001";

#[actix_web::test]
async fn no_listed_query_scans_a_whole_large_table() {
    let app = spawn_with(&[("DOSSIER_DB_POOL_SIZE", "1")]).await;
    let seed = {
        let mut conn = app.state.pool.get().unwrap();
        let seed = dataset::seed(&mut conn, 10_000);
        seed_audit_rows(&mut conn);
        seed_rule_log(&mut conn);
        seed_tickets(&mut conn);
        seed_sla_webhooks_and_tags(&mut conn);
        seed
    };
    let recorded = app.record_statements();
    let password = seed["password"].as_str().unwrap();
    let platform = token(&app, "admin@platform.bench", password).await;
    let admin = token(&app, "admin@agency0.bench", password).await;
    let operator = token(&app, "op0@agency0.bench", password).await;
    let client = token(&app, "client0@clients.bench", password).await;
    let case = "00000000-0000-7000-8000-000000000000";
    let operator_id = "00000000-0000-7000-b000-000000000001";
    let client_id = "00000000-0000-7000-c000-000000000000";
    let deep = seed["deep_cursor"].as_str().unwrap();
    // The same row's cursor oldest first (its key marked so).
    let deep_upwards = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let id = String::from_utf8(engine.decode(deep).unwrap()).unwrap();
        engine.encode(format!("oldest_{id}"))
    };
    let requests: Vec<(&str, String)> = vec![
        (&platform, "/v1/cases".into()),
        (&platform, "/v1/cases?status=in_progress".into()),
        (
            &platform,
            format!("/v1/cases?status=in_progress&cursor={deep}"),
        ),
        (
            &platform,
            format!("/v1/cases?status=in_progress&sort=oldest&cursor={deep_upwards}"),
        ),
        (&platform, "/v1/cases?status=suspended&status=closed".into()),
        (&platform, "/v1/cases?priority=urgent".into()),
        (&platform, "/v1/cases?assignee=none".into()),
        (&platform, format!("/v1/cases?assignee={operator_id}")),
        (&platform, format!("/v1/cases?client_id={client_id}")),
        (
            &platform,
            "/v1/cases?agency_id=00000000-0000-7000-a000-000000000007".into(),
        ),
        (
            &platform,
            "/v1/cases?service_id=00000000-0000-7000-d000-000000000003".into(),
        ),
        (
            &platform,
            "/v1/cases?created_from=2020-01-01T00:00:00Z&created_to=2020-02-01T00:00:00Z".into(),
        ),
        (&operator, "/v1/cases".into()),
        (&operator, "/v1/cases?status=in_progress".into()),
        (&operator, "/v1/cases?assignee=me".into()),
        (&operator, "/v1/cases?assignee=me&sort=oldest".into()),
        (&operator, "/v1/cases?assignee=none".into()),
        (&operator, "/v1/cases?sla=breached".into()),
        (&operator, "/v1/cases?delegated_by=me".into()),
        (&operator, "/v1/cases?priority=urgent".into()),
        (&client, "/v1/cases".into()),
        (&client, "/v1/cases?status=in_progress".into()),
        (&operator, format!("/v1/cases/{case}")),
        (&client, format!("/v1/cases/{case}")),
        (&operator, format!("/v1/cases/{case}/messages")),
        (&client, format!("/v1/cases/{case}/messages")),
        (
            &client,
            format!("/v1/cases/{case}/messages?include=earlier_cases"),
        ),
        (
            &operator,
            format!("/v1/cases/{case}/messages?include=earlier_cases"),
        ),
        (&operator, format!("/v1/cases/{case}/storyline")),
        (
            &client,
            format!("/v1/cases/{case}/storyline?format=geojson"),
        ),
        (&admin, format!("/v1/cases/{case}/audit")),
        (&admin, format!("/v1/cases/{case}/audit?action=create")),
        (&platform, "/v1/audit".into()),
        (&platform, format!("/v1/audit?case_id={case}")),
        (&platform, format!("/v1/audit?actor_id={operator_id}")),
        (&platform, "/v1/audit?action=create".into()),
        (
            &platform,
            "/v1/audit?from=2025-01-01T00:00:00Z&to=2025-02-01T00:00:00Z".into(),
        ),
        (&admin, "/v1/audit?from=2025-01-01T00:00:00Z".into()),
        (&admin, "/v1/audit".into()),
        (&admin, "/v1/audit?action=create".into()),
        (&platform, format!("/v1/audit?entity_id={case}")),
        (&platform, format!("/v1/tickets/{TICKET}/audit")),
        (&admin, format!("/v1/audit?entity_id={AGENCY_TICKET}")),
        (&admin, format!("/v1/tickets/{AGENCY_TICKET}/audit")),
        (&operator, "/v1/notifications".into()),
        (&operator, format!("/v1/cases/{case}/rule-log")),
        (&operator, "/v1/rule-log".into()),
        (&platform, "/v1/rule-log".into()),
        (&platform, "/v1/tickets".into()),
        (&platform, "/v1/tickets?status=open".into()),
        (
            &platform,
            "/v1/tickets?assignee=none&status=new&status=open&status=waiting_on_requester".into(),
        ),
        (&platform, "/v1/tickets?assignee=me".into()),
        (&platform, "/v1/tickets?delegated_by=me".into()),
        (&platform, format!("/v1/tickets?case_id={case}")),
        (&client, "/v1/tickets?number=TKT-C-000000000000".into()),
        (&platform, "/v1/tickets?number=TKT-A-000000000000".into()),
        (&operator, "/v1/tickets".into()),
        (&operator, "/v1/tickets?status=open".into()),
        (&client, "/v1/tickets".into()),
        (&client, "/v1/tickets?status=open".into()),
        (&client, format!("/v1/tickets/{TICKET}")),
        (&client, format!("/v1/tickets/{TICKET}/messages")),
        (&client, format!("/v1/tickets/{TICKET}/attachments")),
        (&admin, "/v1/presence".into()),
        (&admin, "/v1/presence?status=available".into()),
        (&platform, "/v1/presence".into()),
        (&platform, "/v1/cases?sla=breached".into()),
        (&operator, "/v1/cases?sla=at_risk&sla=breached".into()),
        (&operator, format!("/v1/cases/{case}/sla")),
        (&client, format!("/v1/cases/{case}/sla")),
        (&platform, "/v1/tickets?sla=breached".into()),
        (&operator, "/v1/tickets?sla=at_risk&sla=breached".into()),
        (&client, format!("/v1/tickets/{TICKET}/sla")),
        (&admin, "/v1/calendars".into()),
        (&admin, "/v1/sla-policies".into()),
        (&admin, "/v1/webhooks".into()),
        (&admin, format!("/v1/webhooks/{WEBHOOK}/deliveries")),
        (
            &admin,
            format!("/v1/webhooks/{WEBHOOK}/deliveries?status=dead"),
        ),
        (&admin, "/v1/triggers".into()),
        (&operator, "/v1/cases?tag=vip".into()),
        (
            &platform,
            "/v1/cases?tag=vip&tag=gold&status=in_progress".into(),
        ),
        (
            &platform,
            "/v1/cases?agency_id=00000000-0000-7000-a000-000000000007&tag=vip".into(),
        ),
    ];
    let mut failures = Vec::new();
    let mut explained = 0;
    // The card and a list page count unread messages from the reader's read mark on (a range
    // of the messages' key), not by looking the mark up again for each message of the case.
    let counted_from_the_mark = [format!("/v1/cases/{case}"), "/v1/cases".to_owned()];
    let mut count_plans: Vec<Vec<String>> = vec![Vec::new(); counted_from_the_mark.len()];
    // By path, and whether it asks for one agency's (its staff, or `agency_id`).
    let mut tag_plans: std::collections::BTreeMap<(String, bool), Vec<String>> = Default::default();
    let mut status_plan = Vec::new();
    let mut number_plan = Vec::new();
    let mut entity_plans: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut range_plans: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut agency_view_plans: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (token, path) in &requests {
        recorded.start();
        let res = app.get(path, token).await;
        let statements: Vec<String> = recorded
            .take()
            .into_iter()
            .filter(|sql| sql.trim_start().starts_with("SELECT"))
            .collect();
        res.assert_status(200);
        assert!(!statements.is_empty(), "{path} ran no query");
        let mut conn = app.state.pool.get().unwrap();
        for sql in statements {
            let plan = explain(&mut conn, &sql);
            explained += 1;
            let scans = whole_scans(&sql, &plan);
            if !scans.is_empty() {
                failures.push(format!("{path}\n  {sql}\n  {}", plan.join("\n  ")));
            }
            let wide = platform_wide(&plan);
            if **token != platform && !wide.is_empty() && !app._db.is_postgres() {
                failures.push(format!(
                    "{path}: a scoped caller's rows through {wide:?}\n  {sql}\n  {}",
                    plan.join("\n  ")
                ));
            }
            if path.contains("deliveries?status=") {
                status_plan.extend(plan.clone());
            }
            if **token == platform && path.contains("tickets?number=") {
                number_plan.extend(plan.clone());
            }
            if path.contains("entity_id=")
                || path.starts_with("/v1/tickets/") && path.ends_with("/audit")
            {
                entity_plans
                    .entry(path.clone())
                    .or_default()
                    .extend(plan.clone());
            }
            if path.starts_with("/v1/audit?from=") {
                range_plans
                    .entry(path.clone())
                    .or_default()
                    .extend(plan.clone());
            }
            // One value each: for several SLA states SQLite walks the agency's cases in id
            // order, which the page's LIMIT stops, rather than merge and sort several ranges.
            let agency_view = [
                "/v1/cases?assignee=none",
                "/v1/cases?priority=",
                "/v1/cases?sla=",
            ]
            .iter()
            .any(|view| path.starts_with(view))
                && !path.contains('&');
            if **token == operator && agency_view {
                agency_view_plans
                    .entry(path.clone())
                    .or_default()
                    .extend(plan.clone());
            }
            if path.contains("tag=") {
                let one_agency = **token == operator || path.contains("agency_id=");
                tag_plans
                    .entry((path.clone(), one_agency))
                    .or_default()
                    .extend(plan.clone());
            }
            if let Some(i) = counted_from_the_mark.iter().position(|p| p == path) {
                count_plans[i].extend(plan);
            }
        }
    }
    // The workers' walks: the SLA rule's of the cases whose warning or breach is due, the
    // webhook worker's of the deliveries due.
    recorded.start();
    dossier::sla::settle_due(&app.state).await.unwrap();
    dossier::webhooks::deliver_due(&app.state).await.unwrap();
    let walk: Vec<String> = recorded
        .take()
        .into_iter()
        .filter(|sql| sql.trim_start().starts_with("SELECT"))
        .collect();
    assert!(
        walk.iter().any(|sql| sql.contains("sla_next_at")),
        "{walk:?}"
    );
    let mut conn = app.state.pool.get().unwrap();
    for sql in walk {
        let plan = explain(&mut conn, &sql);
        if !whole_scans(&sql, &plan).is_empty() {
            failures.push(format!("a worker\n  {sql}\n  {}", plan.join("\n  ")));
        }
    }
    drop(conn);
    for (path, plans) in counted_from_the_mark.iter().zip(&count_plans) {
        assert!(
            starts_at_the_mark(plans),
            "{path}: the unread count reads every message of the case:\n  {}",
            plans.join("\n  ")
        );
    }
    // An operator's "to assign", priority and SLA views seek their own range of the agency's
    // cases (on SQLite, whose statistics are fixed; PostgreSQL's follow its data).
    assert_eq!(agency_view_plans.len(), 3);
    for (path, plan) in agency_view_plans.iter().filter(|_| !app._db.is_postgres()) {
        let by_agency = ["assignee", "priority", "sla_state"]
            .map(|column| format!("cases_agency_{column}_idx"));
        assert!(
            plan.iter()
                .any(|line| by_agency.iter().any(|index| line.contains(index.as_str()))),
            "{path} walks the agency's cases for the few that match:\n  {}",
            plan.join("\n  ")
        );
    }
    assert_eq!(tag_plans.len(), 3);
    for ((path, by_agency), plan) in &tag_plans {
        let by_agency = *by_agency;
        assert!(
            searches_case_tags(plan, by_agency),
            "{path}: the tag filter does not search case_tags by tag (by agency: {by_agency}):\n  {}",
            plan.join("\n  ")
        );
    }
    // Every ticket, platform staff's scope: only the number's unique index narrows it.
    assert!(
        number_plan
            .iter()
            .any(|line| line.contains("tickets_number_idx")),
        "the ticket number filter does not use its index:\n  {}",
        number_plan.join("\n  ")
    );
    // One thing's audit rows (a ticket's) are a walk of `(entity_id, seq)`, not of the whole
    // log's `seq` with a filter.
    assert_eq!(entity_plans.len(), 4);
    for (path, plan) in &entity_plans {
        assert!(
            plan.iter()
                .any(|line| line.contains("audit_log_entity_idx")),
            "{path} does not use the audit log's entity index:\n  {}",
            plan.join("\n  ")
        );
    }
    // On SQLite a time range of the audit log is a range of `seq` (found once per request),
    // walked from its newest row: no page sorts the whole range.
    assert_eq!(range_plans.len(), 2);
    for (path, plan) in range_plans.iter().filter(|_| !app._db.is_postgres()) {
        assert!(
            !plan.iter().any(|line| line.contains("TEMP B-TREE")),
            "{path} sorts its range:\n  {}",
            plan.join("\n  ")
        );
    }
    assert!(
        searches_deliveries_by_status(&status_plan),
        "the deliveries' status filter does not use its index:\n  {}",
        status_plan.join("\n  ")
    );
    assert!(explained >= requests.len());
    // The check itself finds a whole scan, on either engine, and on SQLite a walk of the
    // primary key that no LIMIT stops.
    let unindexed = "SELECT id FROM cases WHERE title = 'no such title'";
    let mut conn = app.state.pool.get().unwrap();
    assert!(!whole_scans(unindexed, &explain(&mut conn, unindexed)).is_empty());
    if let DbConnection::Sqlite(_) = &*conn {
        let unlimited = "SELECT `cases`.`id` FROM `cases` ORDER BY `cases`.`id` DESC";
        assert!(!whole_scans(unlimited, &explain(&mut conn, unlimited)).is_empty());
    }
    assert!(
        failures.is_empty(),
        "whole-table scans:\n{}",
        failures.join("\n\n")
    );
}

/// One audit row per case, with its agency (the dataset has none): enough for the audit
/// queries' plans.
fn seed_audit_rows(conn: &mut DbConnection) {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("BEGIN").unwrap();
    for chunk in (0..10_000u64).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|&i| {
                format!(
                    "('00000000-0000-7000-9100-{i:012}', {seq}, 'case', \
                     '00000000-0000-7000-8000-{i:012}', '00000000-0000-7000-8000-{i:012}', \
                     'create', NULL, NULL, NULL, NULL, 'client', 'seed', '2026-01-01 00:00:00', \
                     'x', 'x')",
                    seq = i + 1
                )
            })
            .collect();
        conn.batch_execute(&format!(
            "INSERT INTO audit_log (id, seq, entity, entity_id, case_id, action, field, \
             old_value, new_value, actor_id, actor_role, request_id, created_at, prev_hash, hash) \
             VALUES {}",
            rows.join(",")
        ))
        .unwrap();
    }
    conn.batch_execute(
        "UPDATE audit_log SET agency_id = \
         (SELECT cases.agency_id FROM cases WHERE cases.id = audit_log.case_id)",
    )
    .unwrap();
    conn.batch_execute("COMMIT").unwrap();
    analyzed_as_in_production(conn, &["audit_log"]);
}

/// The client's ticket about the first case.
const TICKET: &str = "00000000-0000-7000-8e00-000000000000";
/// Agency 0's own ticket about the first case.
const AGENCY_TICKET: &str = "00000000-0000-7000-8f00-000000000000";

/// A first-response clock on every case and ticket, a webhook per agency (`WEBHOOK` is agency
/// 0's) and a delivery per case to its agency's (one in a hundred dead, for the state filter).
fn seed_sla_webhooks_and_tags(conn: &mut DbConnection) {
    use diesel::connection::SimpleConnection;
    let policy = "00000000-0000-7000-e100-000000000001";
    let operator = "00000000-0000-7000-b000-000000000001";
    let each = r#"{"first_response": 60, "decision": 60, "resolution": 60}"#;
    let targets =
        format!(r#"{{"low": {each}, "normal": {each}, "high": {each}, "urgent": {each}}}"#);
    conn.batch_execute(&format!(
        "INSERT INTO sla_policies (id, agency_id, name, calendar_id, warning_percent, targets, \
         is_default, created_at) VALUES ('{policy}', NULL, 'Seeded', NULL, 80, '{targets}', FALSE, \
         '2026-01-01 00:00:00'); \
         INSERT INTO sla_clocks (case_id, clock, policy_id, calendar_id, target_secs, warn_secs, \
         started_at, elapsed_secs, running_since, warn_at, due_at, warned_at, breached_at, \
         stopped_at) SELECT id, 'first_response', '{policy}', NULL, 3600, 2880, created_at, 0, \
         created_at, created_at, created_at, NULL, NULL, NULL FROM cases; \
         INSERT INTO ticket_sla_clocks (ticket_id, clock, policy_id, calendar_id, target_secs, \
         warn_secs, started_at, elapsed_secs, running_since, warn_at, due_at, warned_at, \
         breached_at, stopped_at) SELECT id, 'first_response', '{policy}', NULL, 3600, 2880, \
         created_at, 0, created_at, created_at, created_at, NULL, NULL, NULL FROM tickets; \
         INSERT INTO webhooks (id, agency_id, url, secret, events, active, created_by, created_at) \
         SELECT CASE WHEN id = '00000000-0000-7000-a000-000000000000' THEN '{WEBHOOK}' \
         ELSE '00000000-0000-7000-e300-' || substr(id, 25) END, id, 'https://hooks.example/x', \
         'whsec_x', '[\"status_changed\"]', TRUE, '{operator}', created_at FROM agencies; \
         INSERT INTO webhook_deliveries (id, webhook_id, event, case_id, payload, status, \
         attempts, next_attempt_at, last_status, last_error, created_at, delivered_at) \
         SELECT '00000000-0000-7000-e200-' || substr(id, 25), CASE WHEN agency_id = \
         '00000000-0000-7000-a000-000000000000' THEN '{WEBHOOK}' ELSE \
         '00000000-0000-7000-e300-' || substr(agency_id, 25) END, 'status_changed', \
         id, '{{}}', 'delivered', 1, created_at, 200, NULL, created_at, created_at FROM cases; \
         UPDATE webhook_deliveries SET status = 'dead', last_status = 500 WHERE id LIKE '%00'; \
         INSERT INTO case_tags (tag, case_id, agency_id) \
         SELECT 'vip', id, agency_id FROM cases WHERE id LIKE '%0'; \
         INSERT INTO case_tags (tag, case_id, agency_id) SELECT 'routine', id, agency_id \
         FROM cases WHERE id NOT LIKE '%0';"
    ))
    .unwrap();
    let tables = [
        "sla_policies",
        "sla_clocks",
        "ticket_sla_clocks",
        "webhooks",
        "webhook_deliveries",
        "case_tags",
    ];
    analyzed_as_in_production(conn, &tables);
}

/// Two tickets per case, its client's and its agency's (opened by agency 0's operator), with a
/// message and a file each: enough for the tickets' plans.
fn seed_tickets(conn: &mut DbConnection) {
    use diesel::connection::SimpleConnection;
    let columns = "id, requester_id, agency_id, case_id, subject, description, status, \
                   priority, assignee_id, delegated_by, resolution_type, resolution, \
                   resolved_at, version, created_at, updated_at, number";
    let status = "CASE WHEN status IN ('closed', 'cancelled', 'rejected') THEN 'closed' \
                  WHEN status = 'in_approval' THEN 'new' ELSE 'open' END";
    conn.batch_execute(&format!(
        "INSERT INTO tickets ({columns}) \
         SELECT '00000000-0000-7000-8e00-' || substr(id, 25), client_id, NULL, id, title, \
         description, {status}, priority, NULL, NULL, NULL, NULL, NULL, 1, created_at, \
         created_at, 'TKT-C-' || substr(id, 25) FROM cases; \
         INSERT INTO tickets ({columns}) \
         SELECT '00000000-0000-7000-8f00-' || substr(id, 25), \
         '00000000-0000-7000-b000-000000000001', agency_id, id, title, description, {status}, \
         priority, NULL, NULL, NULL, NULL, NULL, 1, created_at, created_at, \
         'TKT-A-' || substr(id, 25) FROM cases; \
         INSERT INTO ticket_messages (id, ticket_id, author_id, author_role, body, created_at) \
         SELECT id, id, requester_id, 'client', description, created_at FROM tickets; \
         INSERT INTO ticket_attachments (ticket_id, id, uploader_id, file_name, content_type, \
         size_bytes, sha256, storage_key, created_at) \
         SELECT id, id, requester_id, 'receipt.pdf', 'application/pdf', 1, 'x', id, created_at \
         FROM tickets;"
    ))
    .unwrap();
    analyzed_as_in_production(conn, &["tickets", "ticket_messages", "ticket_attachments"]);
}

/// One rule-log entry per case, with its agency: enough for the rule log's plans.
fn seed_rule_log(conn: &mut DbConnection) {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(
        "INSERT INTO rule_log (id, rule, trigger_event, action, case_id, agency_id, outcome, \
         detail, created_at) \
         SELECT id, 'auto_close', 'confirmation_overdue', 'auto_close', id, agency_id, \
         'closed', NULL, created_at FROM cases",
    )
    .unwrap();
    analyzed_as_in_production(conn, &["rule_log"]);
}

/// PostgreSQL's statistics of seeded tables, as its autovacuum would gather them. SQLite plans
/// from the statistics its migrations ship (migration 42): nothing here analyzes it, so the
/// plans checked are the ones a database the app created gets.
fn analyzed_as_in_production(conn: &mut DbConnection, tables: &[&str]) {
    use diesel::connection::SimpleConnection;
    if let DbConnection::Postgresql(_) = conn {
        conn.batch_execute(&format!("ANALYZE {}", tables.join(", ")))
            .unwrap();
    }
}

async fn token<S>(app: &crate::helpers::TestApp<S>, email: &str, password: &str) -> String
where
    S: AppService,
{
    let res = app.login(email, password).await;
    res.assert_status(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}
