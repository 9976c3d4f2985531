//! Both migration sets must give the same tables, columns, indexes and primary keys.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use dossier::db::{DbConnection, run_migrations};

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

#[derive(QueryableByName)]
struct IndexColumn {
    #[diesel(sql_type = Text)]
    index_name: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
}

#[derive(QueryableByName)]
struct KeyColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    /// From 1, in the key's order.
    #[diesel(sql_type = BigInt)]
    position: i64,
}

/// Maps each engine's spelling of a type onto the portable one.
fn portable(t: &str) -> &'static str {
    match t.to_lowercase().as_str() {
        "text" => "text",
        "bigint" => "bigint",
        "integer" | "int" => "integer",
        "boolean" => "boolean",
        "double precision" => "double",
        "timestamp" | "timestamp without time zone" => "timestamp",
        other => panic!("non-portable column type {other}"),
    }
}

/// Columns, index columns and primary-key columns (table, position, column).
type Shape = (
    BTreeSet<(String, String, &'static str, bool)>,
    BTreeSet<(String, String, String, bool)>,
    BTreeSet<(String, i64, String)>,
);

/// The shape of a new database once migrated.
fn shape(url: &str) -> Shape {
    let pool = dossier::db::build_pool(url, 1, Default::default()).unwrap();
    let mut conn = pool.get().unwrap();
    run_migrations(&mut conn).unwrap();
    shape_of(&mut conn)
}

fn shape_of(conn: &mut DbConnection) -> Shape {
    let (columns, indexes, keys): (Vec<Column>, Vec<IndexColumn>, Vec<KeyColumn>) = match conn {
        DbConnection::Sqlite(c) => (
            diesel::sql_query(
                "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
                 (p.\"notnull\" = 0 AND p.pk = 0) AS nullable \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '__diesel%'",
            )
            .load(c)
            .unwrap(),
            diesel::sql_query(
                "SELECT il.name AS index_name, m.name AS table_name, ii.name AS column_name, il.\"unique\" = 1 AS is_unique \
                 FROM sqlite_master m JOIN pragma_index_list(m.name) il JOIN pragma_index_info(il.name) ii \
                 WHERE m.type = 'table' AND il.origin = 'c' AND m.name NOT LIKE '__diesel%'",
            )
            .load(c)
            .unwrap(),
            diesel::sql_query(
                "SELECT m.name AS table_name, p.name AS column_name, p.pk AS position \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND p.pk > 0 AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '__diesel%'",
            )
            .load(c)
            .unwrap(),
        ),
        DbConnection::Postgresql(c) => (
            diesel::sql_query(
                "SELECT table_name::text, column_name::text, data_type::text, (is_nullable = 'YES') AS nullable \
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE '__diesel%'",
            )
            .load(c)
            .unwrap(),
            diesel::sql_query(
                "SELECT i.relname::text AS index_name, t.relname::text AS table_name, a.attname::text AS column_name, \
                 ix.indisunique AS is_unique \
                 FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(ix.indkey) \
                 WHERE n.nspname = 'public' AND NOT ix.indisprimary AND t.relname NOT LIKE '__diesel%'",
            )
            .load(c)
            .unwrap(),
            // `indkey` is an int2vector, whose subscripts start at 0.
            diesel::sql_query(
                "SELECT t.relname::text AS table_name, a.attname::text AS column_name, \
                 (array_position(ix.indkey::int2[], a.attnum) - array_lower(ix.indkey::int2[], 1) + 1)::bigint \
                 AS position \
                 FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(ix.indkey) \
                 WHERE n.nspname = 'public' AND ix.indisprimary AND t.relname NOT LIKE '__diesel%'",
            )
            .load(c)
            .unwrap(),
        ),
    };
    (
        columns
            .into_iter()
            .map(|c| {
                (
                    c.table_name,
                    c.column_name,
                    portable(&c.data_type),
                    c.nullable,
                )
            })
            .collect(),
        indexes
            .into_iter()
            .map(|i| (i.index_name, i.table_name, i.column_name, i.is_unique))
            .collect(),
        keys.into_iter()
            .map(|k| (k.table_name, k.position, k.column_name))
            .collect(),
    )
}

/// The primary key of `table` in the shape, in order.
fn key_of(shape: &Shape, table: &str) -> Vec<String> {
    shape
        .2
        .iter()
        .filter(|(t, _, _)| t == table)
        .map(|(_, _, column)| column.clone())
        .collect()
}

#[test]
fn both_engines_get_the_same_tables_columns_indexes_and_keys() {
    let Some(pg_admin) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "TEST_DATABASE_URL is not set: the PostgreSQL side of this comparison runs in the PostgreSQL pass"
        );
        return;
    };
    let _ = pg_admin;
    let sqlite = crate::helpers::TestDb::new_sqlite();
    let pg = crate::helpers::TestDb::new();
    assert!(pg.is_postgres());
    let (sqlite_cols, sqlite_idx, sqlite_keys) = shape(sqlite.url());
    let (pg_cols, pg_idx, pg_keys) = shape(pg.url());
    assert!(!sqlite_cols.is_empty() && !sqlite_idx.is_empty() && !sqlite_keys.is_empty());
    assert_eq!(sqlite_cols, pg_cols);
    assert_eq!(sqlite_idx, pg_idx);
    assert_eq!(sqlite_keys, pg_keys);
}

