//! The OpenAPI document. Paths and schemas come from the handlers' own registration
//! (utoipa-actix-web); this module adds what every operation shares: the security scheme and
//! the problem responses each can return.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::dev::{ServiceFactory, ServiceRequest};
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, Parameter};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ArrayItems, Object, ObjectBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder, Responses,
};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::api::cases::{AssigneeParam, CaseOrder};
use crate::domain::Locale;
use crate::errors::{FieldError, PROBLEM_JSON, Problem};
use crate::events::Event;
use crate::http::idempotency::IDEMPOTENCY_KEY;
use crate::ticket_workflow::TicketAllowedAction;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dossier API",
        description = include_str!("openapi_intro.md"),
        license(name = "Proprietary", identifier = "LicenseRef-Proprietary"),
    ),
    modifiers(&BearerScheme),
    // Schemas no body names (problems, and some lists' query parameters) are not collected on
    // their own.
    components(schemas(Problem, FieldError, TicketAllowedAction, AssigneeParam, CaseOrder)),
    tags(
        (name = "auth", description = "Logging in and refreshing tokens"),
        (name = "users", description = "Users and the caller's own profile"),
        (name = "agencies", description = "Agencies selling services on the marketplace"),
        (name = "services", description = "The catalog of services agencies sell"),
        (name = "cases", description = "Cases: buying, the card, the list, the lifecycle, assignment"),
        (name = "audit", description = "The hash-chained change log"),
        (name = "rules", description = "The business-rule log: what the server's own rules did"),
        (name = "required-data", description = "The form the client fills for the agency"),
        (name = "storyline", description = "What happened, in order and on a map"),
        (name = "messages", description = "The conversation: messages, logged interactions, internal notes"),
        (name = "requests", description = "What the agency asks the client, and the answers"),
        (name = "video-calls", description = "Call rooms on the configured provider"),
        (name = "notifications", description = "The bell: in-app notifications"),
        (name = "attachments", description = "Files on a case, kept in object storage"),
        (name = "tickets", description = "Support tickets to the platform, their queues, conversation and files"),
        (name = "sla", description = "SLA: business calendars, policies, and each case's and support ticket's clocks"),
        (name = "webhooks", description = "Outbound webhooks: events on cases and support tickets posted, signed, to the agency's or the platform's URLs"),
        (name = "triggers", description = "Agencies' own rules: on an event on a case that meets their conditions, notify, set the priority, assign, tag, send to a webhook"),
        (name = "presence", description = "Staff presence, and the open work each holds against their capacity"),
        (name = "operations", description = "Health and metrics for operators"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from `POST /v1/auth/token`."))
                    .build(),
            ),
        );
    }
}

/// Registers every route on `app` and returns the document the registration produced: the
/// one place routes and spec come from.
pub fn with_routes<T>(app: actix_web::App<T>) -> (actix_web::App<T>, Document)
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    let (app, doc) = app
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::api::routes)
        .split_for_parts();
    (app, finish(doc))
}

/// What `/openapi.json` serves and `openapi/openapi.json` must equal.
pub fn spec() -> Document {
    with_routes(actix_web::App::new()).1
}

/// The spec as pretty JSON with a trailing newline, as committed.
pub fn spec_json() -> String {
    let mut json = spec().to_pretty_json().expect("the spec serializes");
    json.push('\n');
    json
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    problem_with_headers(description, BTreeMap::new())
}

/// A string header described as `description`.
fn text_header(description: &str) -> RefOr<Header> {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(description))
        .build()
        .into()
}

/// A problem response that also carries `headers` (`Retry-After`, `WWW-Authenticate`).
fn problem_with_headers(
    description: &str,
    headers: BTreeMap<String, RefOr<Header>>,
) -> RefOr<utoipa::openapi::Response> {
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    response.headers = headers;
    response.into()
}

/// Every operation with its path and whether it writes (anything but GET).
fn operations(doc: &mut Document) -> impl Iterator<Item = (&String, bool, &mut Operation)> {
    doc.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            (false, &mut item.get),
            (true, &mut item.post),
            (true, &mut item.put),
            (true, &mut item.patch),
            (true, &mut item.delete),
        ]
        .into_iter()
        .filter_map(|(writes, op)| op.as_mut().map(|op| (writes, op)))
        .map(move |(writes, op)| (path, writes, op))
    })
}

