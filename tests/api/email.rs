//! E-mail: the outbox written with the event, delivered by the worker through a real SMTP
//! server on loopback, localized, per-event choices, retries, dead letters and their retry.

use serde_json::json;

use crate::helpers::{AppService, TestApp, spawn, spawn_with};
use crate::smtp::SmtpServer;
use crate::world::{World, buy, id, post_message, take};

const LINK: &str = "https://app.dossier.test/cases/{case_id}";

/// An app that mails through `smtp`, from a named sender, with links to the app.
async fn mailing_to(smtp: &SmtpServer) -> TestApp<impl AppService + use<>> {
    spawn_with(&[
        ("DOSSIER_SMTP_URL", &smtp.url),
        ("DOSSIER_EMAIL_FROM", "Dossier <no-reply@dossier.test>"),
        ("DOSSIER_APP_LINK_TEMPLATE", LINK),
    ])
    .await
}

#[actix_web::test]
async fn notifications_arrive_by_mail_in_the_recipients_language_with_the_link() {
    let smtp = SmtpServer::start().await;
    let app = mailing_to(&smtp).await;
    let w = World::new(&app).await;
    app.patch(
        &format!("/v1/users/{}", w.client.id),
        &w.platform.token,
        json!({"locale": "it"}),
    )
    .await
    .assert_status(200);
    let card = buy(&app, &w.client.token, &w.service_a, "card").await;
    let case = id(&card);
    let number = card["number"].as_str().unwrap().to_owned();
    take(&app, &w.a_operator.token, &case).await;
    dossier::mailer::spawn(app.state.clone());

    post_message(
        &app,
        &w.a_operator.token,
        &case,
        "Ci serve la foto più recente.",
    )
    .await;
    let mails = smtp.wait_for(1).await;
    let mail = &mails[0];
    assert_eq!(mail.rcpt_to, ["giulia@example.com"]);
    assert_eq!(mail.subject, format!("Nuovo messaggio su {number}"));
    assert_eq!(mail.content_language, "it");
    assert!(mail.body.starts_with("Buongiorno "), "{}", mail.body);
    assert!(mail.body.contains("Ci serve la foto più recente."));
    assert!(
        mail.body.contains(&format!(
            "Apri la pratica: https://app.dossier.test/cases/{case}"
        )),
        "{}",
        mail.body
    );

    // The outbox shows it sent, to platform admins only.
    let items = wait_for_status(&app, &w.platform.token, "sent", 1).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["recipient"], "giulia@example.com");
    assert_eq!(items[0]["event"], "message_received");
    assert_eq!(items[0]["attempts"], 1);
    assert!(items[0]["sent_at"].is_string());
    for token in [&w.platform_staff.token, &w.a_admin.token, &w.client.token] {
        app.get("/v1/emails", token)
            .await
            .assert_problem(403, "forbidden");
    }

    // The client turns message mails off: the bell still rings, no mail is queued.
    let prefs = app
        .patch(
            "/v1/me/email-preferences",
            &w.client.token,
            json!({"events": [{"event": "message_received", "email": false}]}),
        )
        .await;
    let body = prefs.assert_status(200);
    assert_eq!(body["email_enabled"], true);
    assert_eq!(body["events"].as_array().unwrap().len(), 13);
    assert_eq!(
        body["events"][1],
        json!({"event": "message_received", "email": false})
    );
    assert_eq!(
        body["events"][0],
        json!({"event": "status_changed", "email": true})
    );
    post_message(&app, &w.a_operator.token, &case, "Grazie.").await;
    let client_mails = format!(
        "SELECT COUNT(*) AS n FROM email_outbox WHERE user_id = '{}'",
        w.client.id
    );
    assert_eq!(app.count(&client_mails), 1);
    let bell = app.get("/v1/notifications", &w.client.token).await;
    assert_eq!(
        bell.assert_status(200)["items"].as_array().unwrap().len(),
        2
    );

    // Other events still come by mail; the operator who acts gets none of their own.
    app.post(
        &format!("/v1/cases/{case}/transitions"),
        &w.a_operator.token,
        json!({"action": "accept", "reason": "Tutto chiaro"}),
    )
    .await
    .assert_status(200);
    let mails = smtp.wait_for(2).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].rcpt_to, ["giulia@example.com"]);
    assert_eq!(mails[1].subject, format!("{number} — Approvato"));
    assert!(mails[1].body.contains("Tutto chiaro"));
    assert_eq!(app.count(&client_mails), 2);
    let operator_mails = format!(
        "SELECT COUNT(*) AS n FROM email_outbox WHERE user_id = '{}'",
        w.a_operator.id
    );
    assert_eq!(app.count(&operator_mails), 0);
}

