//! The database paths themselves: every request's writes land together or not at all, whatever
//! the requests written beside it do (on SQLite they share a transaction: group commit), and
//! every read keeps one snapshot, but for the card and the list on PostgreSQL, which need none.

use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use dossier::db;
use dossier::domain::Role;
use dossier::errors::ApiError;
use dossier::repo::agencies::{self, AgencyRow};
use dossier::repo::audit::{self, Actor, Change};
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{AppService, spawn, spawn_with};
use crate::world::{World, act, buy, id, post_message, start_case};

/// What each concurrent write does after inserting its agency.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Ending {
    Commit,
    Fail,
    Panic,
}

/// A new active agency's row.
fn agency(name: &str) -> AgencyRow {
    let now = db::now();
    AgencyRow {
        id: dossier::repo::new_id(),
        name: name.to_owned(),
        contact_email: None,
        active: true,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn ending(i: usize) -> Ending {
    match i % 5 {
        1 => Ending::Fail,
        3 => Ending::Panic,
        _ => Ending::Commit,
    }
}

#[actix_web::test]
async fn concurrent_writes_commit_alone_or_not_at_all() {
    let app = spawn().await;
    let admin = app.admin().await;
    let writes = (0..40).map(|i| {
        let pool = app.state.pool.clone();
        async move {
            db::write(&pool, move |conn| {
                let row = agency(&format!("Writer {i}"));
                agencies::insert(conn, &row)?;
                // Kept for the end of the write (`db::before_commit`): written only if it commits.
                let actor = Actor {
                    user_id: "writer".into(),
                    role: Role::Platform,
                    request_id: format!("write {i}"),
                };
                audit::append(
                    conn,
                    &actor,
                    vec![Change::entity("agency", &row.id, None, "written")],
                )?;
                // Appended inside a savepoint that rolls back: undone with it, not kept.
                let undone = conn.transaction(|conn| {
                    audit::append(
                        conn,
                        &actor,
                        vec![Change::entity("agency", &row.id, None, "undone")],
                    )?;
                    Err::<(), _>(diesel::result::Error::RollbackTransaction)
                });
                assert!(undone.is_err());
                // A second row, so a failure after it has something half-written to undo.
                agencies::insert(conn, &agency(&format!("Writer {i} bis")))?;
                match ending(i) {
                    Ending::Commit => Ok(i),
                    Ending::Fail => Err(ApiError::Conflict {
                        code: "test_failure",
                        detail: "fails after writing".into(),
                    }),
                    // Inside a nested transaction, as handlers have: its savepoint is left open.
                    Ending::Panic => conn
                        .transaction(|_| -> Result<(), ApiError> {
                            panic!("write {i} panics after writing")
                        })
                        .map(|()| i),
                }
            })
            .await
        }
    });
    let results = join_all(writes).await;

    for (i, result) in results.iter().enumerate() {
        match (ending(i), result) {
            (Ending::Commit, Ok(n)) => assert_eq!(*n, i),
            (Ending::Fail, Err(ApiError::Conflict { code, .. })) => {
                assert_eq!(*code, "test_failure")
            }
            (Ending::Panic, Err(ApiError::Internal(_))) => {}
            (expected, got) => panic!("write {i}: expected {expected:?}, got {got:?}"),
        }
    }
    let committed = (0..40).filter(|i| ending(*i) == Ending::Commit).count() as i64;
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM agencies WHERE name LIKE 'Writer %'"),
        committed * 2,
        "each committed write left both rows, the failed and panicked ones none"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'written'"),
        committed,
        "each committed write left its audit row, the failed and panicked ones none"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'undone'"),
        0,
        "rows appended in a savepoint that rolled back were kept"
    );
    let chain = audit::verify(&mut app.state.pool.get().unwrap()).unwrap();
    assert_eq!(chain.first_broken_seq, None);
    assert!(chain.rows_checked >= committed);
    for i in (0..40).filter(|i| ending(*i) != Ending::Commit) {
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) AS n FROM agencies WHERE name IN ('Writer {i}', 'Writer {i} bis')"
            )),
            0
        );
    }

    // No connection was left inside an abandoned transaction: later requests still commit.
    for n in 0..12 {
        let res = app
            .post(
                "/v1/agencies",
                &admin,
                json!({"name": format!("After {n}"), "contact_email": "ops@example.com"}),
            )
            .await;
        res.assert_status(201);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM agencies WHERE name LIKE 'After %'"),
        12
    );
}