/// A `GET` that answers 304: the `If-None-Match` it reads (each handler reads the header
/// itself), and the 200's validators (`ETag`, `Vary`) on the 304 too, as the handlers send them.
fn revalidated(op: &mut Operation) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    const IF_NONE_MATCH: &str = "If-None-Match";
    let parameters = op.parameters.get_or_insert_with(Vec::new);
    let named = |p: &RefOr<Parameter>| matches!(p, RefOr::T(p) if p.name == IF_NONE_MATCH);
    if !parameters.iter().any(named) {
        let sent = ParameterBuilder::new()
            .name(IF_NONE_MATCH)
            .parameter_in(ParameterIn::Header)
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some(
                "The `ETag` last seen (or several, separated by commas); 304 while it is current",
            ));
        parameters.push(sent.build().into());
    }
    let responses = &mut op.responses.responses;
    let validators: Vec<_> = match responses.get("200") {
        Some(RefOr::T(ok)) => ok
            .headers
            .iter()
            .filter(|(name, _)| ["ETag", "Vary"].contains(&name.as_str()))
            .map(|(name, header)| (name.clone(), header.clone()))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(RefOr::T(not_modified)) = responses.get_mut("304") {
        for (name, header) in validators {
            not_modified.headers.entry(name).or_insert(header);
        }
    }
}

/// Makes `status` name the problem `code` that shared machinery (a lost race, an idempotency
/// key) can answer on an operation, whatever its handler declared under that status.
fn mention(responses: &mut Responses, status: &str, code: &str, what: &str) {
    match responses.responses.get_mut(status) {
        Some(RefOr::T(r)) if !r.description.contains(code) => {
            r.description = format!("{}. Also `{code}`: {what}", r.description);
        }
        Some(_) => {}
        None => {
            let response = problem(&format!("`{code}`: {what}"));
            responses.responses.insert(status.to_owned(), response);
        }
    }
}

