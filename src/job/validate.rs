//! Checks a `POST /job` body before anything reaches a backend.
//!
//! The body is read as untyped JSON and checked field by field, so that every refusal can
//! say which field is wrong and why, instead of a generic deserialisation error.
//!
//! The limits on the arguments are derived from the body limit, so that a request they
//! allow also fits in a body: what they refuse is a 400 that names the field, never a 413
//! for a request the per-field limits said was fine.

use serde_json::Value;

use super::{Algorithm, JobName, JobSpec};

/// Largest `POST /job` body (413 beyond). A Multiomix job request is well under 1 KiB;
/// this leaves room for long dataset paths while bounding what one request costs.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// At most this many entry-point arguments in one job.
pub const MAX_ARGUMENTS: usize = 100;
/// EMR's own limit on the length of one entry-point argument.
pub const MAX_VALUE_CHARS: usize = 10_280;
/// Longest argument name.
pub const MAX_ARGUMENT_NAME_CHARS: usize = 128;
/// The arguments that name a dataset file, relative to the job's datasets folder
/// (`DATASETS_PATH`; `SHARED_DATASETS_DIR` when the service stages them in S3).
pub const DATASET_ARGUMENTS: &[&str] = &["molecules-dataset", "clinical-dataset"];

/// The JSON around one argument's name and value as Python's `json.dumps` writes it (a
/// space after `:` and `,`), the widest of the usual writers.
const ARGUMENT_JSON_BYTES: usize = r#"{"name": "", "value": ""}, "#.len();
/// The JSON around the arguments: the job's name, its algorithm, the brackets.
const REQUEST_JSON_BYTES: usize =
    r#"{"name": "", "algorithm": 0, "entrypoint_arguments": []}"#.len() + JobName::MAX_CHARS;

/// The most bytes (UTF-8) that the names and values of all the arguments of one job may
/// add up to: what the body limit leaves beside the JSON around [`MAX_ARGUMENTS`]
/// arguments. A request within every limit, written without escapes, fits in
/// [`MAX_BODY_BYTES`]; alone, `MAX_ARGUMENTS` values of `MAX_VALUE_CHARS` would not.
pub const MAX_ARGUMENTS_BYTES: usize =
    MAX_BODY_BYTES - MAX_ARGUMENTS * ARGUMENT_JSON_BYTES - REQUEST_JSON_BYTES;

