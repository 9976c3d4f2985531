use actix_web::test::TestRequest;
use serde_json::json;

use crate::helpers::spawn;
use crate::world::{World, id};

#[actix_web::test]
async fn platform_creates_users_of_every_role_with_the_rules_checked() {
    let app = spawn().await;
    let admin = app.admin().await;
    let agency = app.agency(&admin, "Rossi").await;
    let res = app
        .post(
            "/v1/users",
            &admin,
            json!({"email": "Op@Rossi.example", "name": "Op", "password": "long enough pass", "role": "agency",
                   "agency_id": agency, "admin": true, "locale": "it"}),
        )
        .await;
    let body = res.assert_status(201);
    assert_eq!(body["email"], "op@rossi.example");
    assert_eq!(body["agency_id"], agency.as_str());
    assert_eq!(body["locale"], "it");
    assert_eq!(
        res.header("location"),
        Some(format!("/v1/users/{}", body["id"].as_str().unwrap()).as_str())
    );
    assert_eq!(res.header("etag"), Some("\"1\""));

    let client = app
        .post(
            "/v1/users",
            &admin,
            json!({"email": "c@example.com", "name": "C", "password": "long enough pass", "role": "client",
                   "id_document_type": "passport", "id_document_number": "YA1234567", "account_number": "IT60X0542811101000000123456"}),
        )
        .await;
    assert_eq!(
        client.assert_status(201)["identity"]["id_document_number"],
        "YA1234567"
    );

    // Same e-mail in another case: 409.
    app.post("/v1/users", &admin, json!({"email": "OP@rossi.EXAMPLE", "name": "x", "password": "long enough pass", "role": "client"}))
        .await
        .assert_problem(409, "email_taken");
    // Agency users need an agency; clients may not have one; identity is for clients only.
    let res = app
        .post("/v1/users", &admin, json!({"email": "a@x.example", "name": "A", "password": "long enough pass", "role": "agent"}))
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["pointer"],
        "/agency_id"
    );
    let res = app
        .post(
            "/v1/users",
            &admin,
            json!({"email": "b@x.example", "name": "B", "password": "long enough pass", "role": "client", "agency_id": agency}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["code"],
        "not_allowed"
    );
    let res = app
        .post(
            "/v1/users",
            &admin,
            json!({"email": "b@x.example", "name": "B", "password": "long enough pass", "role": "agent",
                   "agency_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["code"],
        "unknown_agency"
    );
    let res = app
        .post(
            "/v1/users",
            &admin,
            json!({"email": "nope", "name": "", "password": "short", "role": "client"}),
        )
        .await;
    let pointers: Vec<&str> = res.assert_problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/email", "/name", "/password"]);
    // None of the refused requests wrote anything.
    let list = app.get("/v1/users?limit=100", &admin).await;
    assert_eq!(
        list.assert_status(200)["items"].as_array().unwrap().len(),
        3
    );
}

#[actix_web::test]
async fn an_agency_admin_manages_only_its_own_staff_and_agents() {
    let app = spawn().await;
    let admin = app.admin().await;
    let rossi = app.agency(&admin, "Rossi").await;
    let garcia = app.agency(&admin, "Garcia").await;
    app.create_user("boss@rossi.example", "agency", Some(&rossi), true);
    let boss = app.token("boss@rossi.example").await;
    let foreign = app.create_user("op@garcia.example", "agency", Some(&garcia), false);
    let client = app.create_user("c@example.com", "client", None, false);

    // Creates an agent of its own agency (agency_id defaults to its own).
    let res = app.post("/v1/users", &boss, json!({"email": "agent@rossi.example", "name": "Agent", "password": "long enough pass", "role": "agent"})).await;
    assert_eq!(res.assert_status(201)["agency_id"], rossi.as_str());
    // Not a client, not a platform user, not in another agency.
    for (role, agency) in [
        ("client", None),
        ("platform", None),
        ("agent", Some(garcia.as_str())),
    ] {
        let mut body = json!({"email": format!("x-{role}@x.example"), "name": "X", "password": "long enough pass", "role": role});
        if let Some(a) = agency {
            body["agency_id"] = json!(a);
        }
        app.post("/v1/users", &boss, body)
            .await
            .assert_problem(403, "forbidden");
    }
    // Sees its own people only.
    let list = app.get("/v1/users", &boss).await;
    let emails: Vec<&str> = list.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["agent@rossi.example", "boss@rossi.example"]);
    // Another agency's user and a client are invisible: 404, and cannot be patched.
    for id in [&foreign, &client] {
        app.get(&format!("/v1/users/{id}"), &boss)
            .await
            .assert_problem(404, "not_found");
        app.patch(&format!("/v1/users/{id}"), &boss, json!({"name": "Hacked"}))
            .await
            .assert_problem(404, "not_found");
    }
}

#[actix_web::test]
async fn other_roles_manage_no_users() {
    let app = spawn().await;
    let admin = app.admin().await;
    let rossi = app.agency(&admin, "Rossi").await;
    app.create_user("op@rossi.example", "agency", Some(&rossi), false);
    app.create_user("agent@rossi.example", "agent", Some(&rossi), false);
    app.create_user("c@example.com", "client", None, false);
    let target = app.create_user("other@rossi.example", "agency", Some(&rossi), false);
    for email in ["op@rossi.example", "agent@rossi.example", "c@example.com"] {
        let token = app.token(email).await;
        app.get("/v1/users", &token)
            .await
            .assert_problem(403, "forbidden");
        app.get(&format!("/v1/users/{target}"), &token)
            .await
            .assert_problem(403, "forbidden");
        app.patch(&format!("/v1/users/{target}"), &token, json!({"name": "x"}))
            .await
            .assert_problem(403, "forbidden");
        let body = json!({"email": "n@x.example", "name": "N", "password": "long enough pass", "role": "client"});
        app.post("/v1/users", &token, body)
            .await
            .assert_problem(403, "forbidden");
        app.get("/v1/agencies", &token)
            .await
            .assert_problem(403, "forbidden");
    }
}

#[actix_web::test]
async fn patch_honours_if_match_read_only_fields_and_self_lockout() {
    let app = spawn().await;
    let admin = app.admin().await;
    let id = app.create_user("c@example.com", "client", None, false);
    let me = app.get("/v1/me", &admin).await.assert_status(200).clone();
    let path = format!("/v1/users/{id}");

    let stale = TestRequest::patch()
        .uri(&path)
        .insert_header(("authorization", format!("Bearer {admin}")))
        .insert_header(("if-match", "\"7\""))
        .set_json(json!({"name": "New"}));
    app.send(stale)
        .await
        .assert_problem(412, "precondition_failed");

    let fresh = TestRequest::patch()
        .uri(&path)
        .insert_header(("authorization", format!("Bearer {admin}")))
        .insert_header(("if-match", "\"1\""))
        .set_json(json!({"name": "New", "id_document_type": "passport"}));
    let res = app.send(fresh).await;
    assert_eq!(res.assert_status(200)["version"], 2);
    assert_eq!(res.header("etag"), Some("\"2\""));

    let get = app
        .send(
            TestRequest::get()
                .uri(&path)
                .insert_header(("authorization", format!("Bearer {admin}")))
                .insert_header(("if-none-match", "\"2\"")),
        )
        .await;
    assert_eq!(get.status.as_u16(), 304);

    let res = app.patch(&path, &admin, json!({"role": "platform"})).await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["code"],
        "read_only_field"
    );
    app.patch(&path, &admin, json!({"nickname": "x"}))
        .await
        .assert_problem(400, "unknown_field");
    let res = app
        .patch(
            &format!("/v1/users/{}", me["id"].as_str().unwrap()),
            &admin,
            json!({"active": false}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["code"],
        "cannot_lock_out_self"
    );
    // Nothing above changed the user past version 2.
    assert_eq!(
        app.get(&path, &admin).await.assert_status(200)["version"],
        2
    );
}

#[actix_web::test]
async fn lists_paginate_with_cursor_and_link() {
    let app = spawn().await;
    let admin = app.admin().await;
    for i in 0..5 {
        app.create_user(&format!("c{i}@example.com"), "client", None, false);
    }
    let agency = app.agency(&admin, "Agenzia Rossi").await;
    app.create_user("agent@example.com", "agent", Some(&agency), false);
    // Several roles at once (API.md: the parameter repeats), newest first.
    let both = app.get("/v1/users?role=agent&role=client", &admin).await;
    let roles: Vec<&str> = both.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["agent", "client", "client", "client", "client", "client"]
    );
    let first = app.get("/v1/users?limit=2&role=client", &admin).await;
    let body = first.assert_status(200).clone();
    let emails = |b: &serde_json::Value| {
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(emails(&body), ["c4@example.com", "c3@example.com"]);
    let cursor = body["next_cursor"].as_str().unwrap();
    let link = first.header("link").unwrap();
    assert!(
        link.contains("rel=\"next\"") && link.contains(cursor) && link.contains("role=client"),
        "{link}"
    );
    let second = app
        .get(
            &format!("/v1/users?limit=2&role=client&cursor={cursor}"),
            &admin,
        )
        .await;
    assert_eq!(
        emails(second.assert_status(200)),
        ["c2@example.com", "c1@example.com"]
    );
    let cursor = second.body["next_cursor"].as_str().unwrap();
    let last = app
        .get(
            &format!("/v1/users?limit=2&role=client&cursor={cursor}"),
            &admin,
        )
        .await;
    assert_eq!(emails(last.assert_status(200)), ["c0@example.com"]);
    assert!(last.body["next_cursor"].is_null() && last.header("link").is_none());

    app.get("/v1/users?cursor=bogus", &admin)
        .await
        .assert_problem(400, "invalid_cursor");
    app.get("/v1/users?limit=0", &admin)
        .await
        .assert_problem(400, "invalid_query");
    app.get("/v1/users?limit=101", &admin)
        .await
        .assert_problem(400, "invalid_query");
}

/// Users and agencies are audited like everything else: each field that moved, by whom; the
/// password and a client's identity only named. Their agency's admins read them, no one else's.
#[actix_web::test]
async fn user_and_agency_changes_are_audited_without_secrets() {
    let app = spawn().await;
    let admin = app.admin().await;
    let rossi = app.agency(&admin, "Rossi").await;
    let garcia = app.agency(&admin, "Garcia").await;
    app.create_user("boss@rossi.example", "agency", Some(&rossi), true);
    app.create_user("boss@garcia.example", "agency", Some(&garcia), true);
    let boss = app.token("boss@rossi.example").await;
    let other_boss = app.token("boss@garcia.example").await;
    let client = app.create_user("c@example.com", "client", None, false);
    let rows = |entity_id: &str| {
        app.texts(&format!(
            "SELECT action || ' ' || COALESCE(field, '-') || ' ' || COALESCE(old_value, '-') || ' ' \
             || COALESCE(new_value, '-') || ' ' || COALESCE(agency_id, '-') AS t FROM audit_log \
             WHERE entity_id = '{entity_id}' ORDER BY seq"
        ))
        .into_iter()
        .map(Option::unwrap)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        rows(&rossi),
        [
            format!("create name - Rossi {rossi}"),
            format!("create active - true {rossi}")
        ]
    );

    let res = app.post("/v1/users", &boss, json!({"email": "agent@rossi.example", "name": "Agent", "password": "long enough pass", "role": "agent"})).await;
    let agent = id(res.assert_status(201));
    let tag = res.header("etag").unwrap().to_owned();
    // A stale tag changes nothing, and audits nothing.
    app.call(
        "PATCH",
        &format!("/v1/users/{agent}"),
        &boss,
        Some(json!({"name": "Nobody"})),
        &[("if-match", "\"9\"")],
    )
    .await
    .assert_problem(412, "precondition_failed");
    let res = app
        .call(
            "PATCH",
            &format!("/v1/users/{agent}"),
            &boss,
            Some(json!({"name": "Agent Smith", "password": "another long passphrase", "locale": "it"})),
            &[("if-match", &tag)],
        )
        .await;
    res.assert_status(200);
    assert_eq!(
        rows(&agent),
        [
            format!("create role - agent {rossi}"),
            format!("create email - agent@rossi.example {rossi}"),
            format!("create name - Agent {rossi}"),
            format!("create admin - false {rossi}"),
            format!("create locale - en {rossi}"),
            format!("create active - true {rossi}"),
            format!("create password - - {rossi}"),
            format!("update name Agent Agent Smith {rossi}"),
            format!("update locale en it {rossi}"),
            format!("update password - - {rossi}"),
        ]
    );
    let actors = app.texts(&format!(
        "SELECT DISTINCT actor_role AS t FROM audit_log WHERE entity_id = '{agent}'"
    ));
    assert_eq!(actors, [Some("agency".to_owned())]);

    // A client's identity: named, not kept; platform admins alone read it.
    app.patch(
        &format!("/v1/users/{client}"),
        &admin,
        json!({"id_document_number": "AB123456", "name": "Carla"}),
    )
    .await
    .assert_status(200);
    // Made from the command line (`World`'s users are): audited with no actor.
    assert_eq!(
        rows(&client),
        [
            "create role - client -",
            "create email - c@example.com -",
            "create name - c -",
            "create admin - false -",
            "create locale - en -",
            "create active - true -",
            "create password - - -",
            "update name c Carla -",
            "update id_document_number - - -"
        ]
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) AS n FROM audit_log WHERE old_value LIKE '%argon2%' \
                   OR new_value LIKE '%argon2%' OR new_value = 'AB123456'"
        ),
        0
    );

    // The agency's admin reads its people's trail; another agency's admin does not.
    let trail = |token: &str, entity_id: &str| {
        let path = format!("/v1/audit?entity_id={entity_id}");
        let (app, token) = (&app, token.to_owned());
        async move { app.listed(&path, &token).await }
    };
    assert_eq!(trail(&boss, &agent).await, 10);
    assert_eq!(trail(&other_boss, &agent).await, 0);
    assert_eq!(trail(&boss, &client).await, 0);
    assert_eq!(trail(&admin, &client).await, 9);

    // Deactivating an agency is on its record.
    app.patch(
        &format!("/v1/agencies/{garcia}"),
        &admin,
        json!({"active": false, "contact_email": "info@garcia.example"}),
    )
    .await
    .assert_status(200);
    assert_eq!(
        rows(&garcia)[2..],
        [
            format!("update contact_email - info@garcia.example {garcia}"),
            format!("update active true false {garcia}"),
        ]
    );
}

