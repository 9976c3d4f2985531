//! The required-data form: defined by the agency, filled by the client, typed, locked after
//! the decision.

use serde_json::{Value, json};

use crate::attachments::{png, upload};
use crate::helpers::spawn;
use crate::world::{World, act, buy, create_service, id};

#[actix_web::test]
async fn the_agency_defines_the_client_fills_and_the_decision_locks() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let service = create_service(
        &app,
        &w.a_admin.token,
        "Tracking",
        json!([{"key": "subject", "label": "Subject", "type": "text", "required": true},
               {"key": "colour", "label": "Car colour", "type": "choice", "options": ["red", "blue"]}]),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &service, "card").await);
    let p = format!("/v1/cases/{case}/required-data");
    let res = app.get(&p, &w.a_operator.token).await;
    let body = res.assert_status(200);
    assert_eq!(body["locked"], false);
    assert_eq!(body["editable"], true);
    assert_eq!(body["fields"][1]["options"], json!(["red", "blue"]));
    assert_eq!(body["fields"][0]["value"], Value::Null);

    // The agency redefines the form: keeps `subject`, adds typed fields.
    let fields = json!({"fields": [
        {"key": "subject", "label": "Subject's name", "type": "text", "required": true},
        {"key": "colour", "label": "Car colour", "type": "choice", "options": ["red", "blue"]},
        {"key": "seen_at", "label": "Last seen", "type": "location"},
        {"key": "born", "label": "Born", "type": "date"},
        {"key": "height", "label": "Height (cm)", "type": "number"},
        {"key": "armed", "label": "Armed?", "type": "boolean"},
        {"key": "photo", "label": "Photo", "type": "image", "required": true},
        {"key": "report", "label": "Police report", "type": "file"},
        {"key": "notes", "label": "Anything else", "type": "long_text"}
    ]});
    for token in [&w.client.token, &w.platform.token] {
        app.put(&format!("{p}/fields"), token, fields.clone())
            .await
            .assert_problem(403, "forbidden");
    }
    app.put(&format!("{p}/fields"), &w.a_agent.token, fields.clone())
        .await
        .assert_problem(404, "not_found");
    app.put(&format!("{p}/fields"), &w.b_operator.token, fields.clone())
        .await
        .assert_problem(404, "not_found");
    let res = app
        .put(&format!("{p}/fields"), &w.a_operator.token, fields.clone())
        .await;
    assert_eq!(
        res.assert_status(200)["fields"].as_array().unwrap().len(),
        9
    );
    assert_eq!(res.header("etag"), Some("\"2\""));

    // The client fills; each type is checked, one error per key, nothing written on error.
    let pdf = upload(&app, &w.client.token, &case, "r.pdf", b"%PDF-1.7\n%%EOF\n").await;
    let pdf = id(pdf.assert_status(201));
    let photo = upload(&app, &w.client.token, &case, "p.png", &png(300)).await;
    let photo = id(photo.assert_status(201));
    let bad = json!({"values": {
        "subject": "  ", "colour": "green", "seen_at": {"latitude": 91, "longitude": 9},
        "born": "31/12/1980", "height": "tall", "armed": "no", "photo": pdf, "report": uuid::Uuid::now_v7(),
        "nickname": "x", "notes": 42
    }});
    let res = app
        .patch(&format!("{p}/values"), &w.client.token, bad)
        .await;
    let errors: Vec<(String, String)> = res.assert_problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("/values/armed", "invalid_value"),
        ("/values/born", "invalid_value"),
        ("/values/colour", "invalid_choice"),
        ("/values/height", "invalid_value"),
        ("/values/nickname", "unknown_field"),
        ("/values/notes", "invalid_value"),
        ("/values/photo", "invalid_attachment"),
        ("/values/report", "invalid_attachment"),
        ("/values/seen_at", "invalid_location"),
        ("/values/subject", "invalid_value"),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect();
    assert_eq!(errors, expected);
    // Dates are exactly YYYY-MM-DD (chrono alone takes `80-12-31` as the year 80); a key's
    // pointer escapes `/` and `~` (RFC 6901).
    for born in [
        "80-12-31",
        "1980-1-5",
        "+12345-01-01",
        "-0044-03-15",
        "1980-12-31 ",
    ] {
        let res = app
            .patch(
                &format!("{p}/values"),
                &w.client.token,
                json!({"values": {"born": born}}),
            )
            .await;
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], "/values/born", "{born}");
    }
    // A text takes 1 000 characters, a long text 10 000.
    for (key, length) in [("subject", 1_001), ("notes", 10_001)] {
        let res = app
            .patch(
                &format!("{p}/values"),
                &w.client.token,
                json!({"values": {key: "x".repeat(length)}}),
            )
            .await;
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], format!("/values/{key}"));
        assert_eq!(problem["errors"][0]["code"], "invalid_value");
    }
    let res = app
        .patch(
            &format!("{p}/values"),
            &w.client.token,
            json!({"values": {"a/b~c": 1}}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["pointer"],
        "/values/a~1b~0c"
    );
    // One good value beside a bad one: nothing is written either.
    app.patch(
        &format!("{p}/values"),
        &w.client.token,
        json!({"values": {"subject": "Mario", "colour": "green"}}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(
        card.header("etag"),
        Some("\"2\""),
        "the case's version moved"
    );
    let unchanged = app.get(&p, &w.client.token).await;
    assert_eq!(unchanged.assert_status(200)["fields"][0]["key"], "subject");
    assert_eq!(unchanged.body["fields"][0]["value"], Value::Null);
    // The form carries the case's version, the tag its writes take in `If-Match`.
    assert_eq!(unchanged.header("etag"), card.header("etag"));
    let revalidated = app
        .call(
            "GET",
            &p,
            &w.client.token,
            None,
            &[("if-none-match", "\"2\"")],
        )
        .await;
    assert_eq!(revalidated.status.as_u16(), 304);
    // Accept is still refused: two required fields are empty.
    let res = act(&app, &w.a_operator.token, &case, "accept").await;
    assert_eq!(
        res.assert_problem(422, "required_data_missing")["errors"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let good = json!({"values": {
        "subject": " Mario Rossi ", "colour": "red", "seen_at": {"latitude": 45.4642, "longitude": 9.19, "place_name": "Duomo"},
        "born": "1980-12-31", "height": 181.5, "armed": false, "photo": photo, "report": pdf,
        "notes": "y".repeat(5_000)
    }});
    app.patch(&format!("{p}/values"), &w.a_operator.token, good.clone())
        .await
        .assert_problem(403, "forbidden");
    for token in [&w.a_agent.token, &w.b_operator.token] {
        app.patch(&format!("{p}/values"), token, good.clone())
            .await
            .assert_problem(404, "not_found");
    }
    app.patch(&format!("{p}/values"), &w.client2.token, good.clone())
        .await
        .assert_problem(404, "not_found");
    let res = app
        .patch(&format!("{p}/values"), &w.client.token, good)
        .await;
    let body = res.assert_status(200).clone();
    assert_eq!(body["fields"][0]["value"], "Mario Rossi");
    assert_eq!(body["fields"][2]["value"]["place_name"], "Duomo");
    assert_eq!(body["fields"][4]["value"], 181.5);
    assert_eq!(res.header("etag"), Some("\"3\""));
    // A file a value names stays while it does.
    app.call(
        "DELETE",
        &format!("/v1/attachments/{photo}"),
        &w.client.token,
        None,
        &[],
    )
    .await
    .assert_problem(409, "attachment_in_use");
    // Clearing one with null, and a stale If-Match.
    let res = app
        .call(
            "PATCH",
            &format!("{p}/values"),
            &w.client.token,
            Some(json!({"values": {"armed": null}})),
            &[("if-match", "\"2\"")],
        )
        .await;
    res.assert_problem(412, "precondition_failed");
    let res = app
        .patch(
            &format!("{p}/values"),
            &w.client.token,
            json!({"values": {"armed": null}}),
        )
        .await;
    assert_eq!(res.assert_status(200)["fields"][5]["value"], Value::Null);
    // Redefining keeps values whose field keeps its key and type, clears the others.
    let mut changed = fields.clone();
    changed["fields"][1]["options"] = json!(["blue", "green"]);
    changed["fields"][4]["type"] = json!("text");
    let res = app
        .put(&format!("{p}/fields"), &w.a_operator.token, changed.clone())
        .await;
    let body = res.assert_status(200).clone();
    assert_eq!(body["fields"][0]["value"], "Mario Rossi");
    assert_eq!(
        body["fields"][1]["value"],
        Value::Null,
        "red is no longer an option"
    );
    assert_eq!(body["fields"][4]["value"], Value::Null, "the type changed");
    // Audit rows for definitions and values.
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND entity = 'required_data' AND action = 'fill'")),
        10
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) AS n FROM audit_log WHERE case_id = '{case}' AND entity = 'required_data' AND action = 'define_fields'")),
        4
    );

    // Accept locks it: every write is 409 and the form says so.
    act(&app, &w.a_operator.token, &case, "accept")
        .await
        .assert_status(200);
    let res = app.get(&p, &w.client.token).await;
    assert_eq!(res.assert_status(200)["locked"], true);
    assert_eq!(res.body["editable"], false);
    app.patch(
        &format!("{p}/values"),
        &w.client.token,
        json!({"values": {"subject": "Late"}}),
    )
    .await
    .assert_problem(409, "wrong_state");
    app.put(&format!("{p}/fields"), &w.a_operator.token, changed)
        .await
        .assert_problem(409, "wrong_state");
    // Before payment the form is not locked but not yet open either.
    let unpaid = id(&buy(&app, &w.client.token, &service, "bank_transfer").await);
    let res = app
        .get(
            &format!("/v1/cases/{unpaid}/required-data"),
            &w.client.token,
        )
        .await;
    assert_eq!(res.assert_status(200)["locked"], false);
    app.patch(
        &format!("/v1/cases/{unpaid}/required-data/values"),
        &w.client.token,
        json!({"values": {"subject": "x"}}),
    )
    .await
    .assert_problem(409, "wrong_state");
}

/// A file named by an image or file value stays while it is; a text value that happens to hold
/// another file's id keeps nothing; an internal file cannot be named.
#[actix_web::test]
async fn only_file_values_keep_their_files() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let service = create_service(
        &app,
        &w.a_admin.token,
        "Tracking",
        json!([{"key": "note", "label": "Note", "type": "text"},
               {"key": "photo", "label": "Photo", "type": "image"}]),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &service, "card").await);
    let mut files = Vec::new();
    for name in ["a.png", "b.png"] {
        let res = upload(&app, &w.client.token, &case, name, &png(300)).await;
        files.push(id(res.assert_status(201)));
    }
    app.patch(
        &format!("/v1/cases/{case}/required-data/values"),
        &w.client.token,
        json!({"values": {"note": files[0], "photo": files[1]}}),
    )
    .await
    .assert_status(200);
    // A staff file, internal by default, is not the client's to name.
    let staff = upload(&app, &w.a_operator.token, &case, "c.png", &png(300)).await;
    let staff = id(staff.assert_status(201));
    let res = app
        .patch(
            &format!("/v1/cases/{case}/required-data/values"),
            &w.client.token,
            json!({"values": {"photo": staff}}),
        )
        .await;
    assert_eq!(
        res.assert_problem(422, "validation_failed")["errors"][0]["code"],
        "invalid_attachment"
    );
    let delete = async |file: &str| {
        let path = format!("/v1/attachments/{file}");
        app.call("DELETE", &path, &w.client.token, None, &[]).await
    };
    assert_eq!(delete(&files[0]).await.status.as_u16(), 204);
    delete(&files[1])
        .await
        .assert_problem(409, "attachment_in_use");
}