/// Nodes starting together on one new PostgreSQL database each run the migrations, one after
/// the other: none fails, and the schema is the one a single node makes.
#[test]
fn nodes_starting_together_migrate_one_at_a_time() {
    let db = crate::helpers::TestDb::new();
    if !db.is_postgres() {
        eprintln!("one SQLite file belongs to one node: this runs in the PostgreSQL pass");
        return;
    }
    let pool = dossier::db::build_pool(db.url(), 3, Default::default()).unwrap();
    let nodes: Vec<_> = (0..3)
        .map(|_| {
            let mut conn = pool.get().unwrap();
            std::thread::spawn(move || run_migrations(&mut conn))
        })
        .collect();
    for node in nodes {
        assert_eq!(node.join().unwrap(), Ok(()));
    }
    let single = crate::helpers::TestDb::new();
    assert_eq!(shape(db.url()), shape(single.url()));
}

/// The open-case counts start from the cases already there: the migration that adds them is
/// reverted on a database with open, cancelled and other clients' cases, then run again. The
/// migrations after it are reverted on the way, and the database ends up with the shape it had.
#[actix_web::test]
async fn open_case_counts_are_backfilled_from_existing_cases() {
    use diesel_migrations::MigrationHarness;
    use dossier::db::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

    use crate::world::{World, act, buy, id};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    buy(&app, &w.client.token, &w.service_a, "card").await;
    buy(&app, &w.client.token, &w.service_b, "bank_transfer").await;
    let cancelled = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.client.token, &cancelled, "cancel")
        .await
        .assert_status(200);
    buy(&app, &w.client2.token, &w.service_a, "card").await;

    // Reverts the migrations after it too (SQLite's rebuild of tables as WITHOUT ROWID), so
    // their down.sql runs here as well.
    let mut conn = app.state.pool.get().unwrap();
    let migrated = shape_of(&mut conn);
    assert_eq!(key_of(&migrated, "messages"), ["case_id", "id"]);
    assert_eq!(key_of(&migrated, "notifications"), ["user_id", "id"]);
    loop {
        let reverted = match &mut *conn {
            DbConnection::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
            DbConnection::Postgresql(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
        }
        .unwrap()
        .to_string();
        if reverted.contains("20261202000011") {
            // Keyed by their own id again, as before the conversation was clustered by owner.
            let before = shape_of(&mut conn);
            assert_eq!(key_of(&before, "messages"), ["id"]);
            assert_eq!(key_of(&before, "notifications"), ["id"]);
        }
        if reverted.contains("20261124000009") {
            break;
        }
        assert!(
            reverted.as_str() > "20261124000009",
            "reverted {reverted} without meeting the migration adding client_open_cases"
        );
    }
    run_migrations(&mut conn).unwrap();
    assert_eq!(shape_of(&mut conn), migrated);
    drop(conn);

    assert_eq!(app.count("SELECT COUNT(*) AS n FROM client_open_cases"), 3);
    assert_eq!(
        app.count(
            "SELECT CAST(COALESCE(SUM(open_cases), 0) AS BIGINT) AS n FROM client_open_cases"
        ),
        3
    );
    assert_eq!(app.open_case_counts_off(), 0);
}