/// Adds the failures every operation shares, and problem bodies to the ones handlers declared.
fn finish(mut doc: Document) -> Document {
    for (path, writes, op) in operations(&mut doc) {
        if op.operation_id.as_deref() == Some("transition_case") {
            // The action table in the description comes from the same rules that enforce it.
            let description = op.description.get_or_insert_with(String::new);
            description.push_str("\n\n");
            description.push_str(&crate::workflow::markdown_table());
        }
        let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
        let has_input =
            op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
        let takes_key = |p: &RefOr<Parameter>| match p {
            RefOr::T(p) => p.name.eq_ignore_ascii_case(IDEMPOTENCY_KEY.as_str()),
            RefOr::Ref(_) => false,
        };
        let idempotent = op.parameters.iter().flatten().any(takes_key);
        if op.responses.responses.contains_key("304") {
            revalidated(op);
        }
        let responses = &mut op.responses.responses;
        for (status, response) in responses.iter_mut() {
            let is_error = status.starts_with('4') || status.starts_with('5');
            let RefOr::T(r) = response else { continue };
            if is_error && r.content.is_empty() {
                // Handlers declare failures by status, description and headers; the body is the
                // problem type.
                *response = problem_with_headers(&r.description.clone(), r.headers.clone());
            } else if idempotent && status.starts_with('2') {
                // What `Idempotency-Key` adds to a success (`IDEMPOTENT_REPLAYED`), written once
                // for every route taking it.
                r.headers.insert(
                    "Idempotent-Replayed".to_owned(),
                    text_header("`true` when this is a replay of an earlier response"),
                );
            }
        }
        let declares_401 = responses.contains_key("401");
        // The failure where the handler did not declare it; its headers either way.
        let mut add = |status: &str, description: &str, headers: &[(&str, &str)]| {
            let response = responses
                .entry(status.to_owned())
                .or_insert_with(|| problem(description));
            if let RefOr::T(r) = response {
                for (name, about) in headers {
                    r.headers
                        .entry((*name).to_owned())
                        .or_insert_with(|| text_header(about));
                }
            }
        };
        // The middleware refuses a NUL character in any URL (`http::middleware`).
        add(
            "400",
            if has_input {
                "Malformed request: invalid JSON, an unknown field, or a bad parameter (at most 100 in the query)"
            } else {
                "Malformed request: a NUL character (`%00`) in the URL"
            },
            &[],
        );
        // Every 401 carries the challenge (`errors.rs`), the login's too.
        if secured || declares_401 {
            add(
                "401",
                "Missing, invalid or expired access token, its sessions ended (a logout everywhere, a password change, the agency's deactivation), or a deactivated user (`WWW-Authenticate: Bearer`)",
                &[(
                    "WWW-Authenticate",
                    "`Bearer realm=\"dossier\"`, with `error=\"invalid_token\"` when an access token was sent and refused",
                )],
            );
        }
        if op.request_body.is_some() {
            add("413", "The body is larger than the configured limit", &[]);
            add("415", "The body is not `application/json`", &[]);
            // Every JSON body goes through `ValidJson`: a member missing or of the wrong type is 422.
            add(
                "422",
                "A member is missing, of the wrong type, or breaks a rule",
                &[],
            );
        }
        add(
            "500",
            "Unexpected failure; the body carries only the request id",
            &[],
        );
        if path != "/health/live" && path != "/metrics" {
            add(
                "503",
                "The database cannot be reached (`service_unavailable`), or did not answer in time (`database_busy`, with `Retry-After`; nothing was written)",
                &[(
                    "Retry-After",
                    "Seconds to wait before retrying (`database_busy`)",
                )],
            );
        }
        if writes && secured {
            add(
                "429",
                "Too many writes by the caller in the last minute (`too_many_requests`, `DOSSIER_WRITES_PER_MINUTE`); nothing was written",
                &[("Retry-After", "Seconds until a write is accepted again")],
            );
        }
        if writes {
            // A serialization failure or a deadlock on PostgreSQL, or a versioned write that
            // found its row changed (`errors.rs`).
            let race = "a concurrent change committed first; nothing was written, retry";
            mention(&mut op.responses, "409", "concurrent_update", race);
        }
        if idempotent {
            let running = "a request with the same `Idempotency-Key` is still running";
            mention(&mut op.responses, "409", "idempotency_key_in_use", running);
            let reused = "the `Idempotency-Key` was used with another request";
            mention(&mut op.responses, "422", "idempotency_key_reused", reused);
        }
    }
    answer_needs_text_or_attachments(&mut doc);
    composed_examples(&mut doc);
    pages_show_their_rows(&mut doc);
    answers_send_their_nulls(&mut doc);
    stream_shows_a_notification(&mut doc);
    doc
}

/// The notification stream's example: a notification's own example in the frame the stream
/// writes, then a heartbeat.
fn stream_shows_a_notification(doc: &mut Document) {
    use crate::api::notifications::{HEARTBEAT, sse_frame};
    let schemas = &doc.components.get_or_insert_with(Default::default).schemas;
    let notification = example_of(schemas, "NotificationView").unwrap_or_default();
    let id = notification["id"].as_str().unwrap_or_default();
    let frame = sse_frame(id, &notification.to_string()) + HEARTBEAT;
    let stream = doc.paths.paths.get_mut("/v1/notifications/stream");
    let ok = stream.and_then(|item| item.get.as_mut()?.responses.responses.get_mut("200"));
    if let Some(RefOr::T(ok)) = ok
        && let Some(RefOr::T(content)) = ok.content.get_mut("text/event-stream")
    {
        content.example = Some(frame.into());
    }
}

/// The example a schema carries: an object's, or a composition's (a struct that flattens
/// another is one).
fn example_in(schema: &mut Schema) -> Option<&mut Option<serde_json::Value>> {
    match schema {
        Schema::Object(object) => Some(&mut object.example),
        Schema::AllOf(all) => Some(&mut all.example),
        _ => None,
    }
}

/// The example of a schema that has one of its own (`tests/api/openapi.rs` checks that every
/// body's schema does).
fn example_of(schemas: &BTreeMap<String, RefOr<Schema>>, name: &str) -> Option<serde_json::Value> {
    match schemas.get(name).cloned() {
        Some(RefOr::T(mut schema)) => example_in(&mut schema).and_then(Option::take),
        _ => None,
    }
}

