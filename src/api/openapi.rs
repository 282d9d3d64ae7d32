//! The OpenAPI 3 document of the whole API, generated from the handlers' annotations so
//! that it cannot drift from the code. Served at `GET /openapi.json` and checked in as
//! `openapi.json` (a test fails when the two differ).

use std::sync::OnceLock;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::{jobs, ops, schemas, ui};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "multiomix-aws-emr",
        description = "Runs Multiomix feature-selection Spark jobs on AWS EMR on EKS and \
            tells Multiomix when they end.\n\n\
            Both bearer tokens are optional: a route is open when its token is not configured."
    ),
    paths(
        ops::index,
        ops::health,
        ops::ready,
        ops::metrics,
        openapi_json,
        jobs::start_job,
        jobs::list_jobs,
        jobs::read_job,
        jobs::cancel_job,
        jobs::job_callback,
        ui::jobs_page,
        ui::job_page,
    ),
    components(schemas(schemas::EntrypointArgument)),
    modifiers(&BearerTokens),
    tags(
        (name = "jobs", description = "What Multiomix calls"),
        (name = "callback", description = "What the Spark driver pod's sidecar calls"),
        (name = "operations", description = "Probes, metrics and this document"),
        (name = "pages", description = "HTML pages for the lab's admins"),
    )
)]
pub struct ApiDoc;

/// The two bearer tokens, each its own scheme so a client knows which route takes which.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "api_token",
            bearer(
                "`API_TOKEN`: required by POST /job, GET /jobs, GET and DELETE /job/{id} and the \
                 pages under /ui when set",
            ),
        );
        components.add_security_scheme(
            "api_token_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "`API_TOKEN` as the password of HTTP Basic (any user name): what a \
                         browser sends to the pages under /ui when the token is set",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "callback_token",
            bearer("`CALLBACK_TOKEN`: required by PATCH /job/{id} when set"),
        );
    }
}

/// The document as pretty-printed JSON with a final newline, exactly as checked in.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut json = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises");
        json.push('\n');
        json
    })
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI document of this API", content_type = "application/json"),
        (status = 503, description = "The service is at capacity", body = ErrorBody,
         headers(("Retry-After" = u64))),
    ),
)]
pub async fn openapi_json() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        document(),
    )
        .into_response()
}
