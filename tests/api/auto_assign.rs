//! Automatic assignment: a paid case goes to the agency's available operator with the most
//! room, in turn between equals; with nobody free it waits in the queue until an operator
//! becomes available.

use serde_json::{Value, json};

use crate::helpers::{AppService, Response, TestApp, spawn_with};
use crate::world::{World, act, buy, id, set_presence, start_case};

/// Only `available` operators are given work: one who does not want to be disturbed, or is
/// busy, is passed over and the case waits; available again, they get it.
#[actix_web::test]
async fn operators_not_available_are_given_no_case() {
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    set_presence(&app, &w.a_operator.token, "do_not_disturb").await;
    set_presence(&app, &w.a_admin.token, "busy").await;
    let queued = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let assignee = || async {
        let card = app
            .get(&format!("/v1/cases/{queued}"), &w.a_admin.token)
            .await;
        card.assert_status(200)["assignee"]["id"].clone()
    };
    assert_eq!(assignee().await, Value::Null);
    assert_eq!(app.rows_in(&["rule_log"]), [0]);
    set_presence(&app, &w.a_operator.token, "available").await;
    assert_eq!(assignee().await, w.a_operator.id.as_str());
    assert_eq!(app.rows_in(&["rule_log"]), [1]);
}

#[actix_web::test]
async fn a_paid_case_goes_to_the_available_operator_with_most_room_in_turn() {
    let app = spawn_with(&[("DOSSIER_OPERATOR_CAPACITY", "2")]).await;
    let w = World::new(&app).await;
    // Nobody available: the case waits, unassigned.
    let queued = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let card = app
        .get(&format!("/v1/cases/{queued}"), &w.a_admin.token)
        .await;
    assert!(card.assert_status(200)["assignee"].is_null());
    assert_eq!(app.rows_in(&["rule_log"]), [0]);

    // The operator becomes available: the queued case is theirs.
    set_presence(&app, &w.a_operator.token, "available").await;
    let card = app
        .get(&format!("/v1/cases/{queued}"), &w.a_admin.token)
        .await;
    assert_eq!(
        card.assert_status(200)["assignee"]["id"],
        w.a_operator.id.as_str()
    );
    let res = app.get("/v1/rule-log", &w.a_admin.token).await;
    let entry = res.assert_status(200)["items"][0].clone();
    assert_eq!(entry["rule"], "auto_assign");
    assert_eq!(entry["trigger"], "operator_available");
    assert_eq!(entry["case_id"], queued.as_str());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{queued}' \
             AND action = 'auto_assign' AND actor_id IS NULL AND request_id = '{}' \
             AND new_value = '{}'",
            entry["id"].as_str().unwrap(),
            w.a_operator.id
        )),
        1
    );
    let bell = app.get("/v1/notifications", &w.a_operator.token).await;
    assert_eq!(bell.assert_status(200)["items"][0]["event"], "assigned");

    // The admin becomes available too: the next case goes to the one with more room.
    set_presence(&app, &w.a_admin.token, "available").await;
    let second = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(second["assignee"]["id"], w.a_admin.id.as_str());
    // Equal room (one each): the one served longest ago.
    let third = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(third["assignee"]["id"], w.a_operator.id.as_str());
    let fourth = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(fourth["assignee"]["id"], w.a_admin.id.as_str());
    // Both full (capacity 2): the next one queues.
    let fifth = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(fifth["assignee"].is_null());

    // A bank transfer waits for its payment; another agency's operators never get it.
    set_presence(&app, &w.b_operator.token, "available").await;
    let transfer = id(&buy(&app, &w.client.token, &w.service_b, "bank_transfer").await);
    let card = app
        .get(&format!("/v1/cases/{transfer}"), &w.b_admin.token)
        .await;
    assert!(card.assert_status(200)["assignee"].is_null());
    let res = app
        .post(
            &format!("/v1/cases/{transfer}/transitions"),
            &w.platform.token,
            json!({"action": "confirm_payment"}),
        )
        .await;
    assert_eq!(
        res.assert_status(200)["case"]["assignee"]["id"],
        w.b_operator.id.as_str()
    );
    let res = app.get("/v1/rule-log", &w.b_admin.token).await;
    let entry = &res.assert_status(200)["items"][0];
    assert_eq!(entry["trigger"], "payment_confirmed");
}