#[actix_web::test]
async fn agencies_are_platform_managed_and_readable_by_their_own_staff() {
    let app = spawn().await;
    let admin = app.admin().await;
    let rossi = app.agency(&admin, "Rossi").await;
    let garcia = app.agency(&admin, "Garcia").await;
    app.post("/v1/agencies", &admin, json!({"name": "Rossi"}))
        .await
        .assert_problem(409, "agency_name_taken");
    app.create_user("agent@rossi.example", "agent", Some(&rossi), false);
    app.create_user("c@example.com", "client", None, false);
    let agent = app.token("agent@rossi.example").await;
    let client = app.token("c@example.com").await;
    app.get(&format!("/v1/agencies/{rossi}"), &agent)
        .await
        .assert_status(200);
    app.get(&format!("/v1/agencies/{garcia}"), &agent)
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/v1/agencies/{rossi}"), &client)
        .await
        .assert_problem(403, "forbidden");
    app.post("/v1/agencies", &agent, json!({"name": "Mine"}))
        .await
        .assert_problem(403, "forbidden");
    app.patch(
        &format!("/v1/agencies/{rossi}"),
        &agent,
        json!({"name": "Mine"}),
    )
    .await
    .assert_problem(403, "forbidden");
    let res = app
        .patch(
            &format!("/v1/agencies/{rossi}"),
            &admin,
            json!({"contact_email": "Info@Rossi.example"}),
        )
        .await;
    assert_eq!(
        res.assert_status(200)["contact_email"],
        "info@rossi.example"
    );
    let list = app.get("/v1/agencies", &admin).await;
    assert_eq!(
        list.assert_status(200)["items"].as_array().unwrap().len(),
        2
    );
}

