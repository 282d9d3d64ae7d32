//! Properties of the request validator and the spark-submit parameters built from what it
//! accepts: whatever gets through is a safe name and safe arguments, and the parameter
//! string holds exactly the options the contract lists, whatever the request said.

use multiomix_aws_emr::backend::emr::eks::spark_submit;
use multiomix_aws_emr::backend::spark::entry_point_arguments;
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::job::{
    validate_request, JobSpec, MAX_ARGUMENTS, MAX_ARGUMENT_NAME_CHARS, MAX_VALUE_CHARS,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// EMR's job-name alphabet, written out again here rather than taken from the code.
fn is_emr_name(name: &str) -> bool {
    (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/#".contains(c))
}

/// What an accepted request must look like: the invariants the rest of the service
/// relies on.
fn assert_safe(spec: &JobSpec) {
    assert!(is_emr_name(spec.name.as_str()), "{:?}", spec.name);
    assert!(!spec.arguments.is_empty() && spec.arguments.len() <= MAX_ARGUMENTS);
    for (name, value) in &spec.arguments {
        assert!(!name.is_empty() && name.chars().count() <= MAX_ARGUMENT_NAME_CHARS);
        assert!(!name.starts_with('-'), "{name:?}");
        assert!(!name.chars().any(char::is_whitespace), "{name:?}");
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert!(!value.chars().any(char::is_control), "{value:?}");
        assert!(value.chars().count() <= MAX_VALUE_CHARS);
        // A job script's argparse would read any other word starting with `-` as an option.
        assert!(
            !value.starts_with('-') || value.parse::<f64>().is_ok(),
            "{value:?}"
        );
    }
    let names: std::collections::HashSet<_> = spec.arguments.iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), spec.arguments.len(), "names are unique");
    let app = spec.app_name().expect("app-name is present");
    assert!(multiomix_aws_emr::job::is_valid_app_name(app), "{app:?}");
    assert!(
        app.len() <= 128 && !app.starts_with(['.', '_', '-']),
        "{app:?}"
    );
    assert!(!app.contains(['/', '\\']), "{app:?}");
}

/// The EMR settings a test runs with, some optional ones set and some not.
fn config(image: bool, templates: bool) -> Config {
    let mut vars = vec![
        ("EMR_VIRTUAL_CLUSTER_ID", "vc"),
        ("EMR_EXECUTION_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ("EMR_S3_BUCKET", "bucket"),
    ];
    if image {
        vars.push(("EMR_IMAGE", "123.dkr.ecr.us-east-1.amazonaws.com/spark:1"));
    }
    if templates {
        vars.push(("EMR_DRIVER_TEMPLATE", "driver.yaml"));
        vars.push(("EMR_EXECUTOR_TEMPLATE", "executor.yaml"));
    }
    Config::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap()
}

/// The parameter string splits on spaces into exactly the expected option/value pairs.
fn assert_parameters(spec: &JobSpec, image: bool, templates: bool) {
    let c = config(image, templates);
    let parameters =
        spark_submit(c.backend.emr_eks().unwrap(), &c.spark, &c.job, spec).to_parameter_string();
    let words: Vec<&str> = parameters.split(' ').collect();
    assert_eq!(words.len() % 2, 0, "{parameters}");
    let pairs: Vec<(&str, &str)> = words.chunks(2).map(|p| (p[0], p[1])).collect();
    let expected_confs = 11 + usize::from(image) + 2 * usize::from(templates);
    assert_eq!(pairs.len(), 1 + expected_confs, "{parameters}");
    assert_eq!(pairs[0].0, "--py-files");
    assert_eq!(
        pairs.iter().filter(|(o, _)| *o == "--py-files").count(),
        1,
        "{parameters}"
    );
    assert!(
        pairs[1..].iter().all(|(o, _)| *o == "--conf"),
        "{parameters}"
    );
    for (_, value) in &pairs {
        assert!(!value.is_empty() && !value.starts_with('-'), "{parameters}");
    }
    for (_, conf) in &pairs[1..] {
        let (key, _) = conf.split_once('=').expect("a conf is key=value");
        assert!(key.starts_with("spark."), "{conf}");
    }
    let job_names: Vec<&str> = pairs
        .iter()
        .filter_map(|(_, v)| v.strip_prefix("spark.kubernetes.driverEnv.JOB_NAME="))
        .collect();
    assert_eq!(job_names, [spec.name.as_str()]);
    // The arguments play no part in it: the same job without them gives the same string.
    let bare = JobSpec {
        arguments: Vec::new(),
        ..spec.clone()
    };
    let without =
        spark_submit(c.backend.emr_eks().unwrap(), &c.spark, &c.job, &bare).to_parameter_string();
    assert_eq!(parameters, without);
    let args = entry_point_arguments(spec, "--");
    assert_eq!(args.len(), 2 * spec.arguments.len());
}

// ---- Generators ----

/// Any JSON value, nesting included.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        hostile_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(hostile_text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text mixing what is allowed with what is not: spaces, options, control characters,
/// non-ASCII letters, path parts.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[.\\-_/#A-Za-z0-9]{0,70}",
        "[.\\-_/#A-Za-z0-9 \t\n\r=;'\"$\\\\]{0,70}",
        "\\PC{0,30}",
        ".{0,30}",
        Just("x --conf spark.driver.extraJavaOptions=-Dx".to_owned()),
        Just("--conf".to_owned()),
        Just("../..".to_owned()),
        Just(String::new()),
        "[a-z]{60,70}",
    ]
}