/// A mention comes by mail in the reader's language under its own choice: turning message
/// mails off keeps mentions coming, turning mentions off stops them; the bell rings each time.
#[actix_web::test]
async fn mentions_come_by_mail_under_their_own_choice() {
    let smtp = SmtpServer::start().await;
    let app = mailing_to(&smtp).await;
    let w = World::new(&app).await;
    let operator = &w.a_operator;
    app.patch(
        &format!("/v1/users/{}", operator.id),
        &w.platform.token,
        json!({"locale": "es"}),
    )
    .await
    .assert_status(200);
    let card = buy(&app, &w.client.token, &w.service_a, "card").await;
    let case = id(&card);
    let number = card["number"].as_str().unwrap().to_owned();
    take(&app, &operator.token, &case).await;
    let choose = |event: &str, email: bool| {
        app.patch(
            "/v1/me/email-preferences",
            &operator.token,
            json!({"events": [{"event": event, "email": email}]}),
        )
    };
    choose("message_received", false).await.assert_status(200);
    dossier::mailer::spawn(app.state.clone());
    let mails_of = |event: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM email_outbox WHERE user_id = '{}' AND event = '{event}'",
            operator.id
        ))
    };
    let bell = |event: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM notifications WHERE user_id = '{}' AND event = '{event}'",
            operator.id
        ))
    };
    let messages = format!("/v1/cases/{case}/messages");
    let say = |body: &str, mentions: Vec<&str>| {
        app.post(
            &messages,
            &w.client.token,
            json!({"body": body, "mentions": mentions}),
        )
    };

    say("Any news?", vec![]).await.assert_status(201);
    assert_eq!(
        (bell("message_received"), mails_of("message_received")),
        (1, 0)
    );

    say("Are you there?", vec![&operator.id])
        .await
        .assert_status(201);
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_to, ["op@rossi.example"]);
    assert_eq!(mails[0].subject, format!("Le han mencionado en {number}"));
    assert_eq!(mails[0].content_language, "es");
    assert!(
        mails[0].body.contains("Are you there?"),
        "{}",
        mails[0].body
    );
    assert!(
        mails[0]
            .body
            .contains(&format!("https://app.dossier.test/cases/{case}")),
        "{}",
        mails[0].body
    );
    assert_eq!((bell("mentioned"), mails_of("mentioned")), (1, 1));

    choose("mentioned", false).await.assert_status(200);
    say("Hello?", vec![&operator.id]).await.assert_status(201);
    assert_eq!((bell("mentioned"), mails_of("mentioned")), (2, 1));
    assert_eq!(
        bell("message_received"),
        1,
        "a mention in place of the message's own"
    );
}