/// The admin flag opens audit logs: among platform staff only platform admins grant it (to
/// platform or agency users) or change an admin's account. Other platform staff still manage
/// everyone else, an agency admin their own agency's admins, and an admin cannot drop their own
/// flag.
#[actix_web::test]
async fn only_platform_admins_make_or_change_admins() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let staff = format!("/v1/users/{}", w.platform_staff.id);
    let admin = format!("/v1/users/{}", w.platform.id);
    let new_staff = |email: &str, admin: bool| {
        json!({"email": email, "name": "New", "password": "long enough pass", "role": "platform",
               "admin": admin, "locale": "en"})
    };
    let operator = format!("/v1/users/{}", w.a_operator.id);
    let agency_admin = format!("/v1/users/{}", w.a_admin.id);
    let client = format!("/v1/users/{}", w.client.id);
    for (path, body) in [
        (&staff, json!({"admin": true})),
        (&admin, json!({"password": "a brand new pass"})),
        (&admin, json!({"active": false})),
        (&admin, json!({"name": "Mallory"})),
        (&operator, json!({"admin": true})),
        (&agency_admin, json!({"password": "a brand new pass"})),
        (&agency_admin, json!({"email": "mallory@rossi.example"})),
        // Another user's credentials: staff would log in as them.
        (&operator, json!({"password": "a brand new pass"})),
        (&operator, json!({"email": "mallory@rossi.example"})),
        (&client, json!({"password": "a brand new pass"})),
    ] {
        app.patch(path, &w.platform_staff.token, body)
            .await
            .assert_problem(403, "forbidden");
    }
    let new_agency_admin = json!({"email": "boss@rossi.example", "name": "New", "password": "long enough pass",
                                  "role": "agency", "agency_id": w.agency_a, "admin": true});
    let new_operator = json!({"email": "boss@ops.rossi.example", "name": "New", "password": "long enough pass",
                              "role": "agency", "agency_id": w.agency_a});
    let new_agent = json!({"email": "boss@rossi.example", "name": "New", "password": "long enough pass",
                           "role": "agent", "agency_id": w.agency_a});
    for body in [
        new_staff("boss@platform.example", true),
        new_agency_admin.clone(),
        new_operator.clone(),
        new_agent,
    ] {
        app.post("/v1/users", &w.platform_staff.token, body)
            .await
            .assert_problem(403, "forbidden");
    }
    for path in [&staff, &admin, &operator, &agency_admin, &client] {
        let user = app.get(path, &w.platform.token).await;
        assert_eq!(
            user.assert_status(200)["version"],
            1,
            "a refused change landed"
        );
    }
    assert_eq!(
        app.get(&staff, &w.platform.token).await.body["admin"],
        false
    );
    app.login("root@platform.example", crate::helpers::PASSWORD)
        .await
        .assert_status(200);
    for email in [
        "admin@rossi.example",
        "op@rossi.example",
        "giulia@example.com",
    ] {
        app.login(email, crate::helpers::PASSWORD)
            .await
            .assert_status(200);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM users WHERE email LIKE 'boss@%'"),
        0
    );

    // Everyone else they still manage: themselves, other staff, an agency's operators.
    app.patch(&staff, &w.platform_staff.token, json!({"name": "Staff"}))
        .await
        .assert_status(200);
    app.post(
        "/v1/users",
        &w.platform_staff.token,
        new_staff("help@platform.example", false),
    )
    .await
    .assert_status(201);
    let res = app
        .patch(&operator, &w.platform_staff.token, json!({"name": "Olga"}))
        .await;
    assert_eq!(res.assert_status(200)["name"], "Olga");
    let new_client = json!({"email": "new@client.example", "name": "New", "password": "long enough pass",
                            "role": "client"});
    app.post("/v1/users", &w.platform_staff.token, new_client)
        .await
        .assert_status(201);
    // A platform admin sets an operator's password and creates an agency's operator.
    app.patch(
        &operator,
        &w.platform.token,
        json!({"password": "a brand new pass"}),
    )
    .await
    .assert_status(200);
    app.login("op@rossi.example", "a brand new pass")
        .await
        .assert_status(200);
    app.post("/v1/users", &w.platform.token, new_operator)
        .await
        .assert_status(201);
    // An agency admin makes their own agency's admins.
    let res = app
        .patch(&operator, &w.a_admin.token, json!({"admin": true}))
        .await;
    assert_eq!(res.assert_status(200)["admin"], true);
    app.post("/v1/users", &w.a_admin.token, new_agency_admin)
        .await
        .assert_status(201);

    // The admin grants the flag, and cannot drop their own.
    let res = app
        .patch(&staff, &w.platform.token, json!({"admin": true}))
        .await;
    assert_eq!(res.assert_status(200)["admin"], true);
    let res = app
        .patch(&admin, &w.platform.token, json!({"admin": false}))
        .await;
    let error = &res.assert_problem(422, "validation_failed")["errors"][0];
    assert_eq!(error["code"], "cannot_lock_out_self");
    assert_eq!(error["pointer"], "/admin");

    // Agents and clients are never admins: their tokens and `/v1/me` would say so.
    let agent = format!("/v1/users/{}", w.a_agent.id);
    let admin_agent = json!({"email": "agent2@rossi.example", "name": "New", "password": "long enough pass",
                             "role": "agent", "agency_id": w.agency_a, "admin": true});
    for res in [
        app.patch(&agent, &w.a_admin.token, json!({"admin": true}))
            .await,
        app.patch(&client, &w.platform.token, json!({"admin": true}))
            .await,
        app.post("/v1/users", &w.a_admin.token, admin_agent).await,
    ] {
        let error = &res.assert_problem(422, "validation_failed")["errors"][0];
        assert_eq!(
            (&error["pointer"], &error["code"]),
            (&json!("/admin"), &json!("not_allowed"))
        );
    }
    for path in [&agent, &client] {
        let user = app.get(path, &w.platform.token).await;
        assert_eq!(user.assert_status(200)["admin"], false);
    }
}