/// Examples of bodies made of other schemas, built from those schemas' own examples (and the
/// workflow's from the very tables the server answers with), so none drifts from its parts.
fn composed_examples(doc: &mut Document) {
    use serde_json::{Value, json};
    let schemas = &mut doc.components.get_or_insert_with(Default::default).schemas;
    let example = |name: &str| example_of(schemas, name).unwrap_or_default();
    let merged = |mut a: Value, b: Value| {
        if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
            a.extend(b);
        }
        a
    };
    let case_id = example("CaseView")["id"].clone();
    let clock = example("ClockView");
    // The normal priority's resolution target, a day of it counted, paused.
    let target = example("Targets")["normal"]["resolution"]
        .as_i64()
        .unwrap_or_default()
        * 60;
    let resolution = merged(
        clock.clone(),
        json!({"clock": "resolution", "state": "paused", "due_at": null, "at_risk": false,
               "target_seconds": target, "elapsed_seconds": 86_400,
               "remaining_seconds": target - 86_400, "warned_at": null}),
    );
    let person = example("CaseView")["agents"][0].clone();
    let composed = [
        (
            "TransitionOutcome",
            json!({"case": example("CaseView"), "next_steps": []}),
        ),
        (
            "MeView",
            merged(
                example("UserView"),
                json!({"presence": example("PresenceView")}),
            ),
        ),
        (
            "StaffPresenceView",
            merged(
                json!({"user": person, "role": "agency", "workload": 2, "capacity": 3, "room": 1}),
                example("PresenceView"),
            ),
        ),
        ("AgentsView", json!({"agents": [person]})),
        (
            "EmailPreferences",
            json!({"email_enabled": true, "events": Event::ALL.iter().map(|&event| {
                json!({"event": event, "email": event != Event::MessageReceived})
            }).collect::<Vec<_>>()}),
        ),
        (
            "CaseSlaView",
            json!({"case_id": case_id, "state": "at_risk", "clocks": [clock.clone(), resolution]}),
        ),
        (
            "TicketSlaView",
            json!({"ticket_id": "0193a6f9-aaaa-7c2d-8e3f-405162738495", "state": "at_risk", "clocks": [clock]}),
        ),
        (
            "PolicyView",
            json!({"id": "0193a6f4-6666-7c2d-8e3f-405162738495",
                   "agency_id": "0193a6f4-0000-7c2d-8e3f-405162738495", "name": "Standard",
                   "calendar_id": null, "warning_percent": 80, "targets": example("Targets"),
                   "default": true, "created_at": "2026-11-20T10:00:00Z"}),
        ),
        (
            "WorkflowView",
            serde_json::to_value(crate::api::transitions::WorkflowView::new(Locale::En))
                .expect("the workflow serializes"),
        ),
    ];
    set_examples(
        schemas,
        composed.map(|(name, value)| (name.to_owned(), value)),
    );
}

/// Each page's rows are its row's schema by reference (a generic schema inlines a copy), and
/// its example a page of the row's example, so neither can drift from the row.
fn pages_show_their_rows(doc: &mut Document) {
    let schemas = &mut doc.components.get_or_insert_with(Default::default).schemas;
    let rows: Vec<(String, String)> = schemas
        .keys()
        .filter_map(|page| Some((page.clone(), page.strip_prefix("Page_")?.to_owned())))
        .filter(|(_, row)| schemas.contains_key(row))
        .collect();
    let mut examples = Vec::new();
    for (page, row) in rows {
        if let Some(example) = example_of(schemas, &row) {
            // The last page: each list's cursor has its own form.
            let example = serde_json::json!({"items": [example], "next_cursor": null});
            examples.push((page.clone(), example));
        }
        if let Some(RefOr::T(Schema::Object(page))) = schemas.get_mut(&page)
            && let Some(RefOr::T(Schema::Array(items))) = page.properties.get_mut("items")
        {
            items.items = ArrayItems::RefOrSchema(Box::new(RefOr::Ref(Ref::from_schema_name(row))));
        }
    }
    set_examples(schemas, examples);
}