/// Reads run on threads that never preempt an event loop when woken: on Linux, `SCHED_BATCH`
/// (policy 3), while the event loop itself (the test's thread) keeps the normal policy (0).
#[cfg(target_os = "linux")]
#[actix_web::test]
async fn reads_run_on_batch_threads_and_the_event_loop_stays_normal() {
    let app = spawn().await;
    fn policy() -> Result<String, ApiError> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").map_err(ApiError::internal)?;
        // The fields after the command name (which ends at the last ')'); `policy` is the 41st.
        let after_name = &stat[stat.rfind(')').map_or(0, |at| at + 2)..];
        Ok(after_name.split(' ').nth(41 - 3).unwrap_or("?").to_owned())
    }
    let read = db::read(&app.state.pool, |_| policy()).await.unwrap();
    assert_eq!(read, "3", "a read's thread");
    assert_eq!(policy().unwrap(), "0", "the event loop");
}

/// A read keeps one snapshot from its first statement to its last, even when a write commits
/// between them. On PostgreSQL the default isolation (READ COMMITTED) would show the second
/// count the new agency.
#[actix_web::test]
async fn a_read_keeps_its_snapshot_while_a_write_commits_beside_it() {
    let app = spawn().await;
    let admin = app.admin().await;
    app.agency(&admin, "Before the read").await;
    let pool = app.state.pool.clone();
    let (before, after) = db::read(&app.state.pool, move |conn| {
        let count = |conn: &mut db::DbConnection| {
            db::schema::agencies::table.count().get_result::<i64>(conn)
        };
        let before = count(conn)?;
        let mut beside = pool.get()?;
        db::in_write_transaction(&mut beside, |conn| {
            agencies::insert(conn, &agency("Written beside the read"))
        })?;
        Ok::<_, ApiError>((before, count(conn)?))
    })
    .await
    .unwrap();
    assert_eq!(before, 1);
    assert_eq!(
        after, before,
        "the read's second statement saw a later commit"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM agencies"),
        2,
        "the write committed"
    );
}

/// On PostgreSQL a read's transaction is READ ONLY: a write slipped into a read fails and
/// leaves nothing. Not enforced on SQLite, where the test has nothing to check.
#[actix_web::test]
async fn a_write_inside_a_read_is_refused_on_postgres() {
    let app = spawn().await;
    if !app._db.is_postgres() {
        return;
    }
    let refused = db::read(&app.state.pool, |conn| {
        agencies::insert(conn, &agency("Written inside a read"))
    })
    .await;
    let read_only = matches!(&refused, Err(ApiError::Internal(cause)) if matches!(
        cause.downcast_ref::<diesel::result::Error>(),
        Some(diesel::result::Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _))
    ));
    assert!(
        read_only,
        "not refused as a read-only transaction: {refused:?}"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM agencies"), 0);
}

/// PostgreSQL undoes a transaction caught in a deadlock (40P01) or a serialization failure
/// (40001) for another's sake: the caller gets a 409 it may retry, never a 500, and nothing of
/// the request is written. A trigger raises each error where the message would be written.
#[actix_web::test]
async fn a_write_postgres_undoes_for_another_is_a_409_to_retry() {
    let app = spawn().await;
    if !app._db.is_postgres() {
        return;
    }
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let path = format!("/v1/cases/{case}/messages");
    let tables = ["messages", "audit_log", "notifications"];
    for (message, code) in [
        ("deadlock detected", "40P01"),
        (
            "could not serialize access due to concurrent update",
            "40001",
        ),
    ] {
        app.sql(&format!(
            "CREATE FUNCTION undone() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{code}'; END $$; \
             CREATE TRIGGER undone BEFORE INSERT ON messages FOR EACH ROW \
             EXECUTE FUNCTION undone();"
        ));
        let before = app.rows_in(&tables);
        let res = app
            .post(&path, &w.client.token, json!({"body": "Any news?"}))
            .await;
        let problem = res.assert_problem(409, "concurrent_update");
        assert!(
            problem["detail"].as_str().unwrap().contains("Retry"),
            "{problem}"
        );
        assert_eq!(
            app.rows_in(&tables),
            before,
            "{code}: something was written"
        );
        app.sql("DROP TRIGGER undone ON messages; DROP FUNCTION undone();");
    }
    post_message(&app, &w.client.token, &case, "Any news?").await;
}