/// An argument name near the edge of what is accepted.
fn argument_name() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[A-Za-z0-9_.][-A-Za-z0-9_.]{0,12}".prop_map(Value::from),
        2 => "[-A-Za-z0-9_. =\n\t]{0,12}".prop_map(Value::from),
        1 => Just(Value::from("app-name")),
        1 => "-{1,2}[a-z]{1,8}".prop_map(Value::from),
        1 => any_json(),
    ]
}

fn argument_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => hostile_text().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        1 => any_json(),
    ]
}

/// An object with Multiomix's three fields, each present or not, and each either
/// plausible or any JSON at all.
fn request_shaped() -> impl Strategy<Value = Value> {
    let app = prop_oneof![
        6 => "[A-Za-z0-9][A-Za-z0-9_.-]{0,20}".prop_map(Value::from),
        1 => argument_value(),
    ];
    let others = prop::collection::vec((argument_name(), argument_value()), 0..3);
    let plausible_arguments = (app, others).prop_map(|(app, others)| {
        let mut args = vec![json!({"name": "app-name", "value": app})];
        args.extend(
            others
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value})),
        );
        Value::Array(args)
    });
    let name = prop_oneof![
        3 => "[.\\-_/#A-Za-z0-9]{1,64}".prop_map(Value::from),
        1 => any_json(),
    ];
    let algorithm = prop_oneof![3 => (0i64..=1).prop_map(Value::from), 1 => any_json()];
    let args = prop_oneof![3 => plausible_arguments, 1 => any_json()];
    (
        proptest::option::of(name),
        proptest::option::of(algorithm),
        proptest::option::weighted(0.9, args),
    )
        .prop_map(|(name, algorithm, args)| {
            let mut body = Map::new();
            for (key, value) in [
                ("name", name),
                ("algorithm", algorithm),
                ("entrypoint_arguments", args),
            ] {
                if let Some(value) = value {
                    body.insert(key.into(), value);
                }
            }
            Value::Object(body)
        })
}

/// Any JSON document: any value at all, or an object shaped like a request.
fn arbitrary_body() -> impl Strategy<Value = Value> {
    prop_oneof![any_json(), request_shaped()]
}