/// SQLite keeps the tables read by primary key on every request, and the conversation and
/// notifications ordered by their owner, as WITHOUT ROWID tables, and rebuilding them (down,
/// then up again) loses no row: not the cases, and not the refresh tokens that `users`' ON
/// DELETE CASCADE would take with it if foreign keys stayed on. The keys are enforced again
/// afterwards.
#[actix_web::test]
async fn sqlite_rebuilds_the_hot_tables_without_rowid_and_keeps_every_row() {
    use diesel::connection::SimpleConnection;

    use crate::world::{World, assign_agent, buy, id, post_message, start_case};

    let app = crate::helpers::spawn_with(&[("DOSSIER_DB_POOL_SIZE", "1")]).await;
    if app._db.is_postgres() {
        eprintln!("WITHOUT ROWID is SQLite's; PostgreSQL has no rowid to drop");
        return;
    }
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    post_message(&app, &w.client.token, &case, "Any news?").await;
    let hot = [
        "agencies",
        "users",
        "services",
        "cases",
        "case_agents",
        "message_reads",
        "client_open_cases",
        "messages",
        "notifications",
    ];
    let without_rowid = |app: &crate::helpers::TestApp<_>| {
        let list = hot.map(|t| format!("'{t}'")).join(", ");
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ({list}) \
             AND sql LIKE '%WITHOUT ROWID'"
        ))
    };
    let rows = |app: &crate::helpers::TestApp<_>| {
        app.rows_in(&[hot.as_slice(), &["refresh_tokens"]].concat())
    };
    let before = rows(&app);
    assert!(before.iter().all(|&n| n > 0), "{before:?}");
    assert_eq!(without_rowid(&app), 9);

    // The pool's one connection, as the server migrates: foreign keys must be on again after.
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261124000010");
    drop(conn);
    assert_eq!(without_rowid(&app), 0);
    assert_eq!(rows(&app), before);

    let mut conn = app.state.pool.get().unwrap();
    run_migrations(&mut conn).unwrap();
    let orphan = conn.batch_execute(
        "INSERT INTO case_agents (case_id, user_id, assigned_at) \
         VALUES ('no-such-case', 'no-such-user', '2026-01-01 00:00:00')",
    );
    assert!(orphan.is_err(), "foreign keys are off after the migration");
    drop(conn);
    assert_eq!(without_rowid(&app), 9);
    assert_eq!(rows(&app), before);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM pragma_foreign_key_check"),
        0
    );
}

/// Files agents uploaded before attachments could be internal become internal on upgrade,
/// unless something the client sees carries them; staff files of that time stay visible.
#[actix_web::test]
async fn agents_earlier_files_become_internal_unless_the_client_was_shown_them() {
    use serde_json::json;

    use crate::attachments::{png, upload};
    use crate::world::{World, assign_agent, buy, id, start_case};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    assign_agent(&app, &w, &case).await;
    let mut files = Vec::new();
    for (token, name) in [
        (&w.a_agent.token, "kept.png"),
        (&w.a_agent.token, "published.png"),
        (&w.a_agent.token, "sent.png"),
        (&w.a_operator.token, "staff.png"),
    ] {
        let res = upload(&app, token, &case, name, &png(300)).await;
        files.push(id(res.assert_status(201)));
    }
    let messages = format!("/v1/cases/{case}/messages");
    let storyline = format!("/v1/cases/{case}/storyline");
    for (token, path, body) in [
        (
            &w.a_agent.token,
            &messages,
            json!({"body": "Mine", "internal": true, "attachment_ids": [files[0]]}),
        ),
        (
            &w.a_operator.token,
            &storyline,
            json!({"title": "Seen", "attachment_ids": [files[1]]}),
        ),
        (
            &w.a_operator.token,
            &messages,
            json!({"body": "For you", "attachment_ids": [files[2]]}),
        ),
    ] {
        app.post(path, token, body).await.assert_status(201);
    }
    // As migration 12 left the files of that time: all visible.
    app.sql("UPDATE attachments SET internal = FALSE");
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261205000013");
    run_migrations(&mut conn).unwrap();
    drop(conn);
    let internal = |file: &String| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM attachments WHERE id = '{file}' AND internal = TRUE"
        ))
    };
    assert_eq!(
        files.iter().map(internal).collect::<Vec<_>>(),
        [1, 0, 0, 0],
        "kept, published, sent to the client, staff's"
    );
}