/// Rejecting decides the case as accepting does: the form is locked, every write 409 and
/// nothing changed. Only those who see the case read its form.
#[actix_web::test]
async fn a_rejection_locks_the_form_and_outsiders_read_none_of_it() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let service = create_service(
        &app,
        &w.a_admin.token,
        "Tracking",
        json!([{"key": "subject", "label": "Subject", "type": "text"}]),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &service, "card").await);
    let p = format!("/v1/cases/{case}/required-data");
    for outsider in [&w.client2, &w.b_operator, &w.a_agent] {
        app.get(&p, &outsider.token)
            .await
            .assert_problem(404, "not_found");
    }
    act(&app, &w.a_operator.token, &case, "reject")
        .await
        .assert_status(200);
    let res = app.get(&p, &w.client.token).await;
    assert_eq!(res.assert_status(200)["locked"], true);
    assert_eq!(res.body["editable"], false);
    let before = app.rows_in(&["case_fields", "audit_log"]);
    let version = app
        .get(&format!("/v1/cases/{case}"), &w.client.token)
        .await
        .body["version"]
        .clone();
    app.patch(
        &format!("{p}/values"),
        &w.client.token,
        json!({"values": {"subject": "Late"}}),
    )
    .await
    .assert_problem(409, "wrong_state");
    let fields = json!({"fields": [{"key": "plate", "label": "Plate", "type": "text"}]});
    app.put(&format!("{p}/fields"), &w.a_operator.token, fields)
        .await
        .assert_problem(409, "wrong_state");
    assert_eq!(app.rows_in(&["case_fields", "audit_log"]), before);
    let res = app.get(&p, &w.client.token).await;
    assert_eq!(res.assert_status(200)["fields"][0]["key"], "subject");
    assert_eq!(res.body["fields"][0]["value"], Value::Null);
    let card = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(card.body["version"], version);
}