#[actix_web::test]
async fn busy_or_unavailable_operators_get_no_work() {
    let app = spawn_with(&[("DOSSIER_OPERATOR_CAPACITY", "1")]).await;
    let w = World::new(&app).await;
    set_presence(&app, &w.a_operator.token, "busy").await;
    set_presence(&app, &w.a_admin.token, "away").await;
    // Agents are not operators, even when available.
    set_presence(&app, &w.a_agent.token, "available").await;
    let case = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(case["assignee"].is_null());
    // Available with no room left (a case taken by hand): still nothing more.
    let taken = id(&case);
    crate::world::take(&app, &w.a_operator.token, &taken).await;
    set_presence(&app, &w.a_operator.token, "available").await;
    let next = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(next["assignee"].is_null());
    assert_eq!(app.rows_in(&["rule_log"]), [0]);
}

#[actix_web::test]
async fn two_assignments_at_once_never_overfill_an_operator() {
    let app = spawn_with(&[("DOSSIER_OPERATOR_CAPACITY", "1")]).await;
    let w = World::new(&app).await;
    set_presence(&app, &w.a_operator.token, "busy").await;
    let first = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    app.sql(&format!(
        "UPDATE presence SET status = 'available' WHERE user_id = '{}'",
        w.a_operator.id
    ));
    // Another write gives the operator their one place while a payment looks for one.
    let res = app
        .while_held(
            &format!(
                "UPDATE presence SET last_assigned_at = '2026-01-01 09:00:00' \
                 WHERE user_id = '{op}'; \
                 UPDATE cases SET assignee_id = '{op}', version = version + 1 \
                 WHERE id = '{first}'",
                op = w.a_operator.id
            ),
            app.post(
                "/v1/cases",
                &w.client.token,
                json!({"service_id": w.service_a, "payment_method": "card",
                       "title": "Second case", "description": "Another one to look into."}),
            ),
        )
        .await;
    assert!(res.assert_status(201)["assignee"].is_null());
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM cases WHERE assignee_id = '{}'",
            w.a_operator.id
        )),
        1
    );
}

#[actix_web::test]
async fn writes_that_give_an_operator_work_wait_for_an_assignment_serving_the_queue() {
    // The queue's lock held as an automatic assignment holds it while it counts each
    // operator's room: on PostgreSQL a take, delegation or reopening committed meanwhile
    // would have overfilled an operator (a payment always waited: it serves the queue).
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let queue = app.under_lock(&format!("auto_assign:{}", w.agency_a), "SELECT 1");
    let case = id(&buy(&app, &w.client.token, &w.service_a, "bank_transfer").await);
    let paid = act(&app, &w.platform.token, &case, "confirm_payment");
    let res = app.while_held(&queue, paid).await;
    assert_eq!(res.assert_status(200)["case"]["status"], "in_approval");
    let assignment = format!("/v1/cases/{case}/assignment");
    let taken = app.post(&assignment, &w.a_operator.token, json!({"action": "take"}));
    let res = app.while_held(&queue, taken).await;
    assert_eq!(
        res.assert_status(200)["assignee"]["id"],
        w.a_operator.id.as_str()
    );
    let body = json!({"action": "delegate", "user_id": w.a_admin.id});
    let delegated = app.post(&assignment, &w.a_operator.token, body);
    let res = app.while_held(&queue, delegated).await;
    assert_eq!(
        res.assert_status(200)["assignee"]["id"],
        w.a_admin.id.as_str()
    );
    start_case(&app, &w, &case).await;
    act(&app, &w.a_admin.token, &case, "complete")
        .await
        .assert_status(200);
    let reopened = act(&app, &w.a_admin.token, &case, "reopen");
    let res = app.while_held(&queue, reopened).await;
    assert_eq!(res.assert_status(200)["case"]["status"], "in_progress");
}