/// Reverts the newest migrations, down to and including `version`, as an upgrade from before
/// it would find the schema.
fn revert_through(conn: &mut DbConnection, version: &str) {
    use diesel_migrations::MigrationHarness;
    use dossier::db::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

    loop {
        let reverted = match conn {
            DbConnection::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
            DbConnection::Postgresql(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
        }
        .unwrap();
        if reverted.to_string().contains(version) {
            return;
        }
    }
}

/// SQLite kept the nanoseconds a caller sent as text, which the storyline's cursor never
/// matched; upgrading cuts them to microseconds in the text diesel writes for that time.
#[actix_web::test]
async fn times_stored_with_nanoseconds_are_cut_to_microseconds() {
    use serde_json::json;

    use crate::world::{World, act, buy, id};

    let app = crate::helpers::spawn().await;
    if app._db.is_postgres() {
        eprintln!("PostgreSQL stores microseconds: nothing to cut");
        return;
    }
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    let p = format!("/v1/cases/{case}/storyline");
    let stored = [
        "2026-11-10 12:00:00.123456789",
        "2026-11-11 12:00:00.120000789",
        "2026-11-12 12:00:00.000000789",
        "2026-11-13 12:00:00.123456",
    ];
    for (day, at) in stored.iter().enumerate() {
        let event = json!({"title": format!("Day {day}")});
        let event = id(app
            .post(&p, &w.a_operator.token, event)
            .await
            .assert_status(201));
        app.sql(&format!(
            "UPDATE storyline_events SET occurred_at = '{at}' WHERE id = '{event}'"
        ));
    }
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261205000014");
    run_migrations(&mut conn).unwrap();
    drop(conn);
    let cut = [
        "2026-11-10 12:00:00.123456",
        "2026-11-11 12:00:00.120",
        "2026-11-12 12:00:00",
        "2026-11-13 12:00:00.123456",
    ];
    for at in cut {
        let n = app.count(&format!(
            "SELECT COUNT(*) AS n FROM storyline_events WHERE occurred_at = '{at}'"
        ));
        assert_eq!(n, 1, "{at}");
    }
    // Pages of one, each event once.
    let mut seen = Vec::new();
    let mut path = format!("{p}?limit=1");
    while seen.len() < 10 {
        let body = app
            .get(&path, &w.a_operator.token)
            .await
            .assert_status(200)
            .clone();
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["title"].clone()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("{p}?limit=1&cursor={c}"),
            None => break,
        }
    }
    // The four, then the acceptance's own event, each once.
    assert_eq!(seen[..4], ["Day 0", "Day 1", "Day 2", "Day 3"]);
    assert_eq!(seen.len(), 5, "{seen:?}");
}

/// SQLite kept a leap second a caller sent as second 60; upgrading writes it as the instant
/// after it, which clients read and the storyline's pages find.
#[actix_web::test]
async fn leap_seconds_stored_before_are_the_instant_after_them() {
    use serde_json::json;

    use crate::world::{World, buy, id, start_case};

    let app = crate::helpers::spawn().await;
    if app._db.is_postgres() {
        eprintln!("PostgreSQL stores a leap second as the next instant: nothing to rewrite");
        return;
    }
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let op = &w.a_operator.token;
    let p = format!("/v1/cases/{case}/storyline");
    let stored = [
        ("2026-11-21 14:05:60.500", "2026-11-21 14:06:00.500"),
        ("2026-12-31 23:59:60", "2027-01-01 00:00:00"),
        ("2026-11-21 14:06:00.250", "2026-11-21 14:06:00.250"),
    ];
    for (day, (at, _)) in stored.iter().enumerate() {
        let event = json!({"title": format!("Event {day}")});
        let event = id(app.post(&p, op, event).await.assert_status(201));
        app.sql(&format!(
            "UPDATE storyline_events SET occurred_at = '{at}' WHERE id = '{event}'"
        ));
    }
    let ask = json!({"kind": "question", "prompt": "When?"});
    let request = id(app
        .post(&format!("/v1/cases/{case}/requests"), op, ask)
        .await
        .assert_status(201));
    app.sql(&format!(
        "UPDATE client_requests SET due_at = '2030-06-30 23:59:60' WHERE id = '{request}'"
    ));
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261207000047");
    run_migrations(&mut conn).unwrap();
    drop(conn);
    for (_, now) in stored {
        let n = app.count(&format!(
            "SELECT COUNT(*) AS n FROM storyline_events WHERE occurred_at = '{now}'"
        ));
        assert_eq!(n, 1, "{now}");
    }
    let due = "SELECT COUNT(*) AS n FROM client_requests WHERE due_at = '2030-07-01 00:00:00'";
    assert_eq!(app.count(due), 1);
    // In time order, one a page, each once, as RFC 3339 instants.
    let events = app.every_item(&format!("{p}?limit=1"), op).await;
    let titles: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["kind"] != "system")
        .map(|e| {
            (
                e["title"].as_str().unwrap(),
                e["occurred_at"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        titles,
        [
            ("Event 2", "2026-11-21T14:06:00.250Z"),
            ("Event 0", "2026-11-21T14:06:00.500Z"),
            ("Event 1", "2027-01-01T00:00:00Z"),
        ]
    );
}

/// Upgrading recognises the titles the system wrote on storylines before (English, the status
/// as its code), so each reader gets them in their language too; a title a person wrote that
/// reads the same stays as written.
#[actix_web::test]
async fn storyline_titles_written_before_are_read_in_the_readers_language() {
    use serde_json::json;

    use crate::world::{World, act, buy, id, start_case};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    let p = format!("/v1/cases/{case}/storyline");
    let note = json!({"title": "Suspend: suspended", "status": "published"});
    app.post(&p, &w.a_operator.token, note)
        .await
        .assert_status(201);
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261207000048");
    drop(conn);
    app.sql(&format!(
        "UPDATE storyline_events SET title = 'Suspend: suspended' \
         WHERE case_id = '{case}' AND kind = 'status'"
    ));
    let mut conn = app.state.pool.get().unwrap();
    run_migrations(&mut conn).unwrap();
    drop(conn);
    let italian = app
        .call(
            "GET",
            &p,
            &w.client.token,
            None,
            &[("accept-language", "it")],
        )
        .await;
    let read: Vec<(&str, &str)> = italian.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["title"].as_str().unwrap()))
        .collect();
    assert_eq!(
        read,
        [
            ("system", "Dati richiesti inviati"),
            ("status", "Sospendi: Sospeso"),
            ("note", "Suspend: suspended"),
        ]
    );
}