/// Names are trimmed before their rules apply: a blank one is refused, never stored as "".
#[actix_web::test]
async fn blank_names_are_refused() {
    let app = crate::helpers::spawn().await;
    let w = crate::world::World::new(&app).await;
    let agency = format!("/v1/agencies/{}", w.agency_a);
    let user = format!("/v1/users/{}", w.client.id);
    for res in [
        app.post("/v1/agencies", &w.platform.token, json!({"name": "   "}))
            .await,
        app.patch(&agency, &w.platform.token, json!({"name": " \t"}))
            .await,
        app.post(
            "/v1/users",
            &w.platform.token,
            json!({"email": "blank@clients.example", "name": "  ", "password": "long enough secret", "role": "client"}),
        )
        .await,
        app.patch(&user, &w.platform.token, json!({"name": "\n"})).await,
    ] {
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], "/name");
    }
    // The command line trims too.
    let mut conn = app.state.pool.get().unwrap();
    let input = dossier::cli::new_user_input(
        "blank@cli.example".into(),
        "long enough secret".into(),
        dossier::domain::Role::Client,
        None,
        false,
        Some("   ".into()),
        dossier::domain::Locale::En,
    );
    let e = dossier::cli::create_user(&mut conn, &input).unwrap_err();
    assert!(e.starts_with("name:"), "{e}");
    drop(conn);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM agencies WHERE TRIM(name) = ''")
            + app.count("SELECT COUNT(*) AS n FROM users WHERE TRIM(name) = ''"),
        0
    );
}