/// On SQLite a reading connection keeps its mapping of the database file when another
/// connection commits (`db::kept_mapping`): reading the same pages again after a commit faults
/// none of them back in. SQLite alone unmaps the whole file at the reader's next transaction
/// (≈ 375 faults here). When the file changes size, the reader maps it again and reads what was
/// written.
/// The background checkpoints sync the database file through a descriptor of their own, which
/// must stay open: closing any descriptor of a file drops every POSIX lock the process holds on
/// it, and another process (the CLI, a backup) would then take this one's connections for gone.
#[cfg(target_os = "linux")]
#[actix_web::test]
async fn background_checkpoints_keep_the_connections_file_locks() {
    use std::os::fd::AsRawFd;

    /// Whether any process, this one included, holds a lock on SQLite's SHARED byte range (510
    /// bytes from 1 GiB + 2, as its unix VFS takes them). An open file description lock is
    /// refused by a POSIX lock of the same process too, so this one can ask.
    fn shared_range_locked(file: &std::fs::File) -> bool {
        // SAFETY: a zeroed flock is a valid value; the fields that matter are set below.
        let mut probe: libc::flock = unsafe { std::mem::zeroed() };
        probe.l_type = libc::F_WRLCK as i16;
        probe.l_whence = libc::SEEK_SET as i16;
        probe.l_start = 0x4000_0002;
        probe.l_len = 510;
        // SAFETY: F_OFD_GETLK reads and fills the flock it is given.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut probe) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        probe.l_type != libc::F_UNLCK as i16
    }
    let app = spawn().await;
    if app._db.is_postgres() {
        return;
    }
    let path = app._db.url().strip_prefix("sqlite://").unwrap().to_owned();
    // Kept open to the end of the test, so the probe itself drops no lock.
    let probe = std::fs::File::open(&path).unwrap();
    assert!(
        shared_range_locked(&probe),
        "the pool's connections hold their SHARED locks"
    );
    db::spawn_checkpoints(&app.state.pool);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        shared_range_locked(&probe),
        "the connections' locks are gone after the background checkpoints ran"
    );
}