/// Requests shaped like Multiomix's, with every field drawn near the edge.
fn near_valid_request() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        4 => "[.\\-_/#A-Za-z0-9]{1,64}".prop_map(Value::from),
        3 => hostile_text().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any_json(),
    ];
    let algorithm = prop_oneof![
        4 => (0i64..=1).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any_json(),
    ];
    let app = prop_oneof![
        4 => "[A-Za-z0-9][A-Za-z0-9_.-]{0,20}".prop_map(Value::from),
        2 => argument_value(),
    ];
    let others = prop::collection::vec((argument_name(), argument_value()), 0..6);
    (
        proptest::option::of(name),
        proptest::option::of(algorithm),
        app,
        others,
        0usize..6,
    )
        .prop_map(|(name, algorithm, app, others, app_at)| {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), name);
            }
            if let Some(algorithm) = algorithm {
                body.insert("algorithm".into(), algorithm);
            }
            let mut args: Vec<Value> = others
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            let at = app_at.min(args.len());
            args.insert(at, json!({"name": "app-name", "value": app}));
            body.insert("entrypoint_arguments".into(), Value::Array(args));
            Value::Object(body)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_json_is_refused_or_safe(body in arbitrary_body()) {
        if let Ok(spec) = validate_request(&body) {
            assert_safe(&spec);
            assert_parameters(&spec, false, false);
        }
    }

    #[test]
    fn arbitrary_request_shaped_objects_are_refused_or_safe(body in request_shaped()) {
        if let Ok(spec) = validate_request(&body) {
            assert_safe(&spec);
        }
    }

    #[test]
    fn near_valid_requests_are_refused_or_safe_with_exactly_the_contract_options(
        body in near_valid_request(),
        image in any::<bool>(),
        templates in any::<bool>(),
    ) {
        if let Ok(spec) = validate_request(&body) {
            assert_safe(&spec);
            assert_parameters(&spec, image, templates);
        }
    }

    #[test]
    fn a_name_is_accepted_exactly_when_it_is_in_emrs_alphabet(name in hostile_text()) {
        let body = json!({"name": name, "entrypoint_arguments": [{"name": "app-name", "value": "a"}]});
        match validate_request(&body) {
            Ok(spec) => {
                prop_assert!(is_emr_name(&name), "{:?} was accepted", name);
                prop_assert_eq!(spec.name.as_str(), name.as_str());
            }
            Err(e) => {
                prop_assert!(!is_emr_name(&name), "{:?} was refused: {:?}", name, e);
                prop_assert_eq!(e.field, "name");
            }
        }
    }

    #[test]
    fn values_keep_their_text_and_reach_only_the_entry_point_arguments(
        // Not blank (EMR refuses those), no control characters, no leading `-`.
        value in " {0,3}[^-\\p{Cc} ][^\\p{Cc}]{0,36}",
        number in any::<i64>(),
        flag in any::<bool>(),
    ) {
        let body = json!({"name": "job", "entrypoint_arguments": [
            {"name": "app-name", "value": "app"},
            {"name": "text", "value": value},
            {"name": "number", "value": number},
            {"name": "flag", "value": flag},
        ]});
        let spec = validate_request(&body).expect("non-blank values without control characters are accepted");
        let args = entry_point_arguments(&spec, "--");
        prop_assert_eq!(
            args,
            vec![
                "--app-name".to_owned(), "app".to_owned(),
                "--text".to_owned(), value.clone(),
                "--number".to_owned(), number.to_string(),
                "--flag".to_owned(), flag.to_string(),
            ]
        );
        assert_parameters(&spec, true, true);
    }
}

/// A case the generators reach only by luck, pinned down.
#[test]
fn a_value_that_spells_out_spark_options_is_only_an_argument() {
    let body = json!({"name": "job", "entrypoint_arguments": [
        {"name": "app-name", "value": "app"},
        {"name": "extra", "value": "x --conf spark.driver.extraJavaOptions=-Dx --py-files s3://evil/x.zip"},
    ]});
    let spec = validate_request(&body).unwrap();
    assert_safe(&spec);
    assert_parameters(&spec, true, true);
}

/// How many of 500 values drawn from `strategy` the validator accepts and refuses.
fn outcomes(strategy: impl Strategy<Value = Value>) -> (usize, usize) {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..500 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        match validate_request(&body) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    (accepted, refused)
}

/// Each generator of the properties above must land on both sides of the validator, or
/// its property ("refused or safe") would hold without testing anything.
#[test]
fn every_request_generator_reaches_both_acceptance_and_refusal() {
    for (what, (accepted, refused)) in [
        ("arbitrary_body", outcomes(arbitrary_body())),
        ("request_shaped", outcomes(request_shaped())),
        ("near_valid_request", outcomes(near_valid_request())),
    ] {
        assert!(accepted >= 50, "{what}: only {accepted} of 500 accepted");
        assert!(refused >= 50, "{what}: only {refused} of 500 refused");
    }
}