/// Upgrading gives every audit row of a case its case's agency, and every row of a service
/// its service's, so agency admins read the rows written before the column was.
#[actix_web::test]
async fn audit_rows_of_before_get_their_agency() {
    use serde_json::json;

    use crate::world::{World, buy, id};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client2.token, &w.service_b, "card").await);
    app.patch(
        &format!("/v1/services/{}", w.service_a),
        &w.a_admin.token,
        json!({"title": "Background checks, renamed"}),
    )
    .await
    .assert_status(200);
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261205000015");
    run_migrations(&mut conn).unwrap();
    drop(conn);
    let rows = |agency: &str, filter: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE agency_id = '{agency}' AND {filter}"
        ))
    };
    let of_case = app.count(&format!(
        "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}'"
    ));
    assert!(of_case > 0);
    assert_eq!(rows(&w.agency_b, &format!("case_id = '{case}'")), of_case);
    assert_eq!(
        rows(
            &w.agency_a,
            &format!("entity = 'service' AND entity_id = '{}'", w.service_a)
        ),
        8,
        "created (a row per member) and renamed"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_log WHERE agency_id IS NULL AND (case_id IS NOT NULL OR entity = 'service')"),
        0
    );
}

/// Upgrading finds who delegated each case in the audit trail: its last assignment, when that
/// was a delegation.
#[actix_web::test]
async fn cases_delegated_before_get_their_delegator() {
    use serde_json::json;

    use crate::world::{World, buy, id, take};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let delegated = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let taken_back = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    for case in [&delegated, &taken_back] {
        app.post(
            &format!("/v1/cases/{case}/assignment"),
            &w.a_operator.token,
            json!({"action": "delegate", "user_id": w.a_admin.id}),
        )
        .await
        .assert_status(200);
    }
    take(&app, &w.a_operator.token, &taken_back).await;
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261205000017");
    run_migrations(&mut conn).unwrap();
    drop(conn);
    let delegator = |case: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM cases WHERE id = '{case}' AND delegated_by = '{}'",
            w.a_operator.id
        ))
    };
    assert_eq!((delegator(&delegated), delegator(&taken_back)), (1, 0));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM cases WHERE id = '{taken_back}' AND delegated_by IS NULL"
        )),
        1
    );
}

/// Upgrading makes the completed cases wait for their client from their last `complete` in the
/// audit trail; disputed, closed and unfinished cases do not wait.
#[actix_web::test]
async fn completed_cases_of_before_wait_from_their_last_completion() {
    use serde_json::json;

    use crate::world::{World, act, buy, id, start_case};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let mut cases = Vec::new();
    for _ in 0..4 {
        let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
        start_case(&app, &w, &case).await;
        cases.push(case);
    }
    let [waiting, disputed, confirmed, working] = [0, 1, 2, 3].map(|i| cases[i].clone());
    for case in [&waiting, &disputed, &confirmed] {
        act(&app, &w.a_operator.token, case, "complete")
            .await
            .assert_status(200);
    }
    act(&app, &w.client.token, &disputed, "dispute_completion")
        .await
        .assert_status(200);
    app.post(
        &format!("/v1/cases/{confirmed}/transitions"),
        &w.client.token,
        json!({"action": "confirm_completion"}),
    )
    .await
    .assert_status(200);
    // A wait that began at another time than the audit trail's, to see where it is read from.
    app.sql("UPDATE awaiting_confirmation SET completed_at = '2020-01-01 00:00:00'");
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261205000018");
    run_migrations(&mut conn).unwrap();
    drop(conn);
    let waits = |case: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM awaiting_confirmation WHERE case_id = '{case}'"
        ))
    };
    assert_eq!(
        [&waiting, &disputed, &confirmed, &working].map(|c| waits(c)),
        [1, 0, 0, 0]
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(DISTINCT w.case_id) AS n FROM awaiting_confirmation w \
             JOIN audit_log a ON a.case_id = w.case_id AND a.action = 'complete' \
             AND a.created_at = w.completed_at WHERE w.case_id = '{waiting}'"
        )),
        1
    );
}