#[actix_web::test]
async fn failed_mails_are_retried_with_backoff_then_parked_and_an_admin_retries_them() {
    let smtp = SmtpServer::start().await;
    let app = spawn_with(&[
        ("DOSSIER_SMTP_URL", &smtp.url),
        ("DOSSIER_EMAIL_RETRY_BASE_MS", "50"),
        ("DOSSIER_EMAIL_MAX_ATTEMPTS", "3"),
    ])
    .await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    take(&app, &w.a_operator.token, &case).await;
    let messages = format!("/v1/cases/{case}/messages");
    let post =
        |body: &'static str| app.post(&messages, &w.a_operator.token, json!({ "body": body }));

    // A temporary refusal is retried, and the second attempt delivers.
    smtp.reply_to_rcpt(&["451 4.3.0 try again later"]);
    dossier::mailer::spawn(app.state.clone());
    post("first").await.assert_status(201);
    let mails = smtp.wait_for(1).await;
    assert!(mails[0].body.contains("first"));
    let first = wait_for_status(&app, &w.platform.token, "sent", 1).await[0].clone();
    assert_eq!(first["attempts"], 2);

    // Three temporary refusals use up the attempts: dead, with the server's words.
    smtp.reply_to_rcpt(&["451 4.3.0 busy", "451 4.3.0 busy", "451 4.3.0 busy"]);
    post("second").await.assert_status(201);
    let dead = wait_for_status(&app, &w.platform.token, "dead", 1).await;
    assert_eq!(dead[0]["attempts"], 3);
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("busy"),
        "{}",
        dead[0]
    );

    // A permanent refusal is dead at once.
    smtp.reply_to_rcpt(&["550 5.1.1 no such mailbox"]);
    post("third").await.assert_status(201);
    let dead = wait_for_status(&app, &w.platform.token, "dead", 2).await;
    assert_eq!(dead[0]["attempts"], 1);
    assert_eq!(smtp.received().len(), 1);
    // Several states at once (API.md: the parameter repeats).
    for states in ["status=sent&status=dead", "status=dead&status=sent"] {
        let res = app
            .get(&format!("/v1/emails?{states}"), &w.platform.token)
            .await;
        let listed: Vec<&str> = res.assert_status(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["status"].as_str().unwrap())
            .collect();
        let (dead, sent) = (
            listed.iter().filter(|s| **s == "dead").count(),
            listed.iter().filter(|s| **s == "sent").count(),
        );
        assert!(
            dead == 2 && sent >= 1 && dead + sent == listed.len(),
            "{states}: {listed:?}"
        );
    }

    // The admin puts both back; the server now accepts them.
    for mail in &dead {
        let res = app
            .post(
                &format!("/v1/emails/{}/retry", mail["id"].as_str().unwrap()),
                &w.platform.token,
                json!({}),
            )
            .await;
        let body = res.assert_status(200);
        assert_eq!(body["status"], "pending");
        assert_eq!(body["attempts"], 0);
    }
    let mails = smtp.wait_for(3).await;
    let bodies: Vec<_> = mails.iter().map(|m| m.body.clone()).collect();
    assert!(bodies[1..].iter().any(|b| b.contains("second")));
    assert!(bodies[1..].iter().any(|b| b.contains("third")));
    // Logged as the platform's own work, outside the case the mail was about: the agency's
    // admins do not read it, the platform's do.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity = 'email' AND action = 'retry' \
             AND case_id IS NULL AND agency_id IS NULL"
        ),
        2
    );
    let retries = |token: &str| {
        let app = &app;
        let token = token.to_owned();
        async move {
            let res = app.get("/v1/audit?action=retry", &token).await;
            res.assert_status(200)["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(retries(&w.a_admin.token).await, 0);
    assert_eq!(retries(&w.platform.token).await, 2);

    // A mail that is not dead is not retried; others may not retry at all.
    let sent_id = first["id"].as_str().unwrap();
    app.post(
        &format!("/v1/emails/{sent_id}/retry"),
        &w.platform.token,
        json!({}),
    )
    .await
    .assert_problem(409, "not_dead");
    app.post(
        &format!("/v1/emails/{sent_id}/retry"),
        &w.a_admin.token,
        json!({}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post(
        "/v1/emails/0193a6fc-dddd-7c2d-8e3f-405162738495/retry",
        &w.platform.token,
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
}

/// A mail queued for someone who then loses their access is never sent: it dies, saying why.
#[actix_web::test]
async fn mails_to_users_who_can_no_longer_log_in_die_unsent() {
    let smtp = SmtpServer::start().await;
    let app = spawn_with(&[("DOSSIER_SMTP_URL", &smtp.url)]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    take(&app, &w.a_operator.token, &case).await;
    post_message(&app, &w.client.token, &case, "Any news?").await;
    let operator_mails = |status: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM email_outbox WHERE user_id = '{}' AND status = '{status}'",
            w.a_operator.id
        ))
    };
    assert_eq!(operator_mails("pending"), 1);
    app.deactivate_user(&w.platform.token, &w.a_operator.id)
        .await;

    dossier::mailer::spawn(app.state.clone());
    let dead = wait_for_status(&app, &w.platform.token, "dead", 1).await;
    assert_eq!(dead[0]["last_error"], "the recipient can no longer log in");
    assert_eq!(dead[0]["attempts"], 0);
    assert_eq!((operator_mails("pending"), operator_mails("dead")), (0, 1));
    assert!(smtp.received().is_empty());
}

/// A queued mail goes as its addressee is when its turn comes: to the address an admin corrected
/// since (say after a bounce), and not at all once its event's mail was turned off.
#[actix_web::test]
async fn queued_mail_follows_its_addressees_address_and_choices_as_they_are_now() {
    let smtp = SmtpServer::start().await;
    let app = spawn_with(&[("DOSSIER_SMTP_URL", &smtp.url)]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    take(&app, &w.a_operator.token, &case).await;
    post_message(&app, &w.client.token, &case, "Any news?").await;
    post_message(&app, &w.a_operator.token, &case, "Soon.").await;
    let queued = |user: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM email_outbox WHERE user_id = '{user}' AND status = 'pending' \
             AND event = 'message_received'"
        ))
    };
    assert_eq!((queued(&w.a_operator.id), queued(&w.client.id)), (1, 1));
    app.patch(
        &format!("/v1/users/{}", w.a_operator.id),
        &w.a_admin.token,
        json!({"email": "olga@new.example", "name": "Olga"}),
    )
    .await
    .assert_status(200);
    app.patch(
        "/v1/me/email-preferences",
        &w.client.token,
        json!({"events": [{"event": "message_received", "email": false}]}),
    )
    .await
    .assert_status(200);

    dossier::mailer::spawn(app.state.clone());
    let sent = wait_for_status(&app, &w.platform.token, "sent", 1).await;
    assert_eq!(sent[0]["recipient"], "olga@new.example");
    let dead = wait_for_status(&app, &w.platform.token, "dead", 1).await;
    assert_eq!(
        dead[0]["last_error"],
        "the recipient turned this e-mail off"
    );
    assert_eq!(dead[0]["attempts"], 0);
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails[0].rcpt_to, ["olga@new.example"]);
    assert!(mails[0].body.contains("Any news?"));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM email_outbox WHERE recipient_name = 'Olga' AND user_id = '{}'",
            w.a_operator.id
        )),
        1
    );
    assert_eq!(smtp.received().len(), 1);
}