/// A member of an answer is always sent, `null` when it has no value, unless the server leaves
/// it out (those are declared `nullable = false`): so every nullable member of a schema only
/// answers use is required. A schema bodies or parameters also use keeps its optional members.
fn answers_send_their_nulls(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    let mut answers = BTreeSet::new();
    let mut inputs = BTreeSet::new();
    for item in doc.paths.paths.values() {
        let ops = [&item.get, &item.post, &item.put, &item.patch, &item.delete];
        for op in ops.into_iter().flatten() {
            let output = serde_json::json!(op.responses);
            named_in(&output, &components.schemas, &mut answers);
            let input = serde_json::json!([op.request_body, op.parameters]);
            named_in(&input, &components.schemas, &mut inputs);
        }
    }
    for name in answers.difference(&inputs) {
        // An object, or the members a composition (a flattened struct) adds to its parts.
        let objects: Vec<&mut Object> = match components.schemas.get_mut(name) {
            Some(RefOr::T(Schema::Object(object))) => vec![object],
            Some(RefOr::T(Schema::AllOf(all))) => (all.items.iter_mut())
                .filter_map(|item| match item {
                    RefOr::T(Schema::Object(object)) => Some(object),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for object in objects {
            let nullable: Vec<String> = object
                .properties
                .iter()
                .filter(|(member, _)| !object.required.contains(member))
                .filter(|(_, schema)| accepts_null(schema))
                .map(|(member, _)| member.clone())
                .collect();
            object.required.extend(nullable);
        }
    }
}

/// Adds to `found` every schema `value` names, and those they name in turn.
fn named_in(
    value: &serde_json::Value,
    schemas: &BTreeMap<String, RefOr<Schema>>,
    found: &mut BTreeSet<String>,
) {
    match value {
        serde_json::Value::Object(members) => {
            let named = members.get("$ref").and_then(|r| r.as_str());
            if let Some(name) = named.and_then(|r| r.strip_prefix("#/components/schemas/"))
                && found.insert(name.to_owned())
                && let Some(schema) = schemas.get(name)
            {
                named_in(&serde_json::json!(schema), schemas, found);
            }
            members.values().for_each(|v| named_in(v, schemas, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| named_in(v, schemas, found)),
        _ => {}
    }
}

/// Whether a member's schema lets it be `null` (`type: [.., "null"]`, or a `oneOf` with a
/// null, as utoipa writes an optional reference).
fn accepts_null(schema: &RefOr<Schema>) -> bool {
    let schema = serde_json::json!(schema);
    let is_null = |t: &serde_json::Value| t == "null";
    let typed = schema["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(is_null));
    let one_of = schema["oneOf"].as_array();
    typed || one_of.is_some_and(|o| o.iter().any(|s| is_null(&s["type"])))
}

/// Gives each named schema its example.
fn set_examples(
    schemas: &mut BTreeMap<String, RefOr<Schema>>,
    examples: impl IntoIterator<Item = (String, serde_json::Value)>,
) {
    for (name, example) in examples {
        if let Some(RefOr::T(schema)) = schemas.get_mut(&name)
            && let Some(slot) = example_in(schema)
        {
            *slot = Some(example);
        }
    }
}

/// A rule between members that their own schemas cannot state: an answer carries text, at
/// least one attachment, or both (otherwise 422, `required` at `/text`).
fn answer_needs_text_or_attachments(doc: &mut Document) {
    let schemas = &mut doc.components.get_or_insert_with(Default::default).schemas;
    let members = schemas
        .remove("AnswerRequest")
        .expect("answer_request registers its body");
    let text = ObjectBuilder::new()
        .property("text", ObjectBuilder::new().schema_type(Type::String))
        .required("text");
    let attachments = ObjectBuilder::new()
        .property("attachment_ids", ArrayBuilder::new().min_items(Some(1)))
        .required("attachment_ids");
    let either = AnyOfBuilder::new().item(text).item(attachments);
    let answer = AllOfBuilder::new().item(members).item(either);
    schemas.insert("AnswerRequest".to_owned(), answer.into());
}