/// Reverting webhooks' deletion removes the deleted ones (nothing would hide them any more),
/// and upgrading keeps the oldest of the live webhooks that a race gave one owner and URL.
#[actix_web::test]
async fn webhook_deletion_keeps_one_live_webhook_per_owner_and_url() {
    use serde_json::json;

    use crate::world::{World, id};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let create = |url: &'static str| {
        app.post(
            "/v1/webhooks",
            &w.a_admin.token,
            json!({"url": url, "events": ["assigned"]}),
        )
    };
    let kept = id(create("http://127.0.0.1:9/kept").await.assert_status(201));
    let deleted = id(create("http://127.0.0.1:9/deleted")
        .await
        .assert_status(201));
    let res = app
        .call(
            "DELETE",
            &format!("/v1/webhooks/{deleted}"),
            &w.a_admin.token,
            None,
            &[],
        )
        .await;
    assert_eq!(res.status.as_u16(), 204);
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261207000028");
    drop(conn);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM webhooks"), 1);
    // A later twin of the kept one, as two creations at once could leave it.
    app.sql(&format!(
        "INSERT INTO webhooks (id, agency_id, url, secret, events, active, created_by, created_at) \
         VALUES ('ffffffff-0000-7000-e500-000000000001', '{}', 'http://127.0.0.1:9/kept', \
         'whsec_twin', '[\"assigned\"]', TRUE, '{}', '2026-01-01 00:00:00')",
        w.agency_a, w.a_admin.id
    ));
    let mut conn = app.state.pool.get().unwrap();
    run_migrations(&mut conn).unwrap();
    drop(conn);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM webhooks WHERE deleted_at IS NULL AND active = TRUE \
             AND id = '{kept}'"
        )),
        1
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) AS n FROM webhooks WHERE deleted_at IS NOT NULL AND active = FALSE \
             AND id = 'ffffffff-0000-7000-e500-000000000001'"
        ),
        1
    );
}

