use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use super::json;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

fn document() -> Value {
    serde_json::from_str(json()).expect("the generated document is JSON")
}

/// The checked-in `openapi.json` is what the code generates: a route, a parameter, an
/// answer or a wire type that changes without the file fails here, with the first
/// lines that differ. `UPDATE_OPENAPI=1` writes the file instead.
#[test]
fn openapi_snapshot_is_up_to_date() {
    let generated = json();
    let path = snapshot_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v != "0") {
        std::fs::write(&path, generated).expect("write openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in == generated {
        return;
    }
    let first = checked_in
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()));
    let excerpt = |text: &str| {
        text.lines()
            .enumerate()
            .skip(first.saturating_sub(3))
            .take(8)
            .map(|(n, line)| format!("{:>6} {line}", n + 1))
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "crates/tijori-web/openapi.json is not the document the code generates: a route or a \
         wire type changed without it. If the change is meant, regenerate it with\n\n    \
         UPDATE_OPENAPI=1 cargo test -p tijori-web openapi_snapshot\n\nand commit the file \
         with the change.\nFirst difference at line {}:\n--- checked in\n{}\n+++ generated\n{}",
        first + 1,
        excerpt(&checked_in),
        excerpt(generated),
    );
}

/// The routes the crate registers with a literal path (`.route("/path", get(..)...)`),
/// each with its methods, read from the source: axum's router cannot list its routes.
/// (The other direction, that every documented route is routed, is tested against the
/// running app in `crates/tijori/tests/api/operations.rs`.)
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![dir.clone()];
    let mut routes = BTreeSet::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                files.push(entry.unwrap().path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(quoted) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some(end) = quoted.find('"') else {
                continue;
            };
            let route = &quoted[..end];
            // The call's arguments: up to its closing parenthesis.
            let mut depth = 1;
            let args: String = rest
                .chars()
                .take_while(|c| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth > 0
                })
                .collect();
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = args.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0
                        || !args.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && args.as_bytes()[i - 1] != b'_'
                });
                if called {
                    routes.insert((route.to_owned(), method.to_owned()));
                }
            }
        }
    }
    routes
}

/// Whether a route belongs to the API the document describes (not a page).
fn is_api(route: &str) -> bool {
    route.starts_with("/api/")
        || route.starts_with("/ws/")
        || route == "/healthz"
        || route == "/metrics"
}

#[test]
fn every_api_route_is_documented() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (path.clone(), method.clone()))
        })
        .collect();
    let routed = routes_in_source();
    assert!(
        routed.len() > 40,
        "the scan found too few routes: {routed:?}"
    );
    let undocumented: Vec<_> = routed
        .iter()
        .filter(|(route, _)| is_api(route))
        // `/api/auth/login/` and its like answer as `/api/auth/login` does.
        .filter(|(route, method)| {
            !documented.contains(&(route.clone(), method.clone()))
                && !route
                    .strip_suffix('/')
                    .is_some_and(|bare| documented.contains(&(bare.to_owned(), method.clone())))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document (add #[utoipa::path] to the handler and \
         list it in ApiDoc's paths): {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed with a literal path: {unrouted:?}"
    );
}

/// Every operation says what its errors look like, and names at least one error code
/// for each error answer in the envelope.
#[test]
fn every_error_answer_names_its_codes() {
    let doc = document();
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if !responses.keys().any(|s| s.starts_with('4')) {
                missing.push(format!("{method} {path}: no 4xx"));
            }
            for (status, response) in responses {
                let envelope = response["content"]["application/json"]["schema"]["$ref"]
                    == "#/components/schemas/Error";
                let text = response["description"].as_str().unwrap();
                if envelope && !text.contains('`') {
                    missing.push(format!("{method} {path} {status}: {text}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "error answers that name no error code:\n{}",
        missing.join("\n")
    );
}

#[test]
fn operation_ids_are_unique() {
    let doc = document();
    let mut seen = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap().to_owned();
            assert!(seen.insert(id.clone()), "operationId {id} twice");
        }
    }
}

/// The `EventEnvelope` schema names the fields the core writes into every delivery.
#[test]
fn the_event_envelope_is_what_the_core_sends() {
    use tijori_core::events::{body, Event, EventType};
    use tijori_core::id::EventId;
    let event = Event {
        id: EventId::generate(),
        kind: EventType::OrderPaid,
        user: None,
        payment: None,
        order: None,
        refund: None,
        body: None,
        created_at: chrono::Utc::now(),
    };
    let sent: Value = serde_json::from_str(&body(&event, Value::Null)).unwrap();
    let sent: BTreeSet<&String> = sent.as_object().unwrap().keys().collect();
    let doc = document();
    let envelope = &doc["components"]["schemas"]["EventEnvelope"];
    let documented: BTreeSet<&String> =
        envelope["properties"].as_object().unwrap().keys().collect();
    assert_eq!(sent, documented);
    let webhooks = doc["webhooks"].as_object().unwrap();
    assert_eq!(webhooks.len(), EventType::ALL.len());
    for kind in EventType::ALL {
        assert!(
            webhooks.contains_key(kind.as_str()),
            "{kind} has no webhook"
        );
    }
}