/// Access and address are checked again right before each send, not only when the worker
/// claims its batch: the batch's last mails go out long after that.
#[actix_web::test]
async fn a_mail_whose_addressee_lost_access_after_the_claim_dies_unsent() {
    use dossier::repo::email::{Claim, claim_due, renew};

    let smtp = SmtpServer::start().await;
    let app = spawn_with(&[("DOSSIER_SMTP_URL", &smtp.url)]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    take(&app, &w.a_operator.token, &case).await;
    post_message(&app, &w.client.token, &case, "Any news?").await;
    let mut conn = app.state.pool.get().unwrap();
    let lease = chrono::Duration::minutes(5);
    let claimed = claim_due(&mut conn, dossier::db::now(), lease, 20).unwrap();
    let mail = claimed
        .iter()
        .find(|m| m.user_id == w.a_operator.id)
        .expect("the operator's mail")
        .clone();
    drop(conn);
    // The address corrected while the batch's earlier mails were being sent: the renewal
    // gives the mail to send, to the new one.
    app.patch(
        &format!("/v1/users/{}", w.a_operator.id),
        &w.a_admin.token,
        json!({"email": "olga@new.example"}),
    )
    .await
    .assert_status(200);
    let claim = Claim {
        id: mail.id.clone(),
        lease_end: mail.next_attempt_at,
    };
    let mut conn = app.state.pool.get().unwrap();
    let (claim, renewed) = renew(&mut conn, &mail, &claim, lease)
        .unwrap()
        .expect("renewed");
    assert_eq!(
        (mail.recipient.as_str(), renewed.recipient.as_str()),
        ("op@rossi.example", "olga@new.example")
    );
    drop(conn);
    // Deactivated meanwhile too.
    app.deactivate_user(&w.platform.token, &w.a_operator.id)
        .await;
    let mut conn = app.state.pool.get().unwrap();
    assert!(renew(&mut conn, &renewed, &claim, lease).unwrap().is_none());
    drop(conn);
    let row = app.texts(&format!(
        "SELECT status || ': ' || last_error AS t FROM email_outbox WHERE id = '{}'",
        mail.id
    ));
    assert_eq!(
        row,
        [Some("dead: the recipient can no longer log in".to_owned())]
    );
    assert!(smtp.received().is_empty());
}

/// A worker whose lease ran out mid-send neither sends a mail another worker has claimed since
/// nor overwrites that worker's outcome: its claim no longer holds.
#[actix_web::test]
async fn a_worker_whose_lease_ran_out_records_nothing_over_the_next_one() {
    use dossier::repo::email::{Claim, claim_due, mark_failed, renew};

    let smtp = SmtpServer::start().await;
    let app = spawn_with(&[("DOSSIER_SMTP_URL", &smtp.url)]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    take(&app, &w.a_operator.token, &case).await;
    post_message(&app, &w.a_operator.token, &case, "One mail").await;
    // A first worker claims it, and its lease runs out before it sends.
    let (mail, stale) = {
        let mut conn = app.state.pool.get().unwrap();
        let now = dossier::db::now();
        let claimed = claim_due(&mut conn, now, chrono::Duration::minutes(5), 20).unwrap();
        assert_eq!(claimed.len(), 1);
        let claim = Claim {
            id: claimed[0].id.clone(),
            lease_end: claimed[0].next_attempt_at,
        };
        (claimed[0].clone(), claim)
    };
    app.sql("UPDATE email_outbox SET next_attempt_at = '2020-01-01 00:00:00'");
    // Another worker claims it again and sends it.
    dossier::mailer::spawn(app.state.clone());
    assert_eq!(smtp.wait_for(1).await.len(), 1);
    wait_for_status(&app, &w.platform.token, "sent", 1).await;
    // The first worker's send would not start, nor would its failure be recorded.
    let mut conn = app.state.pool.get().unwrap();
    let lease = chrono::Duration::minutes(5);
    assert!(renew(&mut conn, &mail, &stale, lease).unwrap().is_none());
    assert!(!mark_failed(&mut conn, &stale, "timed out", None).unwrap());
    drop(conn);
    let sent = wait_for_status(&app, &w.platform.token, "sent", 1).await;
    assert_eq!(sent[0]["id"], stale.id.as_str());
    assert_eq!(sent[0]["attempts"], 1);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM email_outbox WHERE status = 'dead'"),
        0
    );
}

/// A mail about a case its addressee no longer sees dies unsent: an agent taken off the case
/// before the worker got to the mail of an internal note does not receive the note's text.
#[actix_web::test]
async fn mails_about_a_case_the_recipient_no_longer_sees_die_unsent() {
    let smtp = SmtpServer::start().await;
    let app = spawn_with(&[("DOSSIER_SMTP_URL", &smtp.url)]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    crate::world::start_case(&app, &w, &case).await;
    crate::world::assign_agent(&app, &w, &case).await;
    app.post(
        &format!("/v1/cases/{case}/messages"),
        &w.a_operator.token,
        json!({"body": "Follow him on Friday", "internal": true}),
    )
    .await
    .assert_status(201);
    let queued = |status: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM email_outbox WHERE user_id = '{}' AND status = '{status}'",
            w.a_agent.id
        ))
    };
    // The note's mail, and the one telling the agent of their assignment.
    let pending = queued("pending");
    assert_eq!(pending, 2);
    app.put(
        &format!("/v1/cases/{case}/agents"),
        &w.a_operator.token,
        json!({"agent_ids": []}),
    )
    .await
    .assert_status(200);
    dossier::mailer::spawn(app.state.clone());
    let dead = wait_for_status(&app, &w.platform.token, "dead", 2).await;
    for mail in &dead {
        assert_eq!(
            mail["last_error"],
            "the recipient can no longer see the case"
        );
    }
    assert_eq!(queued("dead"), pending);
    assert!(
        smtp.received()
            .iter()
            .all(|mail| !mail.body.contains("Follow him on Friday"))
    );
}