/// Why a request was refused, and which field of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Turns Multiomix's request body into a [`JobSpec`], or says what is wrong with it.
pub fn validate_request(body: &Value) -> Result<JobSpec, FieldError> {
    let Value::Object(fields) = body else {
        return Err(FieldError::new("", "the body must be a JSON object"));
    };

    let algorithm = match fields.get("algorithm") {
        None | Some(Value::Null) => Algorithm::BlindSearch,
        Some(Value::Number(n)) => n.as_i64().and_then(Algorithm::from_code).ok_or_else(|| {
            FieldError::new(
                "algorithm",
                format!("{n} is not an algorithm: 0 = Blind Search, 1 = BBHA"),
            )
        })?,
        Some(other) => {
            return Err(FieldError::new(
                "algorithm",
                format!(
                    "must be the integer 0 (Blind Search) or 1 (BBHA), not {}",
                    type_name(other)
                ),
            ))
        }
    };

    let name = match fields.get("name") {
        None | Some(Value::Null) => JobName::generate(algorithm),
        Some(Value::String(s)) => JobName::parse(s).ok_or_else(|| {
            FieldError::new(
                "name",
                "must be 1 to 64 characters of letters, digits and . - _ / #",
            )
        })?,
        Some(other) => {
            return Err(FieldError::new(
                "name",
                format!("must be a string, not {}", type_name(other)),
            ))
        }
    };

    let items = match fields.get("entrypoint_arguments") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => {
            return Err(FieldError::new(
                "entrypoint_arguments",
                "is required and must contain app-name",
            ))
        }
        Some(other) => {
            return Err(FieldError::new(
                "entrypoint_arguments",
                format!(
                    "must be a list of {{name, value}}, not {}",
                    type_name(other)
                ),
            ))
        }
    };
    if items.len() > MAX_ARGUMENTS {
        return Err(FieldError::new(
            "entrypoint_arguments",
            format!("has more than {MAX_ARGUMENTS} items; at most {MAX_ARGUMENTS} are allowed"),
        ));
    }

    let mut arguments: Vec<(String, String)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = |field: &str| format!("entrypoint_arguments[{i}].{field}");
        let Value::Object(item) = item else {
            return Err(FieldError::new(
                format!("entrypoint_arguments[{i}]"),
                format!("must be an object {{name, value}}, not {}", type_name(item)),
            ));
        };
        let name = match item.get("name") {
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(FieldError::new(
                    at("name"),
                    format!("must be a string, not {}", type_name(other)),
                ))
            }
            None => return Err(FieldError::new(at("name"), "is required")),
        };
        check_argument_name(name).map_err(|why| FieldError::new(at("name"), why))?;
        if arguments.iter().any(|(seen, _)| seen == name) {
            return Err(FieldError::new(
                at("name"),
                format!("'{name}' is given more than once"),
            ));
        }
        let value = match item.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(other) => {
                return Err(FieldError::new(
                    at("value"),
                    format!(
                        "must be a string, a number or a boolean, not {}",
                        type_name(other)
                    ),
                ))
            }
            None => return Err(FieldError::new(at("value"), "is required")),
        };
        check_argument_value(&value).map_err(|why| FieldError::new(at("value"), why))?;
        if DATASET_ARGUMENTS.contains(&name.as_str()) && !is_relative_inside(&value) {
            return Err(FieldError::new(
                at("value"),
                format!(
                    "{name} '{value}' must be a path inside the datasets folder (relative, \
                     without '..')"
                ),
            ));
        }
        arguments.push((name.clone(), value));
    }
    let total: usize = arguments
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if total > MAX_ARGUMENTS_BYTES {
        return Err(FieldError::new(
            "entrypoint_arguments",
            format!(
                "the names and values add up to {total} bytes; at most {MAX_ARGUMENTS_BYTES} \
                 are allowed, what a {} KiB body leaves beside the JSON around them",
                MAX_BODY_BYTES / 1024
            ),
        ));
    }

    match arguments.iter().find(|(name, _)| name == "app-name") {
        None => {
            return Err(FieldError::new(
                "entrypoint_arguments",
                "must contain app-name (Multiomix names the result folder by it)",
            ))
        }
        Some((_, app)) => check_app_name(app)
            .map_err(|why| FieldError::new("entrypoint_arguments[app-name].value", why))?,
    }

    Ok(JobSpec {
        name,
        algorithm,
        arguments,
        progress_token: None,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Argument names become `--name` on the job's command line: letters, digits, `-`, `_`,
/// `.`, not starting with `-` (which would make `---x` or an option of another tool).
fn check_argument_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_ARGUMENT_NAME_CHARS {
        return Err(format!(
            "must be at most {MAX_ARGUMENT_NAME_CHARS} characters"
        ));
    }
    if name.starts_with('-') {
        return Err("must not start with '-' (the prefix is added by the service)".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("may contain only letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

fn check_argument_value(value: &str) -> Result<(), String> {
    let chars = value.chars().count();
    if chars > MAX_VALUE_CHARS {
        return Err(format!(
            "is {chars} characters long; EMR allows at most {MAX_VALUE_CHARS}"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters (newlines, NUL, ...)".into());
    }
    // EMR takes an entry-point argument only with a character that is not white space
    // (its pattern `.*\S.*`); control characters are refused above, so a blank value is
    // one of spaces. Refused here, it is a 400 naming the field instead of EMR's 502.
    if value.chars().all(|c| c == ' ') {
        return Err(
            "must contain a character other than a space (EMR refuses blank arguments)".into(),
        );
    }
    // The job scripts read their arguments with argparse, which takes a word starting
    // with `-` as an option: `--app-name=..` as a value would replace the checked app
    // name. Negative numbers are the one such word argparse reads as a value.
    if value.starts_with('-') && !is_negative_number(value) {
        return Err(
            "must not start with '-' unless it is a negative number (the job script would read it as an option)"
                .into(),
        );
    }
    Ok(())
}

/// A negative number (`-1`, `-0.5`, `-.5`, `-1e5`): it cannot name an option, which
/// starts with a letter after its dashes.
fn is_negative_number(value: &str) -> bool {
    value
        .strip_prefix('-')
        .and_then(|rest| rest.bytes().next())
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && value.parse::<f64>().is_ok()
}

/// Whether `path` stays inside whatever folder it is joined to: relative, and made of
/// plain names (and `.`) only. The job joins a dataset argument to its datasets folder, so
/// an absolute path or a `..` would have it read any file.
pub fn is_relative_inside(path: &str) -> bool {
    use std::path::{Component, Path};
    let path = Path::new(path);
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The one rule for `app-name`, on every backend: the job script's own
/// (`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`). It names one folder under the results path, one
/// S3 prefix and one tag value, so it is never `.` or `..`, never hidden (the folders a
/// download works in start with `.`), never an option to a program, and never a request the
/// job would refuse after its datasets were staged and its run started. Multiomix's are
/// `BBHA_<experiment id>`.
pub const APP_NAME_RULE: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

/// Whether `app` follows [`APP_NAME_RULE`].
pub fn is_valid_app_name(app: &str) -> bool {
    let mut bytes = app.bytes();
    app.len() <= 128
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_app_name(value: &str) -> Result<(), String> {
    if is_valid_app_name(value) {
        Ok(())
    } else {
        Err(format!(
            "app-name must be one folder name: 1 to 128 letters, digits, '.', '_' and '-', \
             starting with a letter or a digit ({APP_NAME_RULE})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn multiomix_body() -> Value {
        json!({"name": "BreastCancerBBHA",
               "algorithm": 1,
               "entrypoint_arguments": [
                 {"name": "app-name", "value": "exp-42-app"},
                 {"name": "molecules-dataset", "value": "exp-42-app/molecules.csv"},
                 {"name": "n-stars", "value": 15},
                 {"name": "cv-folds", "value": "10"}]})
    }

    #[test]
    fn app_names_follow_the_job_scripts_rule_and_nothing_else_passes() {
        for good in ["BBHA_42", "exp-42-app", "a.b", "x", "9.1", "A-_."] {
            assert!(is_valid_app_name(good), "{good}");
        }
        assert!(is_valid_app_name(&"a".repeat(128)));
        let long = "a".repeat(129);
        for bad in [
            "", ".", "..", ".x", "_x", "-x", "a/b", "../x", "/abs", "a b", "a\\b", "é", "a\u{0}",
            &long,
        ] {
            assert!(!is_valid_app_name(bad), "{bad}");
            let mut body = multiomix_body();
            body["entrypoint_arguments"][0]["value"] = json!(bad);
            assert!(validate_request(&body).is_err(), "{bad}");
        }
    }

    #[test]
    fn multiomix_request_is_accepted_with_values_as_text() {
        let spec = validate_request(&multiomix_body()).unwrap();
        assert_eq!(spec.name.as_str(), "BreastCancerBBHA");
        assert_eq!(spec.algorithm, Algorithm::Bbha);
        assert_eq!(
            spec.arguments,
            vec![
                ("app-name".into(), "exp-42-app".into()),
                (
                    "molecules-dataset".into(),
                    "exp-42-app/molecules.csv".into()
                ),
                ("n-stars".into(), "15".into()),
                ("cv-folds".into(), "10".into()),
            ]
        );
        assert_eq!(spec.app_name(), Some("exp-42-app"));
    }

    #[test]
    fn booleans_and_floats_become_their_json_text() {
        let mut body = multiomix_body();
        body["entrypoint_arguments"]
            .as_array_mut()
            .unwrap()
            .extend([
                json!({"name": "flag", "value": true}),
                json!({"name": "ratio", "value": 0.25}),
            ]);
        let spec = validate_request(&body).unwrap();
        assert!(spec.arguments.contains(&("flag".into(), "true".into())));
        assert!(spec.arguments.contains(&("ratio".into(), "0.25".into())));
    }

    #[test]
    fn a_missing_or_null_name_is_generated_and_a_missing_algorithm_is_blind_search() {
        let mut body = multiomix_body();
        body.as_object_mut().unwrap().remove("algorithm");
        body["name"] = Value::Null;
        let spec = validate_request(&body).unwrap();
        assert_eq!(spec.algorithm, Algorithm::BlindSearch);
        assert!(spec.name.as_str().starts_with("multiomix-blind-search-"));
    }

    fn refused(body: Value) -> FieldError {
        validate_request(&body).expect_err("should be refused")
    }

    #[test]
    fn each_malformed_field_is_named_in_the_refusal() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), ""),
            (json!("text"), ""),
            (json!({"name": "a b", "entrypoint_arguments": []}), "name"),
            (json!({"name": 5, "entrypoint_arguments": []}), "name"),
            (
                json!({"algorithm": 2, "entrypoint_arguments": []}),
                "algorithm",
            ),
            (
                json!({"algorithm": "1", "entrypoint_arguments": []}),
                "algorithm",
            ),
            (
                json!({"algorithm": 1.5, "entrypoint_arguments": []}),
                "algorithm",
            ),
            (json!({}), "entrypoint_arguments"),
            (json!({"entrypoint_arguments": {}}), "entrypoint_arguments"),
            (json!({"entrypoint_arguments": []}), "entrypoint_arguments"),
            (
                json!({"entrypoint_arguments": [5]}),
                "entrypoint_arguments[0]",
            ),
            (
                json!({"entrypoint_arguments": [{"value": "x"}]}),
                "entrypoint_arguments[0].name",
            ),
            (
                json!({"entrypoint_arguments": [{"name": "app-name", "value": null}]}),
                "entrypoint_arguments[0].value",
            ),
            (
                json!({"entrypoint_arguments": [{"name": "app-name", "value": [1]}]}),
                "entrypoint_arguments[0].value",
            ),
            (
                json!({"entrypoint_arguments": [{"name": "app-name"}]}),
                "entrypoint_arguments[0].value",
            ),
            (
                json!({"entrypoint_arguments": [{"name": "--conf", "value": "x"}]}),
                "entrypoint_arguments[0].name",
            ),
            (
                json!({"entrypoint_arguments": [{"name": "a b", "value": "x"}]}),
                "entrypoint_arguments[0].name",
            ),
            (
                json!({"entrypoint_arguments": [
                    {"name": "app-name", "value": "x"}, {"name": "app-name", "value": "y"}]}),
                "entrypoint_arguments[1].name",
            ),
            (
                json!({"entrypoint_arguments": [{"name": "app-name", "value": "a\nb"}]}),
                "entrypoint_arguments[0].value",
            ),
            (
                json!({"entrypoint_arguments": [{"name": "app-name", "value": "../../etc"}]}),
                "entrypoint_arguments[app-name].value",
            ),
            (
                json!({"entrypoint_arguments": [{"name": "app-name", "value": "/abs"}]}),
                "entrypoint_arguments[app-name].value",
            ),
        ];
        for (body, field) in cases {
            let err = refused(body.clone());
            assert_eq!(err.field, field, "{body} → {err:?}");
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn values_longer_than_emr_allows_are_refused() {
        let mut body = multiomix_body();
        body["entrypoint_arguments"][1]["value"] = json!("x".repeat(MAX_VALUE_CHARS + 1));
        assert_eq!(refused(body.clone()).field, "entrypoint_arguments[1].value");
        body["entrypoint_arguments"][1]["value"] = json!("x".repeat(MAX_VALUE_CHARS));
        assert!(validate_request(&body).is_ok());
    }

    /// Multiomix's request with values added until names and values add up to `total`
    /// bytes, each value within [`MAX_VALUE_CHARS`].
    fn request_of(total: usize) -> Value {
        let mut body = multiomix_body();
        let items = body["entrypoint_arguments"].as_array_mut().unwrap();
        let mut left = total
            - validate_request(&json!({ "entrypoint_arguments": items }))
                .map(|spec| arguments_bytes(&spec))
                .unwrap();
        let mut i = 0;
        while left > 0 {
            let name = format!("extra{i}");
            let len = (left - name.len()).min(MAX_VALUE_CHARS);
            left -= name.len() + len;
            items.push(json!({"name": name, "value": "v".repeat(len)}));
            i += 1;
        }
        body
    }

    fn arguments_bytes(spec: &JobSpec) -> usize {
        spec.arguments.iter().map(|(n, v)| n.len() + v.len()).sum()
    }

    #[test]
    fn arguments_adding_up_to_more_than_a_body_holds_are_refused_naming_the_field() {
        let spec = validate_request(&request_of(MAX_ARGUMENTS_BYTES)).expect("at the limit");
        assert_eq!(arguments_bytes(&spec), MAX_ARGUMENTS_BYTES);
        let err = refused(request_of(MAX_ARGUMENTS_BYTES + 1));
        assert_eq!(err.field, "entrypoint_arguments");
        assert!(
            err.message.contains(&MAX_ARGUMENTS_BYTES.to_string()),
            "{}",
            err.message
        );
        // What the per-argument limits alone would let through: a megabyte of values.
        let mut args = vec![json!({"name": "app-name", "value": "a"})];
        args.extend(
            (1..MAX_ARGUMENTS)
                .map(|i| json!({"name": format!("a{i}"), "value": "x".repeat(MAX_VALUE_CHARS)})),
        );
        let err = refused(json!({ "entrypoint_arguments": args }));
        assert_eq!(err.field, "entrypoint_arguments");
        // Characters count by their UTF-8 bytes, as the body carries them.
        let mut body = multiomix_body();
        body["entrypoint_arguments"][1]["value"] = json!("é".repeat(MAX_VALUE_CHARS));
        assert!(validate_request(&body).is_ok(), "20 KiB of values");
        let items = body["entrypoint_arguments"].as_array_mut().unwrap();
        for i in 0..3 {
            items.push(json!({"name": format!("more{i}"), "value": "é".repeat(MAX_VALUE_CHARS)}));
        }
        assert_eq!(
            refused(body).field,
            "entrypoint_arguments",
            "60 KiB of values"
        );
    }

    #[test]
    fn too_many_arguments_are_refused() {
        let mut args = vec![json!({"name": "app-name", "value": "a"})];
        args.extend((0..MAX_ARGUMENTS).map(|i| json!({"name": format!("a{i}"), "value": i})));
        let err = refused(json!({ "entrypoint_arguments": args }));
        assert_eq!(err.field, "entrypoint_arguments");
    }

    #[test]
    fn values_that_argparse_would_read_as_options_are_refused() {
        for value in [
            "--app-name",
            "--app-name=../../x",
            "--",
            "-x",
            "-inf",
            "-",
            "-.",
            "-1x",
        ] {
            let mut body = multiomix_body();
            body["entrypoint_arguments"][2]["value"] = json!(value);
            assert_eq!(
                refused(body).field,
                "entrypoint_arguments[2].value",
                "{value}"
            );
        }
    }

    #[test]
    fn blank_values_are_refused_and_values_with_spaces_kept() {
        for value in ["", " ", "   "] {
            let mut body = multiomix_body();
            body["entrypoint_arguments"][2]["value"] = json!(value);
            assert_eq!(
                refused(body).field,
                "entrypoint_arguments[2].value",
                "{value:?}"
            );
        }
        let mut body = multiomix_body();
        body["entrypoint_arguments"][2]["value"] = json!(" a b ");
        assert!(validate_request(&body).is_ok());
    }

    #[test]
    fn negative_numbers_stay_valid_values() {
        for value in [
            json!(-1),
            json!("-1"),
            json!("-0.5"),
            json!("-.5"),
            json!(-2.5e300),
            json!(i64::MIN),
        ] {
            let mut body = multiomix_body();
            body["entrypoint_arguments"][2]["value"] = value.clone();
            let spec = validate_request(&body).unwrap_or_else(|e| panic!("{value}: {e:?}"));
            assert!(spec.arguments[2].1.starts_with('-'), "{value}");
        }
    }

    #[test]
    fn unknown_top_level_fields_are_ignored() {
        let mut body = multiomix_body();
        body["extra"] = json!({"anything": 1});
        assert!(validate_request(&body).is_ok());
    }
}
