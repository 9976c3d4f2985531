//! A marketplace to test cases in: two agencies with an admin, an operator and agents each,
//! two clients, and a service per agency.

use serde_json::{Value, json};

use crate::helpers::{AppService, Response, TestApp};

pub struct Person {
    pub id: String,
    pub token: String,
}

pub struct World {
    pub platform: Person,
    /// Platform staff without the admin flag.
    pub platform_staff: Person,
    pub agency_a: String,
    pub agency_b: String,
    pub a_admin: Person,
    pub a_operator: Person,
    pub a_agent: Person,
    pub a_agent2: Person,
    pub b_admin: Person,
    pub b_operator: Person,
    pub b_agent: Person,
    pub client: Person,
    pub client2: Person,
    /// Agency A's service, without required data.
    pub service_a: String,
    /// Agency B's service.
    pub service_b: String,
}

impl World {
    pub async fn new<S>(app: &TestApp<S>) -> World
    where
        S: AppService,
    {
        let admin = app.admin().await;
        let platform = Person {
            id: me(app, &admin).await,
            token: admin,
        };
        let agency_a = app.agency(&platform.token, "Agenzia Rossi").await;
        let agency_b = app.agency(&platform.token, "Agencia García").await;
        let person = |email: &'static str, role: &'static str, agency: Option<String>, admin| {
            let id = app.create_user(email, role, agency.as_deref(), admin);
            async move {
                Person {
                    id,
                    token: app.token(email).await,
                }
            }
        };
        let platform_staff = person("staff@platform.example", "platform", None, false).await;
        let a_admin = person(
            "admin@rossi.example",
            "agency",
            Some(agency_a.clone()),
            true,
        )
        .await;
        let a_operator = person("op@rossi.example", "agency", Some(agency_a.clone()), false).await;
        let a_agent = person(
            "agent@rossi.example",
            "agent",
            Some(agency_a.clone()),
            false,
        )
        .await;
        let a_agent2 = person(
            "agent2@rossi.example",
            "agent",
            Some(agency_a.clone()),
            false,
        )
        .await;
        let b_admin = person(
            "admin@garcia.example",
            "agency",
            Some(agency_b.clone()),
            true,
        )
        .await;
        let b_operator = person("op@garcia.example", "agency", Some(agency_b.clone()), false).await;
        let b_agent = person(
            "agent@garcia.example",
            "agent",
            Some(agency_b.clone()),
            false,
        )
        .await;
        let client = person("giulia@example.com", "client", None, false).await;
        let client2 = person("pablo@example.com", "client", None, false).await;
        let service_a = create_service(app, &a_admin.token, "Surveillance", json!([])).await;
        let service_b = create_service(app, &b_admin.token, "Background check", json!([])).await;
        World {
            platform,
            platform_staff,
            agency_a,
            agency_b,
            a_admin,
            a_operator,
            a_agent,
            a_agent2,
            b_admin,
            b_operator,
            b_agent,
            client,
            client2,
            service_a,
            service_b,
        }
    }
}

async fn me<S>(app: &TestApp<S>, token: &str) -> String
where
    S: AppService,
{
    app.get("/v1/me", token).await.assert_status(200)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn create_service<S>(
    app: &TestApp<S>,
    token: &str,
    title: &str,
    template: Value,
) -> String
where
    S: AppService,
{
    let res = app
        .post(
            "/v1/services",
            token,
            json!({"title": title, "description": "A service", "price_minor": 150000, "currency": "EUR",
                   "required_data_template": template}),
        )
        .await;
    res.assert_status(201)["id"].as_str().unwrap().to_owned()
}

/// A client buys a service; returns the card.
pub async fn buy<S>(app: &TestApp<S>, token: &str, service: &str, payment: &str) -> Value
where
    S: AppService,
{
    let res = app
        .post(
            "/v1/cases",
            token,
            json!({"service_id": service, "payment_method": payment,
                   "title": "Where does he go on Fridays?", "description": "He leaves at 14:00 every Friday."}),
        )
        .await;
    res.assert_status(201).clone()
}

/// Takes an action with every input it could need.
pub async fn act<S>(app: &TestApp<S>, token: &str, case: &str, action: &str) -> Response
where
    S: AppService,
{
    let mut body = json!({"action": action, "reason": "because"});
    if action == "complete" {
        body["resolution_type"] = json!("solved");
        body["resolution"] = json!("Found him at the golf club.");
    }
    app.post(&format!("/v1/cases/{case}/transitions"), token, body)
        .await
}

/// The case is completed by agency A's operator and confirmed by its client: `closed`.
pub async fn close<S>(app: &TestApp<S>, w: &World, case: &str)
where
    S: AppService,
{
    act(app, &w.a_operator.token, case, "complete")
        .await
        .assert_status(200);
    act(app, &w.client.token, case, "confirm_completion")
        .await
        .assert_status(200);
}

/// A ten-minute clock long past its warning and its target: begun, warned, due.
pub const LONG_PAST: [&str; 3] = [
    "2026-01-01 09:00:00",
    "2026-01-01 09:08:00",
    "2026-01-01 09:10:00",
];

/// Moves a case's SLA `clocks` back in time (UTC, `YYYY-MM-DD HH:MM:SS`): begun at `began`, past
/// their warning share at `warned`, due at `due`; the case is due to the worker at the warning,
/// so the next `sla::settle_due` finds what they crossed.
pub fn backdate_clocks<S>(app: &TestApp<S>, case: &str, clocks: &[&str], times: [&str; 3]) {
    let [began, warned, due] = times;
    let clocks = clocks
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    app.sql(&format!(
        "UPDATE sla_clocks SET started_at = '{began}', running_since = '{began}', \
         warn_at = '{warned}', due_at = '{due}' WHERE case_id = '{case}' AND clock IN ({clocks}); \
         UPDATE cases SET sla_next_at = '{warned}' WHERE id = '{case}'"
    ));
}

/// The caller (an operator) takes the case: they become its assignee.
pub async fn take<S>(app: &TestApp<S>, token: &str, case: &str)
where
    S: AppService,
{
    app.post(
        &format!("/v1/cases/{case}/assignment"),
        token,
        json!({"action": "take"}),
    )
    .await
    .assert_status(200);
}

/// Sets the caller's presence status (working on nothing) and expects it to be taken.
pub async fn set_presence<S>(app: &TestApp<S>, token: &str, status: &str)
where
    S: AppService,
{
    app.put("/v1/me/presence", token, json!({"status": status}))
        .await
        .assert_status(200);
}

/// Posts a message to a case's conversation and expects it to be created.
pub async fn post_message<S>(app: &TestApp<S>, token: &str, case: &str, body: &str)
where
    S: AppService,
{
    app.post(
        &format!("/v1/cases/{case}/messages"),
        token,
        json!({ "body": body }),
    )
    .await
    .assert_status(201);
}

/// Takes a case bought from agency A to `in_progress` (accepted and started by its operator).
pub async fn start_case<S>(app: &TestApp<S>, w: &World, case: &str)
where
    S: AppService,
{
    for action in ["accept", "start"] {
        act(app, &w.a_operator.token, case, action)
            .await
            .assert_status(200);
    }
}

/// Puts agency A's first agent on a case (as its operator).
pub async fn assign_agent<S>(app: &TestApp<S>, w: &World, case: &str)
where
    S: AppService,
{
    app.put(
        &format!("/v1/cases/{case}/agents"),
        &w.a_operator.token,
        json!({"agent_ids": [w.a_agent.id]}),
    )
    .await
    .assert_status(200);
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// The ids of a page's items.
pub fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(id).collect()
}