/// Tickets opened before tickets had numbers get them in the order they were opened, per year,
/// and the year's counter goes on from there.
#[actix_web::test]
async fn tickets_of_before_are_numbered_in_the_order_they_were_opened() {
    use chrono::Datelike;
    use serde_json::json;

    use crate::world::{World, id};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let body = json!({"subject": "Help", "description": "Please answer my messages."});
    let mut opened = Vec::new();
    for token in [&w.client.token, &w.a_operator.token, &w.client2.token] {
        let res = app.post("/v1/tickets", token, body.clone()).await;
        opened.push(id(res.assert_status(201)));
    }
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261207000031");
    drop(conn);
    // The first a year before; the third opened before the second.
    let year = chrono::Utc::now().year();
    for (ticket, at) in opened.iter().zip([
        format!("{}-06-01 10:00:00", year - 1),
        format!("{year}-01-02 10:00:00"),
        format!("{year}-01-01 10:00:00"),
    ]) {
        app.sql(&format!(
            "UPDATE tickets SET created_at = '{at}' WHERE id = '{ticket}'"
        ));
    }
    let mut conn = app.state.pool.get().unwrap();
    run_migrations(&mut conn).unwrap();
    drop(conn);
    let mut numbers = Vec::new();
    for ticket in &opened {
        let res = app
            .get(&format!("/v1/tickets/{ticket}"), &w.platform.token)
            .await;
        numbers.push(
            res.assert_status(200)["number"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        numbers,
        [
            format!("TKT-{}-000001", year - 1),
            format!("TKT-{year}-000002"),
            format!("TKT-{year}-000001"),
        ]
    );
    let res = app.post("/v1/tickets", &w.client.token, body).await;
    assert_eq!(
        res.assert_status(201)["number"],
        format!("TKT-{year}-000003")
    );
}

/// The upgrade that adds `ended_at` ends each room at the first completion, rejection or
/// cancellation of its case after it opened, as the audit trail orders and dates it: a reopened
/// case's earlier rooms too, a closed case's at its completion. Rooms of cases still in a status
/// with calls keep working, a reopened case's new room too (whatever else was cancelled after
/// it). It writes no audit rows.
#[actix_web::test]
async fn the_upgrade_ends_rooms_when_the_audit_trail_says_their_case_left_them() {
    use serde_json::{Value, json};

    use crate::world::{World, act, buy, id, start_case};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let mut cases = Vec::new();
    for _ in 0..4 {
        let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
        app.post(
            &format!("/v1/cases/{case}/video-calls"),
            &w.client.token,
            json!({}),
        )
        .await
        .assert_status(201);
        cases.push(case);
    }
    let [cancelled, _in_approval, reopened, closed] = &cases[..] else {
        unreachable!()
    };
    act(&app, &w.client.token, cancelled, "cancel")
        .await
        .assert_status(200);
    for case in [reopened, closed] {
        start_case(&app, &w, case).await;
        act(&app, &w.a_operator.token, case, "complete")
            .await
            .assert_status(200);
    }
    act(&app, &w.a_operator.token, reopened, "reopen")
        .await
        .assert_status(200);
    act(&app, &w.client.token, closed, "confirm_completion")
        .await
        .assert_status(200);
    let calls = format!("/v1/cases/{reopened}/video-calls");
    app.post(&calls, &w.client.token, json!({}))
        .await
        .assert_status(201);
    let asks = format!("/v1/cases/{reopened}/requests");
    let ask = json!({"kind": "question", "prompt": "Which car?"});
    let ask = id(app
        .post(&asks, &w.a_operator.token, ask)
        .await
        .assert_status(201));
    app.post(
        &format!("{asks}/{ask}/cancel"),
        &w.a_operator.token,
        json!({}),
    )
    .await
    .assert_status(200);
    let audit_rows = app.rows_in(&["audit_log"]);
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261207000040");
    run_migrations(&mut conn).unwrap();
    drop(conn);
    assert_eq!(app.rows_in(&["audit_log"]), audit_rows);
    let rooms = app.get(&calls, &w.client.token).await;
    let rooms = rooms.assert_status(200)["items"].clone();
    assert_eq!(
        rooms[0]["ended_at"],
        Value::Null,
        "the room opened after the reopening"
    );
    assert_eq!(rooms[0]["active"], true);
    let mut ended = Vec::new();
    for case in &cases {
        let res = app
            .get(&format!("/v1/cases/{case}/video-calls"), &w.client.token)
            .await;
        let first = res.assert_status(200)["items"].as_array().unwrap().last();
        ended.push(first.unwrap()["ended_at"].clone());
    }
    let moved = async |case: &str, action: &str| -> Value {
        let path = format!("/v1/cases/{case}/audit?action={action}");
        let res = app.get(&path, &w.a_admin.token).await;
        res.assert_status(200)["items"][0]["created_at"].clone()
    };
    let expected = [
        moved(cancelled, "cancel").await,
        Value::Null,
        moved(reopened, "complete").await,
        moved(closed, "complete").await,
    ];
    assert!(expected[2].is_string() && expected[3].is_string());
    assert_ne!(expected[3], moved(closed, "confirm_completion").await);
    assert_eq!(ended, expected);
}

/// SQLite plans from the statistics migration 42 ships, also on a connection that had read the
/// schema before the upgrade wrote them (its index changes the schema, which such a connection
/// then reads again, statistics included).
#[actix_web::test]
async fn sqlite_connections_open_before_the_upgrade_plan_with_its_statistics() {
    #[derive(QueryableByName)]
    struct Step {
        #[diesel(sql_type = Text)]
        detail: String,
    }
    let app = crate::helpers::spawn_with(&[("DOSSIER_DB_POOL_SIZE", "2")]).await;
    if app._db.is_postgres() {
        return; // PostgreSQL gathers its own statistics (autovacuum).
    }
    let plan = |conn: &mut DbConnection| {
        diesel::sql_query(
            "EXPLAIN QUERY PLAN SELECT id FROM cases WHERE client_id = 'c' AND status = 'paid' \
             ORDER BY id DESC LIMIT 26",
        )
        .load::<Step>(conn)
        .unwrap()
        .into_iter()
        .map(|s| s.detail)
        .collect::<Vec<_>>()
        .join("; ")
    };
    let mut upgrading = app.state.pool.get().unwrap();
    let mut open = app.state.pool.get().unwrap();
    revert_through(&mut upgrading, "20261207000042");
    // The other connection reads the schema as it is now (it may have read it with the
    // statistics before the revert, had a worker used it at start-up).
    diesel::sql_query("SELECT id FROM cases LIMIT 1")
        .execute(&mut open)
        .unwrap();
    // Without statistics, the status's index over every client's cases.
    assert!(
        plan(&mut open).contains("cases_status_idx"),
        "{}",
        plan(&mut open)
    );
    run_migrations(&mut upgrading).unwrap();
    for (name, conn) in [("upgrading", &mut upgrading), ("open", &mut open)] {
        // A statement that runs (EXPLAIN does not) finds the schema changed and reads it again.
        diesel::sql_query("SELECT id FROM cases LIMIT 1")
            .execute(conn)
            .unwrap();
        let plan = plan(conn);
        assert!(plan.contains("USING INDEX cases_client"), "{name}: {plan}");
    }
}

/// Upgrading gives every tag row its case's agency, so an agency's tag filter finds the cases
/// tagged before it as well.
#[actix_web::test]
async fn tags_of_before_get_their_cases_agency() {
    use serde_json::json;

    use crate::world::{World, buy, id};

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let mut tagged = Vec::new();
    for (client, service, admin) in [
        (&w.client, &w.service_a, &w.a_admin),
        (&w.client2, &w.service_b, &w.b_admin),
    ] {
        let case = id(&buy(&app, &client.token, service, "card").await);
        app.patch(
            &format!("/v1/cases/{case}"),
            &admin.token,
            json!({"tags": ["vip"]}),
        )
        .await
        .assert_status(200);
        tagged.push(case);
    }
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261207000045");
    run_migrations(&mut conn).unwrap();
    drop(conn);
    for (case, agency) in tagged.iter().zip([&w.agency_a, &w.agency_b]) {
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM case_tags WHERE case_id = '{case}' AND agency_id = '{agency}'"
            )),
            1
        );
    }
    let listed = app.get("/v1/cases?tag=vip", &w.a_operator.token).await;
    let items = listed.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        items.iter().map(id).collect::<Vec<_>>(),
        [tagged[0].clone()]
    );
    // PostgreSQL, a rolling deploy: a node of the previous version writes a tag without its
    // agency, and the row takes its case's.
    if app._db.is_postgres() {
        app.sql(&format!(
            "INSERT INTO case_tags (tag, case_id) VALUES ('old-node', '{}')",
            tagged[1]
        ));
        assert_eq!(
            app.texts("SELECT agency_id AS t FROM case_tags WHERE tag = 'old-node'"),
            [Some(w.agency_b.clone())]
        );
    }
}