/// A card purchase waits for its agency's queue before it takes the year's case number: while
/// one agency's queue is busy, another agency's purchases go on (PostgreSQL; SQLite serializes
/// every write).
#[actix_web::test]
async fn a_busy_queue_holds_up_its_own_agencys_purchases_only() {
    use diesel::connection::SimpleConnection;
    let app = spawn_with(&[]).await;
    if !app._db.is_postgres() {
        return;
    }
    let w = World::new(&app).await;
    let mut held = app.state.pool.get().unwrap();
    let queue = format!("auto_assign:{}", w.agency_a);
    held.batch_execute(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock(hashtext('{queue}'))"
    ))
    .unwrap();
    let held_up = buy(&app, &w.client.token, &w.service_a, "card");
    let meanwhile = async {
        while app.waiting_on_locks() == 0 {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let other = buy(&app, &w.client2.token, &w.service_b, "card").await;
        held.batch_execute("COMMIT").unwrap();
        other
    };
    let both = futures_util::future::join(held_up, meanwhile);
    let (mine, theirs) = tokio::time::timeout(std::time::Duration::from_secs(20), both)
        .await
        .expect("agency B's purchase went on while agency A's queue was busy");
    assert_eq!(mine["status"], "in_approval");
    assert_eq!(theirs["status"], "in_approval");
}

/// Writes that serve an agency's queue or end its operators' sessions wait for the queue
/// before they lock an operator's rows: an operator going available, an admin raising their
/// capacity, setting their password or deactivating them. A write that holds the queue and then changes those rows
/// goes on, where two such writes deadlocked and one failed (PostgreSQL; SQLite serializes
/// every write).
#[actix_web::test]
async fn writes_that_serve_the_queue_take_it_before_the_operators_rows() {
    let app = spawn_with(&[]).await;
    if !app._db.is_postgres() {
        return;
    }
    let w = World::new(&app).await;
    let operator = format!("/v1/users/{}", w.a_operator.id);
    let res = queue_held_while(
        &app,
        &w,
        app.put(
            "/v1/me/presence",
            &w.a_operator.token,
            json!({"status": "available"}),
        ),
    )
    .await;
    assert_eq!(res.assert_status(200)["status"], "available");
    let res = queue_held_while(
        &app,
        &w,
        app.patch(&operator, &w.a_admin.token, json!({"capacity": 9})),
    )
    .await;
    assert_eq!(res.assert_status(200)["capacity"], 9);
    let body = json!({"password": "a brand new passphrase"});
    let res = queue_held_while(&app, &w, app.patch(&operator, &w.a_admin.token, body)).await;
    res.assert_status(200);
    let res = queue_held_while(
        &app,
        &w,
        app.patch(&operator, &w.a_admin.token, json!({"active": false})),
    )
    .await;
    assert_eq!(res.assert_status(200)["active"], false);
}

/// Runs `request` while agency A's queue is held on a connection of its own, which, once the
/// request waits, changes the rows a write on A's operator would lock (the agency's, the
/// operator's, their admin's), as an agency's deactivation does after taking the queue.
async fn queue_held_while<S>(
    app: &TestApp<S>,
    w: &World,
    request: impl std::future::Future<Output = Response>,
) -> Response
where
    S: AppService,
{
    use diesel::connection::SimpleConnection;
    let mut held = app.state.pool.get().unwrap();
    let queue = format!("auto_assign:{}", w.agency_a);
    held.batch_execute(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock(hashtext('{queue}'))"
    ))
    .unwrap();
    let meanwhile = async {
        for round in 0.. {
            if app.waiting_on_locks() > 0 {
                break;
            }
            assert!(round < 250, "the request never waited for the queue");
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let changed = held.batch_execute(&format!(
            "SET LOCAL lock_timeout = '5s'; \
             UPDATE agencies SET name = name WHERE id = '{}'; \
             UPDATE users SET name = name WHERE id IN ('{}', '{}')",
            w.agency_a, w.a_operator.id, w.a_admin.id
        ));
        held.batch_execute("COMMIT").unwrap();
        changed
    };
    let (res, changed) = futures_util::future::join(request, meanwhile).await;
    changed.expect("the queue's holder could not change the operator's rows");
    res
}

