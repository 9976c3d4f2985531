//! The committed contract is what the code generates. `DOSSIER_UPDATE_OPENAPI=1` rewrites it.

use actix_web::test::TestRequest;

use crate::helpers::spawn;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[test]
fn committed_spec_is_current() {
    let generated = dossier::openapi::spec_json();
    if std::env::var("DOSSIER_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `DOSSIER_UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );
}

#[actix_web::test]
async fn served_spec_equals_committed_and_every_operation_is_complete() {
    let app = spawn().await;
    let res = app.send(TestRequest::get().uri("/openapi.json")).await;
    let served = res.assert_status(200);
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    assert_eq!(served, &committed);
    for (path, item) in committed["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["operationId"].is_string(),
                "{method} {path}: operationId"
            );
            assert!(op["summary"].is_string(), "{method} {path}: summary");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{method} {path}: 500");
            // A NUL character is refused in any URL (errors.rs tests it).
            assert!(responses.contains_key("400"), "{method} {path}: 400");
            // API.md: every POST that creates something takes `Idempotency-Key`.
            if method == "post" && responses.contains_key("201") {
                let keyed = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
                });
                assert!(keyed, "{method} {path}: Idempotency-Key");
                let created = &responses["201"]["headers"];
                assert!(
                    created["Idempotent-Replayed"].is_object(),
                    "{method} {path}: Idempotent-Replayed"
                );
                // API.md: 201 (+`Location`); `locations.rs` follows them.
                assert!(created["Location"].is_object(), "{method} {path}: Location");
            }
            // A 304 names the validator it answers (`If-None-Match`) and the one it sends.
            if responses.contains_key("304") {
                let revalidates = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["name"] == "If-None-Match" && p["in"] == "header")
                });
                assert!(revalidates, "{method} {path}: If-None-Match");
                assert!(
                    responses["304"]["headers"]["ETag"].is_object(),
                    "{method} {path}: the 304's ETag"
                );
            }
            if path.starts_with("/v1/") && !path.starts_with("/v1/auth/") {
                assert_eq!(
                    op["security"],
                    serde_json::json!([{"bearer": []}]),
                    "{method} {path}: security"
                );
                assert!(responses.contains_key("401"), "{method} {path}: 401");
            }
        }
    }
    let docs = app.send(TestRequest::get().uri("/docs/")).await;
    assert_eq!(docs.status.as_u16(), 200);
    assert!(docs.body.as_str().unwrap().contains("swagger"));
}