/// A form's rules hold wherever a form is defined: the case's own form and a service's
/// template alike (a duplicate key would have broken every later purchase), nothing written on
/// error; and a case bought before a template changes keeps its own copy.
#[actix_web::test]
async fn bad_forms_are_refused_wherever_defined_and_bought_cases_keep_theirs() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let service = create_service(
        &app,
        &w.a_admin.token,
        "Tracking",
        json!([{"key": "subject", "label": "Subject", "type": "text"}]),
    )
    .await;
    let case = id(&buy(&app, &w.client.token, &service, "card").await);
    let text = |key: &str| json!({"key": key, "label": "L", "type": "text"});
    let choice =
        |options: Value| json!({"key": "c", "label": "C", "type": "choice", "options": options});
    let many: Vec<String> = (0..51).map(|i| format!("o{i}")).collect();
    let bad = json!([
        text("a"),
        text("a"),
        {"key": "b", "label": "x".repeat(201), "type": "text", "help": "h".repeat(1001)},
        {"key": "d", "label": "D", "type": "choice"},
        choice(json!(many)),
        choice(json!(["x", "x"])),
        choice(json!([" "])),
    ]);
    let expected = [
        ("/1/key", "duplicate_key"),
        ("/2/label", "length"),
        ("/2/help", "length"),
        ("/3/options", "required"),
        ("/4/options", "invalid_options"),
        ("/5/key", "duplicate_key"),
        ("/5/options", "invalid_options"),
        ("/6/key", "duplicate_key"),
        ("/6/options", "invalid_options"),
    ];
    let too_many: Vec<Value> = (0..101).map(|i| text(&format!("f{i}"))).collect();
    let errors = |res: &crate::helpers::Response, base: &str| -> Vec<(String, String)> {
        res.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let pointer = e["pointer"].as_str().unwrap();
                let pointer = pointer.strip_prefix(base).unwrap_or(pointer).to_owned();
                (pointer, e["code"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect();
    let before = app.rows_in(&["case_fields", "audit_log"]);

    // The case's own form.
    let fields = format!("/v1/cases/{case}/required-data/fields");
    let res = app
        .put(&fields, &w.a_operator.token, json!({"fields": bad}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(errors(&res, "/fields"), expected);
    let res = app
        .put(&fields, &w.a_operator.token, json!({"fields": too_many}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(
        errors(&res, "")[0],
        ("/fields".to_owned(), "length".to_owned())
    );

    // The service's template.
    let path = format!("/v1/services/{service}");
    let res = app
        .patch(
            &path,
            &w.a_admin.token,
            json!({"required_data_template": bad}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(errors(&res, "/required_data_template"), expected);
    let res = app
        .patch(
            &path,
            &w.a_admin.token,
            json!({"required_data_template": too_many}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(
        errors(&res, "")[0],
        ("/required_data_template".to_owned(), "length".to_owned())
    );
    assert_eq!(app.rows_in(&["case_fields", "audit_log"]), before);
    let res = app.get(&path, &w.a_admin.token).await;
    assert_eq!(res.assert_status(200)["version"], 1);
    let res = app.get(&format!("/v1/cases/{case}"), &w.client.token).await;
    assert_eq!(res.assert_status(200)["version"], 1);

    // A new template reaches new purchases only.
    app.patch(
        &path,
        &w.a_admin.token,
        json!({"required_data_template": [text("plate")]}),
    )
    .await
    .assert_status(200);
    let keys = async |case: &str| -> Vec<String> {
        let res = app
            .get(&format!("/v1/cases/{case}/required-data"), &w.client.token)
            .await;
        res.assert_status(200)["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(keys(&case).await, ["subject"]);
    let later = id(&buy(&app, &w.client.token, &service, "card").await);
    assert_eq!(keys(&later).await, ["plate"]);
}