#[cfg(target_os = "linux")]
#[actix_web::test]
async fn a_reader_keeps_its_mapping_of_the_file_across_commits() {
    use diesel::connection::SimpleConnection;

    #[derive(QueryableByName)]
    struct Total {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    /// The filler's total length, and the page faults of this thread while reading it.
    fn read_filler(conn: &mut db::DbConnection) -> (i64, i64) {
        let faults = || {
            let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
            // SAFETY: getrusage fills the struct it is given.
            assert_eq!(
                unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) },
                0
            );
            // SAFETY: filled above.
            unsafe { usage.assume_init() }.ru_minflt
        };
        let before = faults();
        let total = diesel::sql_query("SELECT SUM(LENGTH(x)) AS n FROM filler")
            .get_result::<Total>(conn)
            .expect("the filler reads")
            .n;
        (total, faults() - before)
    }
    let app = spawn().await;
    if app._db.is_postgres() {
        return;
    }
    let path = app._db.url().trim_start_matches("sqlite://").to_owned();
    let file_len = || std::fs::metadata(&path).unwrap().len();
    // 3 000 rows of 3 000 bytes, a page each (12 MB, in a 16 MiB file), in the file itself
    // rather than the log (pages in the log are read with read(), not through the mapping).
    app.sql(
        "CREATE TABLE filler (x BLOB NOT NULL); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
         INSERT INTO filler SELECT randomblob(3000) FROM n; \
         PRAGMA wal_checkpoint(TRUNCATE);",
    );
    let size = file_len();
    assert_eq!(
        size % (16 << 20),
        0,
        "the file grows in whole steps: {size} bytes"
    );
    let mut reader = app.state.pool.get().unwrap();
    let mut beside = app.state.pool.get().unwrap();
    assert_eq!(read_filler(&mut reader).0, 3000 * 3000);

    // The file grows (16 to 32 MiB) by a checkpoint: the reader maps it anew, and the pages
    // fault in (about one fault for 16 pages).
    beside
        .batch_execute(
            "INSERT INTO filler SELECT randomblob(3000) FROM filler; \
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    assert_eq!(file_len(), 32 << 20);
    let (total, faults_after_growth) = read_filler(&mut reader);
    assert_eq!(total, 6000 * 3000);
    assert!(
        faults_after_growth >= 80,
        "the reader maps the grown file: {faults_after_growth} faults"
    );

    // A commit that leaves the file's size alone: the reader keeps its mapping.
    beside
        .batch_execute("CREATE TABLE beside (x INTEGER); INSERT INTO beside VALUES (1);")
        .unwrap();
    let (total, faults_after_commit) = read_filler(&mut reader);
    assert_eq!(total, 6000 * 3000);
    assert!(
        faults_after_commit * 10 < faults_after_growth,
        "the reader mapped the file again after a commit: {faults_after_commit} faults, \
         {faults_after_growth} for a new mapping"
    );

    // The file shrinks (32 to 16 MiB) by a VACUUM: the reader maps it anew, within its end.
    beside
        .batch_execute(
            "DELETE FROM filler WHERE rowid > 1000; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    assert_eq!(file_len(), 16 << 20);
    let (total, faults_after_shrink) = read_filler(&mut reader);
    assert_eq!(total, 1000 * 3000);
    assert!(
        faults_after_shrink >= 20,
        "the reader maps the shrunk file: {faults_after_shrink} faults"
    );
}

/// The card and the case list need no shared snapshot (the card is one statement, the caller's
/// check and the unread counts are their own): on PostgreSQL they send no BEGIN and COMMIT, two
/// round trips of the card's four; on SQLite they run in one transaction as every read does. A
/// card with open requests, or a closed case's with its survey, reads them with its case row in
/// one transaction on either engine.
#[actix_web::test]
async fn the_card_and_the_list_skip_begin_on_postgres_and_open_requests_and_surveys_share_a_snapshot()
 {
    let app = spawn_with(&[("DOSSIER_DB_POOL_SIZE", "1")]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    let recorded = app.record_statements();
    // The first word of each statement a GET runs.
    let statements = async |path: &str| {
        recorded.start();
        app.get(path, &w.a_operator.token).await.assert_status(200);
        let sent = recorded.take();
        sent.iter()
            .map(|sql| sql.split_whitespace().next().unwrap_or("").to_uppercase())
            .collect::<Vec<_>>()
    };
    let card = format!("/v1/cases/{case}");
    // In one transaction on SQLite, none on PostgreSQL.
    let read = |inner: &[&'static str]| {
        if app._db.is_postgres() {
            inner.to_vec()
        } else {
            [&["BEGIN"], inner, &["COMMIT"]].concat()
        }
    };
    // The caller, then the card with its agents.
    assert_eq!(statements(&card).await, read(&["SELECT", "SELECT"]));
    // The caller, the page, its unread counts.
    assert_eq!(
        statements("/v1/cases").await,
        read(&["SELECT", "SELECT", "SELECT"])
    );
    app.post(
        &format!("{card}/requests"),
        &w.a_operator.token,
        json!({"kind": "question", "prompt": "Does he own a car?"}),
    )
    .await
    .assert_status(201);
    // The open request is listed from the case row's snapshot: PostgreSQL reads the card again
    // inside a transaction.
    let expected = if app._db.is_postgres() {
        vec!["SELECT", "SELECT", "BEGIN", "SELECT", "SELECT", "COMMIT"]
    } else {
        read(&["SELECT", "SELECT", "SELECT"])
    };
    assert_eq!(statements(&card).await, expected);
    let res = app.get(&card, &w.a_operator.token).await;
    assert_eq!(
        res.assert_status(200)["open_requests"][0]["prompt"],
        "Does he own a car?"
    );

    // So is a closed case's last survey.
    let closed = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &closed).await;
    act(&app, &w.a_operator.token, &closed, "complete")
        .await
        .assert_status(200);
    app.post(
        &format!("/v1/cases/{closed}/transitions"),
        &w.client.token,
        json!({"action": "confirm_completion", "rating": 4}),
    )
    .await
    .assert_status(200);
    assert_eq!(statements(&format!("/v1/cases/{closed}")).await, expected);
}

/// A write that records audit rows appends them to the one audit chain and locks its head row
/// to its commit (on PostgreSQL every other such writer waits for it): the chain is the write's
/// last step, so nothing else runs while the head is locked.
#[actix_web::test]
async fn a_write_appends_to_the_audit_chain_last() {
    let app = spawn_with(&[("DOSSIER_DB_POOL_SIZE", "1")]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let recorded = app.record_statements();
    recorded.start();
    post_message(&app, &w.client.token, &case, "Any news?").await;
    let sent = recorded.take_unquoted();
    let head = sent
        .iter()
        .position(|sql| sql.starts_with("UPDATE audit_head"))
        .expect("the chain's head moved");
    // Inside the request's own transaction: its savepoint in SQLite's batch of writes.
    let ends = if app._db.is_postgres() {
        "COMMIT"
    } else {
        "RELEASE SAVEPOINT diesel_savepoint_1"
    };
    let end = head
        + sent[head..]
            .iter()
            .position(|sql| sql.starts_with(ends))
            .expect("the write ended");
    // The message, the sender's read mark and the notification come before.
    for write in [
        "INSERT INTO messages",
        "INTO message_reads",
        "INSERT INTO notifications",
    ] {
        assert!(
            sent[..head].iter().any(|sql| sql.contains(write)),
            "`{write}` not before the chain:\n{sent:#?}"
        );
    }
    let chain = &sent[head..end];
    assert!(
        chain
            .iter()
            .all(|sql| sql.contains("INTO audit_log") || sql.starts_with("UPDATE audit_head")),
        "statements while the chain's head is locked:\n{chain:#?}"
    );
    // The case has no assignee and no agents, so nobody is looked up by id: no statement for
    // an empty list of ids (diesel writes `IN ()` as `1=0`).
    assert!(
        !sent.iter().any(|sql| sql.contains("1=0")),
        "a statement that cannot match:\n{sent:#?}"
    );
}

/// A write may append more rows than one statement can bind (SQLite takes 32 766 values,
/// PostgreSQL 65 535; a row is 17): they are stored in several, and still chain.
#[actix_web::test]
async fn a_write_appending_more_rows_than_one_statement_binds_stays_chained() {
    let app = spawn().await;
    let rows = 4_500;
    db::write(&app.state.pool, move |conn| {
        let actor = Actor {
            user_id: "writer".into(),
            role: Role::Platform,
            request_id: "many rows".into(),
        };
        let changes = (0..rows)
            .map(|i| Change::entity("agency", &format!("agency {i}"), None, "bulk"))
            .collect();
        Ok(audit::append(conn, &actor, changes)?)
    })
    .await
    .unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'bulk'"),
        rows
    );
    let chain = audit::verify(&mut app.state.pool.get().unwrap()).unwrap();
    assert_eq!(chain.first_broken_seq, None);
    assert!(chain.rows_checked >= rows);
}

/// A write that appends more than once (a suspension: its fields, then the storyline entry of
/// its reason) links all of its rows in one pass: the chain's head moves once, and the rows are
/// stored in one statement.
#[actix_web::test]
async fn a_writes_appends_move_the_chain_head_once() {
    let app = spawn_with(&[("DOSSIER_DB_POOL_SIZE", "1")]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    let recorded = app.record_statements();
    recorded.start();
    act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    let sent = recorded.take_unquoted();
    let count = |start: &str| sent.iter().filter(|sql| sql.starts_with(start)).count();
    assert_eq!(
        count("UPDATE audit_head"),
        2,
        "one move of the head and one of its hash:\n{sent:#?}"
    );
    assert_eq!(count("INSERT INTO audit_log"), 1, "{sent:#?}");
    // The suspension's rows (status, reason, the storyline event) follow each other.
    let rows = app
        .get(&format!("/v1/cases/{case}/audit?limit=3"), &w.a_admin.token)
        .await
        .assert_status(200)["items"]
        .clone();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows[0]["entity"], "storyline_event");
    assert!(
        rows[1..].iter().all(|r| r["action"] == "suspend"),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .all(|r| r["request_id"] == rows[0]["request_id"])
    );
    for pair in rows.windows(2) {
        let seq = |row: &serde_json::Value| row["seq"].as_i64().unwrap();
        assert_eq!(seq(&pair[0]), seq(&pair[1]) + 1);
        assert_eq!(pair[0]["prev_hash"], pair[1]["hash"]);
    }
    let chain = audit::verify(&mut app.state.pool.get().unwrap()).unwrap();
    assert_eq!(chain.first_broken_seq, None);
}

/// A versioned change that finds its row changed since it read it (PostgreSQL, where both read
/// before either writes) is 412 for a caller who sent `If-Match` and 409 `concurrent_update` for
/// one who did not, and writes nothing: the same on every resource (an agency here, a trigger in
/// triggers.rs). On SQLite the one writer runs them in turn: the `If-Match` is simply stale.
#[actix_web::test]
async fn a_change_that_lost_a_race_is_412_with_if_match_and_409_without() {
    let app = spawn().await;
    let admin = app.admin().await;
    let agency = app.agency(&admin, "Racing").await;
    let path = format!("/v1/agencies/{agency}");
    let bump =
        format!("UPDATE agencies SET version = version + 1, name = 'Bumped' WHERE id = '{agency}'");
    let rename = || Some(json!({"name": "Renamed"}));
    let v1 = [("If-Match", "\"1\"")];
    let patch = app.call("PATCH", &path, &admin, rename(), &v1);
    let res = app.while_held(&bump, patch).await;
    res.assert_problem(412, "precondition_failed");
    let patch = app.call("PATCH", &path, &admin, rename(), &[]);
    let res = app.while_held(&bump, patch).await;
    if app._db.is_postgres() {
        res.assert_problem(409, "concurrent_update");
        let now = app.get(&path, &admin).await;
        assert_eq!(now.assert_status(200)["name"], "Bumped");
    } else {
        assert_eq!(res.assert_status(200)["name"], "Renamed");
    }
}

/// A write held up past `DOSSIER_DB_LOCK_TIMEOUT_MS` (another transaction holding the case's row
/// on PostgreSQL, another process holding SQLite's write lock), or on PostgreSQL past
/// `DOSSIER_DB_STATEMENT_TIMEOUT_MS`, fails with 503 `database_busy` and `Retry-After`, writes
/// nothing, and passes once the lock is gone.
#[actix_web::test]
async fn a_write_held_up_past_a_database_limit_is_503_and_writes_nothing() {
    let lock_limited = [
        ("DOSSIER_DB_LOCK_TIMEOUT_MS", "300"),
        ("DOSSIER_DB_STATEMENT_TIMEOUT_MS", "4000"),
    ];
    let app = spawn_with(&lock_limited).await;
    if app._db.is_postgres() {
        // Every pooled connection carries the limits, the one that ran the migrations too.
        let conns: Vec<_> = (0..app.state.settings.db_pool_size)
            .map(|_| app.state.pool.get().unwrap())
            .collect();
        for mut conn in conns {
            let limits: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
                "current_setting('lock_timeout') || ' ' || current_setting('statement_timeout')",
            ))
            .get_result(&mut *conn)
            .unwrap();
            assert_eq!(limits, "300ms 4s");
        }
    }
    held_up_then_released(&app).await;
    if app._db.is_postgres() {
        // A lock waited for past the statement's own limit ends the same way.
        let app = spawn_with(&[
            ("DOSSIER_DB_LOCK_TIMEOUT_MS", "10000"),
            ("DOSSIER_DB_STATEMENT_TIMEOUT_MS", "300"),
        ])
        .await;
        held_up_then_released(&app).await;
    }
}

