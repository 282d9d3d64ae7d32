//! The OpenAPI document: generated from the code, checked in, served, and in step with
//! the routes and limits it describes.
//!
//! After changing a route, regenerate the checked-in file with
//! `UPDATE_OPENAPI=1 cargo nextest run -E 'test(/^openapi::/)'`.

use std::path::PathBuf;

use multiomix_aws_emr::api::openapi::document;
use multiomix_aws_emr::api::MAX_BODY_BYTES;
use multiomix_aws_emr::job::{
    MAX_ARGUMENTS, MAX_ARGUMENTS_BYTES, MAX_ARGUMENT_NAME_CHARS, MAX_VALUE_CHARS,
};
use serde_json::Value;

use crate::common;
use crate::common::spawn_app;

fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

fn doc() -> Value {
    serde_json::from_str(document()).expect("the document is JSON")
}

#[test]
fn the_checked_in_openapi_json_is_the_generated_one() {
    let path = checked_in_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, document()).expect("write openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == document(),
        "openapi.json differs from the document the code generates; regenerate it with \
         `UPDATE_OPENAPI=1 cargo nextest run -E 'test(/^openapi::/)'` and commit it"
    );
}

#[test]
fn every_route_and_method_is_documented() {
    let doc = doc();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    let mut expected = vec![
        "GET /",
        "GET /health",
        "GET /ready",
        "GET /metrics",
        "GET /openapi.json",
        "POST /job",
        "GET /jobs",
        "GET /job/{id}",
        "DELETE /job/{id}",
        "PATCH /job/{id}",
        "GET /ui",
        "GET /ui/jobs/{id}",
    ];
    expected.sort();
    assert_eq!(operations, expected);
}

#[test]
fn job_routes_name_their_token_and_open_routes_name_none() {
    let doc = doc();
    let security = |method: &str, path: &str| doc["paths"][path][method]["security"].clone();
    let api = serde_json::json!([{"api_token": []}]);
    for (method, path) in [
        ("post", "/job"),
        ("get", "/jobs"),
        ("get", "/job/{id}"),
        ("delete", "/job/{id}"),
    ] {
        assert_eq!(security(method, path), api, "{method} {path}");
        assert!(
            doc["paths"][path][method]["responses"]["401"].is_object(),
            "{method} {path} documents its 401"
        );
    }
    assert_eq!(
        security("patch", "/job/{id}"),
        serde_json::json!([{"callback_token": []}])
    );
    for path in ["/", "/health", "/ready", "/metrics", "/openapi.json"] {
        assert!(security("get", path).is_null(), "{path} is open");
    }
    // The pages take the API token as a bearer token or as the password of HTTP Basic.
    for path in ["/ui", "/ui/jobs/{id}"] {
        assert_eq!(
            security("get", path),
            serde_json::json!([{"api_token": []}, {"api_token_basic": []}]),
            "{path}"
        );
        let unauthorized = &doc["paths"][path]["get"]["responses"]["401"];
        assert!(
            unauthorized["headers"]["WWW-Authenticate"].is_object(),
            "{path}"
        );
        assert!(unauthorized["content"]["text/html"].is_object(), "{path}");
    }
    for scheme in ["api_token", "callback_token"] {
        let s = &doc["components"]["securitySchemes"][scheme];
        assert_eq!(s["type"], "http");
        assert_eq!(s["scheme"], "bearer");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_token_basic"]["scheme"],
        "basic"
    );
}

#[test]
fn the_request_schema_states_the_limits_the_validator_enforces() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    let request = &schemas["StartJobRequest"]["properties"];
    assert_eq!(request["name"]["maxLength"], 64);
    assert_eq!(
        request["name"]["pattern"], r"^[.\-_/#A-Za-z0-9]{1,64}$",
        "EMR's alphabet for job names"
    );
    assert_eq!(request["entrypoint_arguments"]["maxItems"], MAX_ARGUMENTS);
    // JSON Schema cannot bound the sum of the items' sizes: the description states it.
    let described = request["entrypoint_arguments"]["description"]
        .as_str()
        .unwrap();
    assert!(
        described.contains(&format!("at most {MAX_ARGUMENTS_BYTES} bytes")),
        "{described}"
    );
    let required = schemas["StartJobRequest"]["required"].as_array().unwrap();
    assert_eq!(required, &vec![Value::from("entrypoint_arguments")]);

    let argument = &schemas["EntrypointArgument"]["properties"];
    assert_eq!(argument["name"]["maxLength"], MAX_ARGUMENT_NAME_CHARS);
    let value_types: Vec<&str> = argument["value"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(value_types, ["string", "number", "boolean"]);
    assert_eq!(argument["value"]["oneOf"][0]["maxLength"], MAX_VALUE_CHARS);

    let post = &doc["paths"]["/job"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/StartJobRequest"
    );
    for status in ["201", "400", "401", "413", "415", "502", "503"] {
        assert!(post["responses"][status].is_object(), "POST /job {status}");
    }
    assert!(post["responses"]["201"]["headers"]["Location"].is_object());
    assert!(post["responses"]["413"]["description"]
        .as_str()
        .unwrap()
        .contains(&format!("{} KiB", MAX_BODY_BYTES / 1024)));
}

#[test]
fn the_job_list_documents_its_query_parameters() {
    let doc = doc();
    let params = doc["paths"]["/jobs"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["state", "page_size", "next_token"]);
    assert!(params.iter().all(|p| p["in"] == "query"));
    assert_eq!(params[1]["schema"]["maximum"], 50);
}

#[tokio::test]
async fn the_service_serves_the_document_without_a_token() {
    let app = common::spawn_app_with(&[("API_TOKEN", "t-api"), ("CALLBACK_TOKEN", "t-cb")]).await;
    let r = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), document());
    drop(app);
    // Served the same by a default app too.
    let app = spawn_app().await;
    let served: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, doc());
}