/// API.md: every request and response body has an example (mock servers and generated docs
/// show it): the body's schema carries one, or its first part does (a composed body), or the
/// body itself does; only a file's bytes have none.
#[test]
fn every_body_has_an_example() {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let mut missing = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let request = op["requestBody"]["content"].as_object().into_iter();
            let responses = op["responses"].as_object().unwrap().values();
            let bodies = request.chain(responses.filter_map(|r| r["content"].as_object()));
            for (media, body) in bodies.flatten() {
                let schema = match body["schema"]["$ref"].as_str() {
                    Some(name) => &schemas[name.trim_start_matches("#/components/schemas/")],
                    None => &body["schema"],
                };
                // A file's bytes (no schema, or an empty one) have nothing to show.
                let bytes = schema.as_object().is_none_or(|s| s.is_empty());
                // `AnswerRequest` composes its members (which carry the example) with a rule.
                let shown = [
                    &schema["example"],
                    &schema["allOf"][0]["example"],
                    &body["example"],
                ]
                .iter()
                .any(|e| !e.is_null());
                if !shown && !bytes {
                    missing.push(format!("{method} {path} {media}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "bodies without an example: {missing:#?}"
    );
}

/// Every example fits the schema it illustrates (a schema's own, a member's, a body's or a
/// parameter's), so that a mock server or a generated test built from them speaks the contract.
#[test]
fn every_example_fits_its_schema() {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    let mut examples = Vec::new();
    examples_in(&spec, String::from("#"), &mut examples);
    assert!(
        examples.len() > 100,
        "only {} examples found",
        examples.len()
    );
    let mut misfits = Vec::new();
    for (schema, example) in examples {
        // The schema by its place in the whole document, so its references resolve.
        let mut root = spec.clone();
        root["$ref"] = schema.clone().into();
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap();
        for error in validator.iter_errors(&example) {
            misfits.push(format!("{schema} at {}: {error}", error.instance_path()));
        }
    }
    assert!(
        misfits.is_empty(),
        "examples off their schema: {misfits:#?}"
    );
}

/// The examples below `node` (at `pointer`), each with the pointer of the schema it shows.
fn examples_in(
    node: &serde_json::Value,
    pointer: String,
    found: &mut Vec<(String, serde_json::Value)>,
) {
    let Some(members) = node.as_object() else {
        if let Some(items) = node.as_array() {
            for (i, item) in items.iter().enumerate() {
                examples_in(item, format!("{pointer}/{i}"), found);
            }
        }
        return;
    };
    if let Some(example) = members.get("example") {
        // A body or a parameter names its schema; a schema is its own.
        let schema = match members.contains_key("schema") {
            true => format!("{pointer}/schema"),
            false => pointer.clone(),
        };
        found.push((schema, example.clone()));
    }
    for (key, value) in members {
        if key != "example" {
            // A JSON pointer's escapes, then a URI fragment's (media types hold spaces).
            let key = key.replace('~', "~0").replace('/', "~1");
            let key: String = key
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            examples_in(value, format!("{pointer}/{key}"), found);
        }
    }
}

/// Every `$ref` names a schema the document defines (a dangling one breaks generated clients).
#[test]
fn every_reference_resolves() {
    let spec: serde_json::Value = serde_json::from_str(&dossier::openapi::spec_json()).unwrap();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let mut refs = Vec::new();
    fn walk(v: &serde_json::Value, refs: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => refs.push(r.to_owned()),
                        _ => walk(v, refs),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, refs)),
            _ => {}
        }
    }
    walk(&spec, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(schemas.contains_key(name), "dangling reference {r}");
    }
}

/// A schema that refuses unknown members (`additionalProperties: false`) cannot be one part of
/// an `allOf` whose other parts add members: it would refuse them, so no response would
/// validate.
#[test]
fn no_schema_composes_a_closed_one() {
    use serde_json::Value;
    let spec: Value = serde_json::from_str(&dossier::openapi::spec_json()).unwrap();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let resolve = |part: &'_ Value| -> Value {
        let named = part["$ref"]
            .as_str()
            .and_then(|r| schemas.get(r.trim_start_matches("#/components/schemas/")));
        named.unwrap_or(part).clone()
    };
    // The members a part names, in its own properties and in its alternatives'.
    fn members(part: &Value, resolve: &dyn Fn(&Value) -> Value) -> Vec<String> {
        let part = resolve(part);
        let mut names: Vec<String> = part["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for alternatives in ["anyOf", "oneOf", "allOf"] {
            for item in part[alternatives].as_array().into_iter().flatten() {
                names.extend(members(item, resolve));
            }
        }
        names
    }
    fn compositions(v: &Value, found: &mut Vec<Vec<Value>>) {
        match v {
            Value::Object(map) => {
                if let Some(parts) = map.get("allOf").and_then(|p| p.as_array())
                    && parts.len() > 1
                {
                    found.push(parts.clone());
                }
                map.values().for_each(|v| compositions(v, found));
            }
            Value::Array(items) => items.iter().for_each(|i| compositions(i, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    compositions(&spec, &mut found);
    assert!(!found.is_empty());
    for parts in found {
        for (i, part) in parts.iter().enumerate() {
            let closed = resolve(part);
            if closed["additionalProperties"] != false {
                continue;
            }
            let allowed = members(&closed, &resolve);
            for (j, other) in parts.iter().enumerate() {
                let added: Vec<String> = members(other, &resolve)
                    .into_iter()
                    .filter(|m| !allowed.contains(m))
                    .collect();
                assert!(
                    i == j || added.is_empty(),
                    "a closed schema refuses {added:?}: {part}"
                );
            }
        }
    }
}