async fn held_up_then_released<S>(app: &crate::helpers::TestApp<S>)
where
    S: AppService,
{
    use diesel::connection::SimpleConnection;
    let w = World::new(app).await;
    let case = id(&buy(app, &w.client.token, &w.service_a, "card").await);
    let path = format!("/v1/cases/{case}");
    let audit_rows = format!("SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}'");
    let rows = app.count(&audit_rows);
    let mut held = app.state.pool.get().unwrap();
    let hold = match app._db.is_postgres() {
        true => format!("BEGIN; UPDATE cases SET title = title WHERE id = '{case}'"),
        false => "BEGIN IMMEDIATE".to_owned(),
    };
    held.batch_execute(&hold).unwrap();
    let started = std::time::Instant::now();
    let res = app
        .patch(&path, &w.client.token, json!({"title": "Renamed"}))
        .await;
    let waited = started.elapsed();
    held.batch_execute("ROLLBACK").unwrap();
    res.assert_problem(503, "database_busy");
    assert_eq!(res.header("retry-after"), Some("1"));
    assert!(
        waited >= std::time::Duration::from_millis(300),
        "it waited for the lock first: {waited:?}"
    );
    assert_eq!(app.count(&audit_rows), rows);
    let card = app.get(&path, &w.client.token).await;
    assert_ne!(card.assert_status(200)["title"], "Renamed");
    let res = app
        .patch(&path, &w.client.token, json!({"title": "Renamed"}))
        .await;
    assert_eq!(res.assert_status(200)["title"], "Renamed");
    assert_eq!(app.count(&audit_rows), rows + 1);
}