/// An agent hears of their case leaving them in the bell alone: its mail would be about a case
/// they no longer see.
#[actix_web::test]
async fn agents_are_mailed_of_the_moves_that_leave_them_the_case_only() {
    let smtp = SmtpServer::start().await;
    let app = spawn_with(&[("DOSSIER_SMTP_URL", &smtp.url)]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    crate::world::start_case(&app, &w, &case).await;
    crate::world::assign_agent(&app, &w, &case).await;
    let told = |table: &str| {
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE user_id = '{}' AND event = 'status_changed'",
            w.a_agent.id
        ))
    };
    crate::world::act(&app, &w.a_operator.token, &case, "suspend")
        .await
        .assert_status(200);
    assert_eq!((told("notifications"), told("email_outbox")), (1, 1));
    for action in ["resume", "complete"] {
        crate::world::act(&app, &w.a_operator.token, &case, action)
            .await
            .assert_status(200);
    }
    assert_eq!((told("notifications"), told("email_outbox")), (3, 2));
    // The client is mailed of the completion as ever.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) AS n FROM email_outbox WHERE user_id = '{}' AND subject LIKE '%please confirm'",
            w.client.id
        )),
        1
    );
}

/// Polls the outbox until `n` mails have this status: the worker records an outcome after the
/// SMTP server has it, and runs beside the test.
async fn wait_for_status<S>(
    app: &crate::helpers::TestApp<S>,
    token: &str,
    status: &str,
    n: usize,
) -> Vec<serde_json::Value>
where
    S: AppService,
{
    for _ in 0..200 {
        let res = app.get(&format!("/v1/emails?status={status}"), token).await;
        let items = res.assert_status(200)["items"].as_array().unwrap().clone();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("expected {n} {status} mails");
}

#[actix_web::test]
async fn without_smtp_email_is_off_and_nothing_is_queued() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    post_message(&app, &w.client.token, &case, "Hello").await;
    assert!(app.count("SELECT COUNT(*) AS n FROM notifications") >= 2);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM email_outbox"), 0);
    let prefs = app
        .get("/v1/me/email-preferences", &w.a_operator.token)
        .await;
    let body = prefs.assert_status(200);
    assert_eq!(body["email_enabled"], false);
    assert!(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["email"] == true)
    );
}