/// Rolling back `request_cancelled` leaves nothing the previous version cannot read: triggers
/// on it go and webhooks stop listing it (the old code answered 500 to such a trigger and heard
/// nothing for such a webhook); upgrading again works. Agents and clients who had the admin
/// flag (the command line gave one) lose it.
#[actix_web::test]
async fn request_cancelled_rolls_back_cleanly_and_admins_are_staff() {
    use serde_json::json;

    use crate::world::World;

    let app = crate::helpers::spawn().await;
    let w = World::new(&app).await;
    let trigger = json!({"name": "Withdrawn", "event": "request_cancelled",
                         "actions": [{"type": "add_tag", "tag": "withdrawn"}]});
    app.post("/v1/triggers", &w.a_admin.token, trigger)
        .await
        .assert_status(201);
    for (token, url, events) in [
        (
            &w.a_admin.token,
            "http://127.0.0.1:9/a",
            json!(["status_changed", "request_cancelled"]),
        ),
        (
            &w.b_admin.token,
            "http://127.0.0.1:9/b",
            json!(["request_cancelled"]),
        ),
    ] {
        app.post("/v1/webhooks", token, json!({"url": url, "events": events}))
            .await
            .assert_status(201);
    }
    let mut conn = app.state.pool.get().unwrap();
    revert_through(&mut conn, "20261207000049");
    drop(conn);
    assert_eq!(app.rows_in(&["triggers", "webhooks"]), [0, 2]);
    // As the app writes them, each moved to a new version.
    let events = app.texts("SELECT events || ' ' || version AS t FROM webhooks ORDER BY url");
    assert_eq!(
        events,
        [
            Some(r#"["status_changed"] 2"#.to_owned()),
            Some("[] 2".to_owned())
        ]
    );

    // An agent with the flag, as the command line could make one, loses it; admins keep theirs.
    app.sql(&format!(
        "UPDATE users SET is_admin = true WHERE id = '{}'",
        w.a_agent.id
    ));
    let mut conn = app.state.pool.get().unwrap();
    run_migrations(&mut conn).unwrap();
    drop(conn);
    for (user, admin) in [(&w.a_agent.id, false), (&w.a_admin.id, true)] {
        let res = app
            .get(&format!("/v1/users/{user}"), &w.platform.token)
            .await;
        assert_eq!(res.assert_status(200)["admin"], admin);
    }
}
