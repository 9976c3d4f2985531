//! Surveys: the client rates a closed case, with `confirm_completion` or afterwards; the card
//! shows the newest rating.

use serde_json::json;

use crate::helpers::spawn;
use crate::world::{World, act, buy, id, start_case};

#[actix_web::test]
async fn the_client_rates_a_closed_case_and_the_card_shows_the_newest_rating() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    start_case(&app, &w, &case).await;
    act(&app, &w.a_operator.token, &case, "complete")
        .await
        .assert_status(200);
    let card = format!("/v1/cases/{case}");
    let transitions = format!("{card}/transitions");
    let survey = format!("{card}/survey");

    // A rating goes with `confirm_completion` only, from 1 to 5; a comment goes with a rating.
    for (body, pointer) in [
        (
            json!({"action": "confirm_completion", "rating": 6}),
            "/rating",
        ),
        (
            json!({"action": "confirm_completion", "rating": 0}),
            "/rating",
        ),
        (
            json!({"action": "confirm_completion", "comment": "Nice"}),
            "/rating",
        ),
        (
            json!({"action": "dispute_completion", "reason": "Not him", "rating": 3}),
            "/rating",
        ),
    ] {
        let res = app.post(&transitions, &w.client.token, body.clone()).await;
        let problem = res.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{body}");
    }
    // Not before the case is closed.
    app.post(&survey, &w.client.token, json!({"rating": 4}))
        .await
        .assert_problem(409, "wrong_state");
    let res = app.get(&card, &w.client.token).await;
    assert_eq!(res.assert_status(200)["status"], "completed");
    assert_eq!(res.body["last_survey"], json!(null));
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM surveys"), 0);

    // Confirmed with a rating: the card shows it, to the agency too.
    let res = app
        .post(
            &transitions,
            &w.client.token,
            json!({"action": "confirm_completion", "rating": 4, "comment": " Thorough work. "}),
        )
        .await;
    let moved = res.assert_status(200);
    assert_eq!(moved["case"]["status"], "closed");
    assert_eq!(moved["case"]["last_survey"]["rating"], 4);
    assert_eq!(moved["case"]["last_survey"]["comment"], "Thorough work.");
    let res = app.get(&card, &w.a_admin.token).await;
    let version = res.assert_status(200)["version"].as_i64().unwrap();
    assert_eq!(res.body["last_survey"]["rating"], 4);

    // A later rating replaces it on the card and moves the case's version (`5.0` is 5, as
    // every integer member takes it).
    let res = app
        .post(&survey, &w.client.token, json!({"rating": 5.0}))
        .await;
    let rated = res.assert_status(201).clone();
    assert_eq!(rated["rating"], 5);
    assert_eq!(rated["comment"], json!(null));
    let res = app.get(&card, &w.a_admin.token).await;
    assert_eq!(res.assert_status(200)["last_survey"], rated);
    assert_eq!(res.body["version"], version + 1);

    // Only the client, on their own case; bad bodies change nothing.
    for (token, status, code) in [
        (&w.a_operator.token, 403, "forbidden"),
        (&w.platform.token, 403, "forbidden"),
        (&w.a_agent.token, 404, "not_found"),
        (&w.client2.token, 404, "not_found"),
        (&w.b_admin.token, 404, "not_found"),
    ] {
        app.post(&survey, token, json!({"rating": 1}))
            .await
            .assert_problem(status, code);
    }
    for (body, status, code) in [
        (json!({"rating": 2.5}), 422, "validation_failed"),
        (json!({}), 422, "validation_failed"),
        (
            json!({"rating": 3, "comment": ""}),
            422,
            "validation_failed",
        ),
        (json!({"rating": 3, "stars": 3}), 400, "unknown_field"),
    ] {
        app.post(&survey, &w.client.token, body)
            .await
            .assert_problem(status, code);
    }
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM surveys"), 2);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(DISTINCT entity_id) AS n FROM audit_log \
             WHERE entity = 'survey' AND action = 'create' AND case_id = '{case}'"
        )),
        2
    );
}