#[actix_web::test]
async fn the_queue_is_served_oldest_first_and_room_freed_later_is_filled_by_the_worker() {
    let app = spawn_with(&[("DOSSIER_OPERATOR_CAPACITY", "1")]).await;
    let w = World::new(&app).await;
    set_presence(&app, &w.a_operator.token, "available").await;
    let first = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(first["assignee"]["id"], w.a_operator.id.as_str());
    let queued = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    // The operator finishes their case; the next payment serves the older case first.
    let first = id(&first);
    start_case(&app, &w, &first).await;
    app.post(
        &format!("/v1/cases/{first}/transitions"),
        &w.a_operator.token,
        json!({"action": "complete", "resolution_type": "solved", "resolution": "Found."}),
    )
    .await
    .assert_status(200);
    let newest = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(newest["assignee"].is_null());
    let card = app
        .get(&format!("/v1/cases/{queued}"), &w.a_admin.token)
        .await;
    assert_eq!(
        card.assert_status(200)["assignee"]["id"],
        w.a_operator.id.as_str()
    );
    // The client cancels it: the worker's next pass fills the room with the newest.
    app.post(
        &format!("/v1/cases/{queued}/transitions"),
        &w.client.token,
        json!({"action": "cancel", "reason": "Solved it myself."}),
    )
    .await
    .assert_status(200);
    assert_eq!(dossier::rules::serve_queues(&app.state).await.unwrap(), 1);
    let card = app
        .get(&format!("/v1/cases/{}", id(&newest)), &w.a_admin.token)
        .await;
    assert_eq!(
        card.assert_status(200)["assignee"]["id"],
        w.a_operator.id.as_str()
    );
    let res = app.get("/v1/rule-log", &w.a_admin.token).await;
    assert_eq!(res.assert_status(200)["items"][0]["trigger"], "queue_check");
    assert_eq!(dossier::rules::serve_queues(&app.state).await.unwrap(), 0);
}

/// `PATCH /v1/users/{user}` {`capacity`} as `admin`.
async fn set_capacity<S>(app: &TestApp<S>, admin: &str, user: &str, capacity: Value) -> Response
where
    S: AppService,
{
    let body = json!({ "capacity": capacity });
    app.patch(&format!("/v1/users/{user}"), admin, body).await
}

/// `user`'s entry in the team `GET /v1/presence` shows `admin`.
async fn team_member<S>(app: &TestApp<S>, admin: &str, user: &str) -> Value
where
    S: AppService,
{
    let team = app.get("/v1/presence", admin).await;
    let items = team.assert_status(200)["items"].as_array().unwrap();
    let member = items.iter().find(|p| p["user"]["id"] == user);
    member.expect("a member of the team").clone()
}