/// Two platform admins deactivating each other at once: the second write finds its caller
/// deactivated by the first and is refused, so an admin is left.
#[actix_web::test]
async fn admins_locking_each_other_out_at_once_leave_one() {
    let app = spawn().await;
    let first = app.create_user("first@platform.example", "platform", None, true);
    let second = app.create_user("second@platform.example", "platform", None, true);
    let second_token = app.token("second@platform.example").await;
    // The first admin's write, deactivating the second.
    let first_write =
        format!("UPDATE users SET active = FALSE, version = version + 1 WHERE id = '{second}'");
    let path = format!("/v1/users/{first}");
    let patch = app.patch(&path, &second_token, json!({"active": false}));
    let res = app.while_held(&first_write, patch).await;
    res.assert_problem(401, "invalid_token");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM users WHERE id = '{first}' AND active = TRUE"
        )),
        1
    );
}

/// A retried creation under its `Idempotency-Key` replays the first answer; another member,
/// the password too, is 422. The password enters the stored fingerprint only through a keyed
/// digest, so the row cannot be searched for it.
#[actix_web::test]
async fn a_retried_user_creation_is_replayed_and_another_password_refused() {
    let app = spawn().await;
    let admin = app.admin().await;
    let agency = app.agency(&admin, "Rossi").await;
    let body = |name: &str, password: &str| {
        json!({"email": "op@rossi.example", "name": name, "password": password,
               "role": "agency", "agency_id": agency})
    };
    let create = |body: serde_json::Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.call(
                "POST",
                "/v1/users",
                &admin,
                Some(body),
                &[("idempotency-key", "op-1")],
            )
            .await
        }
    };
    let first = create(body("Op", "first long passphrase")).await;
    first.assert_status(201);
    let written = || app.rows_in(&["users", "audit_log", "idempotency_keys"]);
    let after = written();
    let again = create(body("Op", "first long passphrase")).await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), Some("\"1\""));
    assert_eq!(written(), after);
    for other in [
        body("Op", "second long passphrase"),
        body("Someone else", "first long passphrase"),
    ] {
        create(other)
            .await
            .assert_problem(422, "idempotency_key_reused");
        assert_eq!(written(), after);
    }
    // Another agency's admin sending the same key and body is not replayed the answer: the
    // key is theirs, and the user not theirs to create.
    let garcia = app.agency(&admin, "Garcia").await;
    app.create_user("boss@garcia.example", "agency", Some(&garcia), true);
    let boss = app.token("boss@garcia.example").await;
    let after = written();
    let key = [("idempotency-key", "op-1")];
    let sent = body("Op", "first long passphrase");
    app.call("POST", "/v1/users", &boss, Some(sent), &key)
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(written(), after);
    // The fingerprint is not the bare SHA-256 over the body as parsed (`CreateUser`'s members
    // in their order, defaults filled in), password and all.
    use sha2::Digest;
    let parsed = format!(
        r#"POST/v1/users{{"email":"op@rossi.example","name":"Op","password":"first long passphrase","role":"agency","agency_id":"{agency}","admin":false,"locale":"en","id_document_type":null,"id_document_number":null,"account_number":null}}"#
    );
    let bare = format!("{:x}", sha2::Sha256::digest(parsed));
    let same = format!("SELECT COUNT(*) AS n FROM idempotency_keys WHERE fingerprint = '{bare}'");
    assert_eq!(app.count(&same), 0);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM idempotency_keys"), 1);
    app.login("op@rossi.example", "first long passphrase")
        .await
        .assert_status(200);
}

