//! The OpenAPI document's descriptions of request bodies that the handlers read field by
//! field rather than through these types (so that each refusal can name its field), and
//! the schema builders for what utoipa's derive cannot say.

use serde_json::Value;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

use crate::job::{MAX_ARGUMENTS, MAX_ARGUMENTS_BYTES, MAX_BODY_BYTES, MAX_VALUE_CHARS};

// Describes the body for the OpenAPI document only: the handler checks the raw JSON field
// by field (`validate_request`) so that each refusal can name the field at fault.
/// A job to start, exactly as Multiomix sends it. `entrypoint_arguments` must contain
/// `app-name`, one folder name that follows the job script's rule
/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$` on every backend (400 naming
/// `entrypoint_arguments[app-name].value` otherwise, before anything is staged or
/// started). `molecules-dataset` and `clinical-dataset`, when given, are paths relative
/// to the datasets folder, without `..`.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({
    "name": "BreastCancerBBHA",
    "algorithm": 1,
    "entrypoint_arguments": [
        {"name": "app-name", "value": "exp-42-app"},
        {"name": "molecules-dataset", "value": "exp-42-app/molecules.csv"},
        {"name": "n-stars", "value": 15},
        {"name": "cv-folds", "value": "10"}
    ]
}))]
pub struct StartJobRequest {
    /// The job name; generated (`multiomix-<algorithm>-<letters>-<digits>`) when missing or null.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[.\-_/#A-Za-z0-9]{1,64}$"
    )]
    pub name: Option<String>,
    /// `0` = Blind Search, `1` = BBHA; missing or null means 0.
    #[schema(schema_with = algorithm_schema)]
    pub algorithm: Option<i64>,
    #[schema(schema_with = arguments_schema)]
    pub entrypoint_arguments: Vec<EntrypointArgument>,
}

/// One argument of the job script.
#[derive(utoipa::ToSchema)]
pub struct EntrypointArgument {
    /// Letters, digits, `-`, `_` and `.`, not starting with `-` (the service adds the prefix).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[A-Za-z0-9_.][A-Za-z0-9_.\-]*$"
    )]
    pub name: String,
    /// Passed on as text: `15` becomes `"15"`, `true` becomes `"true"`.
    #[schema(schema_with = argument_value_schema)]
    pub value: Value,
}

/// The body the driver pod's sidecar sends to `PATCH /job/{id}`. Informational only.
#[derive(utoipa::ToSchema)]
pub struct CallbackBody {
    /// What the sidecar saw, e.g. `Terminated`.
    pub state: Option<String>,
}

fn algorithm_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .enum_values(Some([Value::from(0), Value::from(1), Value::Null]))
        .description(Some("0 = Blind Search, 1 = BBHA; missing or null means 0"))
}

fn arguments_schema() -> impl Into<RefOr<Schema>> {
    // utoipa has no builder for JSON Schema's `contains`; extensions are written into the
    // schema object as they are, which is how it is added here.
    let contains = serde_json::json!({
        "type": "object",
        "required": ["name", "value"],
        "properties": {
            "name": {"const": "app-name"},
            "value": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": crate::job::APP_NAME_RULE
            }
        }
    });
    ArrayBuilder::new()
        .items(RefOr::Ref(Ref::from_schema_name("EntrypointArgument")))
        .min_items(Some(1))
        .max_items(Some(MAX_ARGUMENTS))
        .description(Some(format!(
            "The job script's arguments, passed on in this order as `--<name> <value>`. \
             Names are unique; `app-name` is required (Multiomix names the result folder by it). \
             The names and values add up to at most {MAX_ARGUMENTS_BYTES} bytes of UTF-8 \
             (400 beyond): what the {} KiB body limit leaves beside the JSON around \
             {MAX_ARGUMENTS} arguments.",
            MAX_BODY_BYTES / 1024
        )))
        .extensions(Some(Extensions::from_iter([("contains", contains)])))
}

fn argument_value_schema() -> impl Into<RefOr<Schema>> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_VALUE_CHARS))
                // Not blank (EMR refuses an argument of spaces only), no control characters
                // (what `char::is_control` refuses), and no leading `-` but that of a
                // negative number: the job script would read it as an option.
                .pattern(Some(
                    r"^(?=.*[^ ])(?!-(?!(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$))[^\u0000-\u001f\u007f-\u009f]*$",
                )),
        )
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .description(Some(
            "A string, a number or a boolean; passed on to the job script as text",
        ))
}