#[actix_web::test]
async fn each_operator_has_their_own_capacity_set_by_their_admin() {
    let app = spawn_with(&[("DOSSIER_OPERATOR_CAPACITY", "2")]).await;
    let w = World::new(&app).await;
    let admin = &w.a_admin.token;
    // Nobody has set one: everyone follows the server's.
    let me = app.get(&format!("/v1/users/{}", w.a_admin.id), admin).await;
    assert_eq!(me.assert_status(200)["capacity"], 2);
    assert_eq!(me.body["capacity_set"], false);
    let agent = app.get(&format!("/v1/users/{}", w.a_agent.id), admin).await;
    assert!(agent.assert_status(200)["capacity"].is_null());

    // The admin takes no work automatically; the operator holds one case at most.
    let res = set_capacity(&app, admin, &w.a_admin.id, json!(0)).await;
    assert_eq!(res.assert_status(200)["capacity"], 0);
    assert_eq!(res.body["capacity_set"], true);
    let res = set_capacity(&app, admin, &w.a_operator.id, json!(1)).await;
    assert_eq!(res.assert_status(200)["capacity"], 1);
    assert_eq!(res.body["version"], 2);
    set_presence(&app, admin, "available").await;
    set_presence(&app, &w.a_operator.token, "available").await;
    let first = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert_eq!(first["assignee"]["id"], w.a_operator.id.as_str());
    let queued = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    let card = app.get(&format!("/v1/cases/{queued}"), admin).await;
    assert!(card.assert_status(200)["assignee"].is_null());
    let op = team_member(&app, admin, &w.a_operator.id).await;
    assert_eq!([&op["capacity"], &op["workload"], &op["room"]], [1, 1, 0]);
    let boss = team_member(&app, admin, &w.a_admin.id).await;
    assert_eq!([&boss["capacity"], &boss["room"]], [0, 0]);

    // Room made for the operator goes to the queue in the same write.
    set_capacity(&app, admin, &w.a_operator.id, json!(3))
        .await
        .assert_status(200);
    let card = app.get(&format!("/v1/cases/{queued}"), admin).await;
    assert_eq!(
        card.assert_status(200)["assignee"]["id"],
        w.a_operator.id.as_str()
    );
    let log = app.get("/v1/rule-log", admin).await;
    let entry = &log.assert_status(200)["items"][0];
    assert_eq!(entry["trigger"], "capacity_changed");
    assert_eq!(entry["case_id"], queued.as_str());
    let detail = entry["detail"].as_str().unwrap();
    assert!(detail.contains("room for 2 of 3 open cases"), "{detail}");

    // Lowered below the work held: nothing is taken back, no more is given.
    set_capacity(&app, admin, &w.a_operator.id, json!(1))
        .await
        .assert_status(200);
    let op = team_member(&app, admin, &w.a_operator.id).await;
    assert_eq!([&op["capacity"], &op["workload"], &op["room"]], [1, 2, 0]);
    let waiting = buy(&app, &w.client.token, &w.service_a, "card").await;
    assert!(waiting["assignee"].is_null(), "{waiting}");
    // `null` follows the server's again.
    let res = set_capacity(&app, admin, &w.a_operator.id, Value::Null).await;
    assert_eq!(res.assert_status(200)["capacity"], 2);
    assert_eq!(res.body["capacity_set"], false);
    // Only the admin's 0 is kept.
    let own = "SELECT COUNT(*) AS n FROM users WHERE capacity IS NOT NULL";
    assert_eq!(app.count(own), 1);

    // The admin is given room: the waiting case is theirs at once.
    let waiting = id(&waiting);
    let assignee = async |case: &str| {
        let card = app.get(&format!("/v1/cases/{case}"), admin).await;
        card.assert_status(200)["assignee"]["id"].clone()
    };
    set_capacity(&app, admin, &w.a_admin.id, json!(5))
        .await
        .assert_status(200);
    assert_eq!(assignee(&waiting).await, w.a_admin.id.as_str());
    // The case queued again behind the API's back, with room left: a capacity lowered serves
    // nothing; raised, it serves the queue.
    app.sql(&format!(
        "UPDATE cases SET assignee_id = NULL, version = version + 1 WHERE id = '{waiting}'"
    ));
    let served = app.rows_in(&["rule_log"]);
    set_capacity(&app, admin, &w.a_admin.id, json!(4))
        .await
        .assert_status(200);
    assert!(assignee(&waiting).await.is_null());
    assert_eq!(app.rows_in(&["rule_log"]), served);
    set_capacity(&app, admin, &w.a_admin.id, json!(5))
        .await
        .assert_status(200);
    assert_eq!(assignee(&waiting).await, w.a_admin.id.as_str());
}