#[actix_web::test]
async fn bad_preference_changes_are_refused_and_change_nothing() {
    let app = spawn().await;
    let w = World::new(&app).await;
    let path = "/v1/me/email-preferences";
    let off = json!({"event": "assigned", "email": false});
    for (body, pointer) in [
        (json!({"events": []}), "/events"),
        (json!({"events": [off, off]}), "/events/1/event"),
        (
            json!({"events": [{"event": "gossip", "email": false}]}),
            "/events/0/event",
        ),
        (
            json!({"events": [{"event": "assigned", "email": "no"}]}),
            "/events/0/email",
        ),
    ] {
        let res = app.patch(path, &w.a_agent.token, body).await;
        let problem = res.assert_status(422);
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM email_preferences"), 0);

    // One user's choice is theirs alone.
    app.patch(path, &w.a_agent.token, json!({"events": [off]}))
        .await
        .assert_status(200);
    let other = app.get(path, &w.a_agent2.token).await;
    assert!(
        other.assert_status(200)["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["email"] == true)
    );
    let own = app.get(path, &w.a_agent.token).await;
    let events = own.assert_status(200)["events"].as_array().unwrap();
    assert!(events.contains(&off), "{events:?}");
}

/// Sent and dead mail goes after 30 days, its body and address with it; pending mail stays,
/// whatever its age. The sweep deletes in turns (of two here): expired `Idempotency-Key`
/// answers too, five of them expired at the same instant.
#[actix_web::test]
async fn finished_mail_and_expired_keys_go_in_turns() {
    let smtp = SmtpServer::start().await;
    let app = spawn_with(&[("DOSSIER_SMTP_URL", &smtp.url)]).await;
    let w = World::new(&app).await;
    let case = id(&buy(&app, &w.client.token, &w.service_a, "card").await);
    take(&app, &w.a_operator.token, &case).await;
    let path = format!("/v1/cases/{case}/messages");
    for i in 0..6 {
        let key = format!("message-{i}");
        let body = json!({"body": format!("message {i}")});
        app.call(
            "POST",
            &path,
            &w.client.token,
            Some(body),
            &[("idempotency-key", &key)],
        )
        .await
        .assert_status(201);
    }
    let outbox = || -> Vec<String> {
        app.texts("SELECT id AS t FROM email_outbox ORDER BY id")
            .into_iter()
            .flatten()
            .collect()
    };
    let ids = outbox();
    assert_eq!(ids.len(), 6);
    let old = "'2020-01-01 00:00:00'";
    for (id, status, at) in [
        (&ids[0], "sent", old),
        (&ids[1], "dead", old),
        (&ids[2], "sent", old),
        (&ids[3], "dead", old),
        (&ids[4], "pending", old),
        (&ids[5], "sent", "next_attempt_at"),
    ] {
        app.sql(&format!(
            "UPDATE email_outbox SET status = '{status}', next_attempt_at = {at} WHERE id = '{id}'"
        ));
    }
    let keys = "SELECT COUNT(*) AS n FROM idempotency_keys";
    assert_eq!(app.count(keys), 6);
    app.sql(&format!(
        "UPDATE idempotency_keys SET created_at = {old} WHERE key <> 'message-5'"
    ));
    dossier::housekeeping::sweep_in_turns_of(&app.state, 2)
        .await
        .unwrap();
    assert_eq!(outbox(), ids[4..]);
    assert_eq!(app.count(keys), 1);
}