/// Every user sets their own language, and staff their name, whatever their role: their
/// notifications are written in it from then on. A client's name is their identity's, and
/// nothing else of the account is anyone's to change here.
#[actix_web::test]
async fn everyone_sets_their_own_name_and_language() {
    let app = spawn().await;
    let w = crate::world::World::new(&app).await;
    let res = app
        .patch("/v1/me", &w.client.token, json!({"locale": "pl"}))
        .await;
    let me = res.assert_status(200);
    assert_eq!(me["locale"], "pl");
    assert_eq!(me["version"], 2);
    assert_eq!(me["presence"], serde_json::Value::Null);
    let res = app
        .patch("/v1/me", &w.a_operator.token, json!({"name": "  Olga R. "}))
        .await;
    assert_eq!(res.assert_status(200)["name"], "Olga R.");
    let rows = app.texts(&format!(
        "SELECT field || ' ' || new_value || ' ' || actor_id AS t FROM audit_log \
         WHERE entity_id IN ('{}', '{}') AND action = 'update' ORDER BY seq",
        w.client.id, w.a_operator.id
    ));
    assert_eq!(
        rows,
        [
            Some(format!("locale pl {}", w.client.id)),
            Some(format!("name Olga R. {}", w.a_operator.id))
        ]
    );
    // The next notification is in Polish.
    let card = crate::world::buy(&app, &w.client.token, &w.service_a, "card").await;
    let case = crate::world::id(&card);
    crate::world::post_message(&app, &w.a_operator.token, &case, "Hello").await;
    let res = app.get("/v1/notifications", &w.client.token).await;
    assert_eq!(
        res.assert_status(200)["items"][0]["title"],
        format!(
            "Nowa wiadomość w sprawie {}",
            card["number"].as_str().unwrap()
        )
    );
    // An agent too; staff see their presence with it.
    let res = app
        .patch("/v1/me", &w.a_agent.token, json!({"locale": "it"}))
        .await;
    assert_eq!(res.assert_status(200)["locale"], "it");
    assert_eq!(res.body["presence"]["status"], "offline");

    // Refused, nothing written: another member, an unknown language, a blank name, a
    // client's name.
    let before = app.rows_in(&["audit_log"]);
    for body in [json!({"email": "me@else.example"}), json!({"admin": true})] {
        app.patch("/v1/me", &w.client.token, body)
            .await
            .assert_problem(400, "unknown_field");
    }
    for (body, pointer, token) in [
        (json!({"locale": "fr"}), "/locale", &w.client.token),
        (json!({"name": "  "}), "/name", &w.a_operator.token),
        (json!({"name": "Someone Else"}), "/name", &w.client.token),
    ] {
        let res = app.patch("/v1/me", token, body).await;
        assert_eq!(
            res.assert_status(422)["errors"][0]["pointer"],
            pointer,
            "{}",
            res.body
        );
    }
    // Nothing sent, or nothing new: nothing changed.
    for body in [json!({}), json!({"locale": "pl"})] {
        let res = app.patch("/v1/me", &w.client.token, body).await;
        assert_eq!(res.assert_status(200)["version"], 2);
    }
    assert_eq!(app.rows_in(&["audit_log"]), before);
    app.patch("/v1/me", "not a token", json!({"locale": "en"}))
        .await
        .assert_problem(401, "invalid_token");
}