#[actix_web::test]
async fn only_operators_have_a_capacity_and_only_their_admins_set_it() {
    let app = spawn_with(&[]).await;
    let w = World::new(&app).await;
    let not_allowed = |res: &Response| {
        let body = res.assert_problem(422, "validation_failed");
        assert_eq!(body["errors"][0]["pointer"], "/capacity", "{body}");
        assert_eq!(body["errors"][0]["code"], "not_allowed", "{body}");
    };
    // Agents and clients are no operators.
    not_allowed(&set_capacity(&app, &w.a_admin.token, &w.a_agent.id, json!(2)).await);
    not_allowed(&set_capacity(&app, &w.platform.token, &w.client.id, json!(2)).await);
    let new_user = |role: &str, capacity: i64| {
        json!({"email": format!("new.{role}@a.example"), "name": "Someone new", "role": role,
               "password": "a long enough password", "capacity": capacity})
    };
    not_allowed(
        &app.post("/v1/users", &w.a_admin.token, new_user("agent", 2))
            .await,
    );
    // Out of range (past the column's type too), or not a whole number.
    for capacity in [json!(1001), json!(70000), json!(-1), json!(1.5), json!("3")] {
        let res = set_capacity(&app, &w.a_admin.token, &w.a_operator.id, capacity.clone()).await;
        assert_eq!(res.status.as_u16(), 422, "{capacity}: {}", res.body);
        assert_eq!(
            res.body["errors"][0]["pointer"], "/capacity",
            "{}",
            res.body
        );
    }
    // Another agency's admin does not see the operator; the operator manages nobody.
    set_capacity(&app, &w.b_admin.token, &w.a_operator.id, json!(9))
        .await
        .assert_problem(404, "not_found");
    set_capacity(&app, &w.a_operator.token, &w.a_operator.id, json!(9))
        .await
        .assert_problem(403, "forbidden");
    // Platform staff without the admin flag do not change a platform admin's account.
    set_capacity(&app, &w.platform_staff.token, &w.platform.id, json!(9))
        .await
        .assert_problem(403, "forbidden");
    // Nothing above changed or made anyone.
    let changed = "SELECT COUNT(*) AS n FROM users WHERE capacity IS NOT NULL OR version > 1";
    assert_eq!(app.count(changed), 0);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM users WHERE email LIKE 'new.%'"),
        0
    );

    // A new operator may start with one; platform staff have one too, over their tickets.
    let res = app
        .post("/v1/users", &w.a_admin.token, new_user("agency", 5))
        .await;
    assert_eq!(res.assert_status(201)["capacity"], 5);
    assert_eq!(res.body["capacity_set"], true);
    // `7.0` is 7, as JSON Schema counts integers.
    let res = set_capacity(&app, &w.platform.token, &w.platform_staff.id, json!(7.0)).await;
    assert_eq!(res.assert_status(200)["capacity"], 7);
    let staff = team_member(&app, &w.platform.token, &w.platform_staff.id).await;
    assert_eq!([&staff["capacity"], &staff["room"]], [7, 7]);
}

/// The worker's pass writes nothing for an agency whose queue is empty, however many of its
/// operators are available: one read finds the agencies with both.
#[actix_web::test]
async fn the_worker_passes_over_agencies_with_nothing_queued() {
    let app = spawn_with(&[("DOSSIER_DB_POOL_SIZE", "1")]).await;
    let w = World::new(&app).await;
    set_presence(&app, &w.a_operator.token, "available").await;
    set_presence(&app, &w.b_operator.token, "available").await;
    let recorded = app.record_statements();
    recorded.start();
    assert_eq!(dossier::rules::serve_queues(&app.state).await.unwrap(), 0);
    let statements = recorded.take();
    // One read transaction around one statement; no write opened for either agency.
    let work: Vec<&String> = statements
        .iter()
        .filter(|sql| !sql.starts_with("BEGIN ISOLATION") && *sql != "BEGIN" && *sql != "COMMIT")
        .collect();
    assert_eq!(work.len(), 1, "{statements:?}");
    assert!(work[0].starts_with("SELECT"), "{statements:?}");
}
