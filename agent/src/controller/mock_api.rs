//! A stand-in API server for tests of API calls (reconciles, lookups): kube's `Client` over a
//! `tower-test` mock service that records every request and answers it
//! the way the API server would (echoing applied objects; keeping created
//! and replaced objects with a resource version, refusing a replace at a
//! stale one), or fails the requests a test names with the status code it
//! names (403: refused because the namespace is being deleted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use imprint_crd::profile::BehaviorProfile;
use imprint_crd::report::ContainerBehaviorReport;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request the controller made.
#[derive(Clone, Debug)]
pub struct Call {
    /// HTTP method.
    pub method: String,
    /// Path (without the query).
    pub path: String,
    /// The query (without `?`).
    pub query: String,
    /// The body, parsed (`Null` when empty).
    pub body: Value,
}

/// Requests made so far.
pub type Calls = Arc<Mutex<Vec<Call>>>;

/// Objects created or replaced, by path.
pub type Objects = Arc<Mutex<HashMap<String, Value>>>;

/// How a test fails requests: a status code for (method, path), or none.
pub type Fail = Box<dyn FnMut(&str, &str) -> Option<u16> + Send>;

/// A client whose API server holds `profile`; requests for which `fail`
/// gives a status code are refused with it.
pub fn client(profile: BehaviorProfile, fail: fn(&str, &str) -> Option<u16>) -> (Client, Calls) {
    client_with(profile, Box::new(fail), Objects::default())
}

/// [`client`] with a failure rule that may keep state, and objects the
/// API server holds from the start (also every object created or replaced).
pub fn client_with(profile: BehaviorProfile, mut fail: Fail, objects: Objects) -> (Client, Calls) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls: Calls = Arc::default();
    let recorded = calls.clone();
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or_default().to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            recorded.lock().unwrap().push(Call {
                method: method.clone(),
                path: path.clone(),
                query,
                body: body.clone(),
            });
            let (status, answer) = match fail(&method, &path) {
                Some(code) => (
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    failure(code),
                ),
                None => answer(&method, &path, body, &profile, &objects),
            };
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
    (Client::new(service, "default"), calls)
}

fn failure(code: u16) -> Value {
    let (reason, message) = match code {
        404 => ("NotFound", "mock"),
        409 => ("Conflict", "the object has been modified"),
        403 => (
            "Forbidden",
            "unable to create new content in namespace shop because it is being terminated",
        ),
        _ => ("InternalError", "mock"),
    };
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
           "reason": reason, "message": message})
}

fn answer(
    method: &str,
    path: &str,
    body: Value,
    profile: &BehaviorProfile,
    objects: &Objects,
) -> (StatusCode, Value) {
    let name = path.rsplit('/').next().unwrap_or_default();
    let mut objects = objects.lock().unwrap();
    match method {
        "GET" if objects.contains_key(path) => (StatusCode::OK, objects[path].clone()),
        "POST" if path.ends_with("/events") => (StatusCode::CREATED, body),
        "POST" => {
            let key = format!(
                "{path}/{}",
                body["metadata"]["name"].as_str().unwrap_or_default()
            );
            if objects.contains_key(&key) {
                return (StatusCode::CONFLICT, failure(409));
            }
            let mut created = body;
            created["metadata"]["resourceVersion"] = json!("1");
            objects.insert(key, created.clone());
            (StatusCode::CREATED, created)
        }
        "PUT" => {
            let stored = objects
                .get(path)
                .map(|o| o["metadata"]["resourceVersion"].clone());
            let version = body["metadata"]["resourceVersion"].clone();
            if stored.as_ref() != Some(&version) {
                return (StatusCode::CONFLICT, failure(409));
            }
            let next = version
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            let mut replaced = body;
            replaced["metadata"]["resourceVersion"] = json!(next.to_string());
            objects.insert(path.to_string(), replaced.clone());
            (StatusCode::OK, replaced)
        }
        "PATCH" if path.ends_with("/status") => {
            let mut updated = serde_json::to_value(profile).unwrap();
            updated["status"] = body["status"].clone();
            (StatusCode::OK, updated)
        }
        "PATCH" if path.contains("/containerbehaviorreports/") && body.get("spec").is_none() => {
            // A merge patch of the metadata (the finalizer's release).
            let report = ContainerBehaviorReport::new(name, Default::default());
            (StatusCode::OK, serde_json::to_value(report).unwrap())
        }
        "PATCH" => (StatusCode::OK, body),
        _ => (StatusCode::NOT_FOUND, failure(404)),
    }
}
