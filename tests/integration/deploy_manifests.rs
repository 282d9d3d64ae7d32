//! The deployment files (Dockerfile, compose file, Kubernetes manifests, EMR pod
//! templates, the documentation) checked against each other and against the service's own
//! list of variables, so that they cannot drift apart unnoticed; and the documentation's
//! relative links, so that none leads nowhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use multiomix_aws_emr::config::{
    configuration_table, variable, Config, Table, WhenUnset, VARIABLES,
};
use serde::Deserialize;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every document of a YAML file (a file may hold several, separated by `---`).
fn documents(text: &str, name: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn yaml_documents(relative: &str) -> Vec<Value> {
    documents(&read(relative), relative)
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                yaml_files(&path, found);
            }
        } else if name.ends_with(".yml") || name.ends_with(".yaml") {
            found.push(path);
        }
    }
}

fn get<'a>(value: &'a Value, path: &str) -> &'a Value {
    let mut current = value;
    for key in path.split('.') {
        current = match current.get(key) {
            Some(v) => v,
            None => panic!("missing `{key}` of `{path}` in {value:?}"),
        };
    }
    current
}

fn str_at<'a>(value: &'a Value, path: &str) -> &'a str {
    get(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string"))
}

fn seq_at<'a>(value: &'a Value, path: &str) -> &'a Vec<Value> {
    get(value, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("`{path}` is not a list"))
}

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let matching: Vec<_> = docs
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .collect();
    assert_eq!(matching.len(), 1, "expected exactly one {kind}");
    matching[0]
}

fn named<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter()
        .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Sources of environment variables

/// `ENV` settings of the last stage of the Dockerfile (the image that runs).
fn dockerfile_runtime_env() -> BTreeMap<String, String> {
    let text = read("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            instructions.push(std::mem::take(&mut current));
        }
    }
    let last_from = instructions
        .iter()
        .rposition(|i| i.to_ascii_uppercase().starts_with("FROM "))
        .expect("the Dockerfile has a FROM");
    let mut env = BTreeMap::new();
    for instruction in &instructions[last_from..] {
        let Some(rest) = instruction.strip_prefix("ENV ") else {
            continue;
        };
        for pair in rest.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("write ENV as KEY=value, not `{pair}`"));
            env.insert(key.to_string(), value.trim_matches('"').to_string());
        }
    }
    env
}

fn dockerfile_instructions(keyword: &str) -> Vec<String> {
    read("Dockerfile")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&format!("{keyword} ")))
        .map(str::to_string)
        .collect()
}

fn compose() -> Value {
    let mut docs = yaml_documents("docker-compose_dist.yml");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn compose_service_env(compose: &Value) -> BTreeMap<String, String> {
    get(compose, "services.multiomix-aws-emr.environment")
        .as_mapping()
        .expect("the service's environment is a mapping")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), scalar(v)))
        .collect()
}

/// Compose interpolation of `${NAME:-default}`, `${NAME}` and `$$`, from `vars`.
fn interpolate(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').expect("unclosed ${");
            let expr = &inner[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, d),
                None => (expr, ""),
            };
            match vars.get(name).filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(v),
                None => out.push_str(default),
            }
            rest = &inner[end + 1..];
        } else {
            panic!("use ${{NAME}} in the compose file, not a bare $: {value}");
        }
    }
    out.push_str(rest);
    out
}

fn env_file(relative: &str) -> BTreeMap<String, String> {
    read(relative)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn kubernetes() -> Vec<Value> {
    yaml_documents("templates/kubernetes/deployment.yaml")
}

fn service_container(docs: &[Value]) -> &Value {
    let deployment = by_kind(docs, "Deployment");
    let containers = seq_at(deployment, "spec.template.spec.containers");
    named(containers, "multiomix-aws-emr").expect("a container named multiomix-aws-emr")
}

fn kubernetes_env_names(container: &Value) -> Vec<String> {
    seq_at(container, "env")
        .iter()
        .map(|e| str_at(e, "name").to_string())
        .collect()
}

/// The plain `value:` settings of the service container, placeholders filled in.
fn kubernetes_env_values(container: &Value) -> BTreeMap<String, String> {
    seq_at(container, "env")
        .iter()
        .filter_map(|e| {
            let value = e.get("value")?;
            let value = scalar(value)
                .replace("<virtual-cluster-id>", "abcdefghijklmnopqrstuvwxy")
                .replace("<account-id>", "123456789012")
                .replace("<emr-job-execution-role>", "emr-job")
                .replace("<bucket>", "bucket");
            Some((str_at(e, "name").to_string(), value))
        })
        .collect()
}

/// The page that documents every variable, in two tables.
const CONFIGURATION: &str = "docs/configuration.md";

/// First column of every table of the configuration page.
fn documented_variables() -> BTreeSet<String> {
    let page = read(CONFIGURATION);
    let mut names = BTreeSet::new();
    for line in page.lines().filter(|l| l.starts_with('|')) {
        let first = line.split('|').nth(1).unwrap_or_default().trim();
        for name in first.split(',') {
            let name = name.trim().trim_matches('`');
            let is_variable = name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !name.is_empty() && is_variable {
                names.insert(name.to_string());
            }
        }
    }
    names
}

fn assert_known(source: &str, names: impl IntoIterator<Item = String>) {
    let unknown: Vec<String> = names
        .into_iter()
        .filter(|name| variable(name).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "{source} sets variables the service does not read: {unknown:?}"
    );
}

const REQUIRED: &[(&str, &str)] = &[
    ("EMR_VIRTUAL_CLUSTER_ID", "abcdefghijklmnopqrstuvwxy"),
    (
        "EMR_EXECUTION_ROLE_ARN",
        "arn:aws:iam::123456789012:role/emr-job",
    ),
    ("EMR_S3_BUCKET", "bucket"),
];

/// `env` completed with the required variables it lacks.
fn with_required(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = REQUIRED
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars
}

// ---------------------------------------------------------------------------------------
// Every YAML file

#[test]
fn every_yaml_file_of_the_repository_parses() {
    let mut files = Vec::new();
    yaml_files(&root(), &mut files);
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    for expected in [
        "docker-compose_dist.yml",
        "templates/kubernetes/deployment.yaml",
        "templates/kubernetes/pod-template-driver.yaml",
        "templates/kubernetes/pod-template-executor.yaml",
    ] {
        assert!(
            names.contains(expected),
            "{expected} not found in {names:?}"
        );
    }
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let docs = documents(&text, &file.display().to_string());
        assert!(!docs.is_empty(), "{} holds no document", file.display());
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile

#[test]
fn dockerfile_runs_only_the_binary_as_a_numeric_non_root_user_on_port_8003() {
    let froms = dockerfile_instructions("FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(froms[0].contains(" AS build"), "{froms:?}");
    let runtime = froms.last().unwrap();
    assert!(
        runtime.contains("distroless") || runtime.contains("-slim"),
        "small runtime base: {runtime}"
    );

    let text = read("Dockerfile");
    let runtime_part = &text[text.rfind("\nFROM ").unwrap()..];
    let copies: Vec<&str> = runtime_part
        .lines()
        .filter(|l| l.starts_with("COPY"))
        .collect();
    assert!(
        copies.iter().all(|c| c.contains("--from=build")),
        "{copies:?}"
    );
    assert!(
        copies
            .iter()
            .any(|c| c.ends_with("/usr/local/bin/multiomix-aws-emr")),
        "{copies:?}"
    );
    assert!(
        copies.len() <= 2,
        "only the binary and its data folder: {copies:?}"
    );

    let users = dockerfile_instructions("USER");
    let user = users.last().expect("a USER instruction");
    let uid: u32 = user["USER ".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric user, so that runAsNonRoot can be checked");
    assert_ne!(uid, 0);

    assert_eq!(dockerfile_instructions("EXPOSE"), vec!["EXPOSE 8003"]);
    let volumes = dockerfile_instructions("VOLUME");
    assert_eq!(volumes, vec![r#"VOLUME ["/data"]"#]);
    let env = dockerfile_runtime_env();
    assert_eq!(env["PORT"], "8003");
    assert_eq!(env["JOB_BACKEND"], "emr");
    assert_eq!(env["DATABASE_URL"], "sqlite:/data/multiomix-aws-emr.db");
    let entrypoint = dockerfile_instructions("ENTRYPOINT");
    assert_eq!(
        entrypoint,
        vec![r#"ENTRYPOINT ["/usr/local/bin/multiomix-aws-emr"]"#]
    );
}

#[test]
fn dockerfile_builds_the_dependencies_in_a_layer_of_their_own() {
    let text = read("Dockerfile");
    let manifests = text
        .find("COPY Cargo.toml Cargo.lock")
        .expect("the manifests copied on their own");
    let stub_build = text[manifests..]
        .find("cargo build")
        .map(|i| i + manifests)
        .expect("a build of the dependencies");
    let sources = text.find("COPY . .").expect("the sources copied");
    assert!(manifests < stub_build && stub_build < sources);
}

#[test]
fn dockerfile_defaults_are_the_services_own_defaults() {
    // The image's ENV lines only spell out what the service would do anyway (apart from
    // the backend and the store's place, which differ on purpose): the same config.
    let env = dockerfile_runtime_env();
    let from_image = Config::from_vars(with_required(&env)).expect("the image's settings load");
    let mut bare = BTreeMap::new();
    bare.insert("JOB_BACKEND".to_string(), "emr".to_string());
    bare.insert("DATABASE_URL".to_string(), env["DATABASE_URL"].clone());
    let from_code = Config::from_vars(with_required(&bare)).unwrap();
    assert_eq!(format!("{from_image:?}"), format!("{from_code:?}"));
}

#[test]
fn dockerignore_keeps_local_state_and_secrets_out_of_the_build() {
    let ignore = read(".dockerignore");
    let lines: BTreeSet<&str> = ignore.lines().map(str::trim).collect();
    for entry in ["target/", ".git/", "data/", ".env"] {
        assert!(lines.contains(entry), ".dockerignore lacks {entry}");
    }
    for needed in ["src/", "Cargo.toml", "Cargo.lock", "migrations/"] {
        assert!(
            !lines.contains(needed),
            ".dockerignore must not drop {needed}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// docker-compose_dist.yml

#[test]
fn compose_service_keeps_its_store_on_a_named_volume_and_publishes_8003() {
    let compose = compose();
    let service = get(&compose, "services.multiomix-aws-emr");
    assert!(
        service.get("profiles").is_none(),
        "the service runs without a profile"
    );
    let ports: Vec<String> = seq_at(service, "ports").iter().map(scalar).collect();
    assert!(
        ports.iter().any(|p| p.ends_with(":8003")),
        "container port 8003 published: {ports:?}"
    );
    // Published on the loopback interface unless told otherwise, like every port of the
    // file: with the tokens unset, whoever reaches the port can start jobs.
    let none = BTreeMap::new();
    for (name, svc) in get(&compose, "services").as_mapping().unwrap() {
        let Some(ports) = svc.get("ports").and_then(Value::as_sequence) else {
            continue;
        };
        for port in ports.iter().map(scalar) {
            let published = interpolate(&port, &none);
            assert!(
                published.starts_with("127.0.0.1:"),
                "{name:?} publishes {port} on every interface by default"
            );
        }
    }
    let told: BTreeMap<String, String> = [("HOST_BIND".to_string(), "0.0.0.0".to_string())].into();
    assert!(
        ports
            .iter()
            .any(|p| interpolate(p, &told) == "0.0.0.0:8003:8003"),
        "HOST_BIND publishes it elsewhere: {ports:?}"
    );
    let volumes: Vec<String> = seq_at(service, "volumes").iter().map(scalar).collect();
    let store = volumes
        .iter()
        .find(|v| v.ends_with(":/data"))
        .expect("a volume at /data");
    let volume_name = store.split(':').next().unwrap();
    assert!(
        get(&compose, "volumes").get(volume_name).is_some(),
        "{volume_name} is a named volume"
    );
    let env = compose_service_env(&compose);
    assert!(env["DATABASE_URL"].starts_with("sqlite:/data/"));
}

/// Settings of the compose file that differ from the service's defaults on purpose.
const COMPOSE_OWN_VALUES: &[(&str, &str, &str)] = &[
    (
        "JOB_BACKEND",
        "emr",
        "the image is built for the EMR backends",
    ),
    (
        "DATABASE_URL",
        "sqlite:/data/multiomix-aws-emr.db",
        "the store is on the named volume",
    ),
    (
        "LOCAL_LOG_DIR",
        "/data/logs",
        "the root file system is read-only",
    ),
];

/// Every variable of the service is in the compose file, as `${NAME:-default}` (or a
/// fixed value) where the default is the documented one or empty (the service's own), so
/// that the file cannot promise another default than the service applies.
#[test]
fn compose_lists_every_variable_with_the_service_s_own_default() {
    let env = compose_service_env(&compose());
    let missing: Vec<&str> = VARIABLES
        .iter()
        .map(|v| v.name)
        .filter(|name| !env.contains_key(*name))
        .collect();
    assert!(missing.is_empty(), "compose leaves out {missing:?}");
    for (name, value, why) in COMPOSE_OWN_VALUES {
        assert!(!why.is_empty());
        assert_eq!(
            interpolate(&env[*name], &BTreeMap::new()),
            *value,
            "{name} is listed as its own value"
        );
    }
    for v in VARIABLES {
        if COMPOSE_OWN_VALUES
            .iter()
            .any(|(name, _, _)| *name == v.name)
        {
            continue;
        }
        let given = &env[v.name];
        let default = match given.strip_prefix(&format!("${{{}:-", v.name)) {
            Some(rest) => rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("{}: {given}", v.name)),
            None if given.contains('$') => panic!("{} takes another variable: {given}", v.name),
            None => given.as_str(),
        };
        let documented = match v.when_unset {
            WhenUnset::Value(value) => value,
            _ => "",
        };
        // Empty counts as unset, so it leaves the service's own default in force.
        if !default.is_empty() {
            assert_eq!(default, documented, "{}: compose / {CONFIGURATION}", v.name);
        }
    }
}

#[test]
fn compose_comments_every_variable() {
    let text = read("docker-compose_dist.yml");
    let lines: Vec<&str> = text.lines().collect();
    let env = compose_service_env(&compose());
    for name in env.keys() {
        let at = lines
            .iter()
            .position(|l| l.trim_start().starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} not found as a line"));
        // The comment is on a line above, possibly shared with the next variables
        // (credentials in a pair).
        let commented = lines[..at]
            .iter()
            .rev()
            .take_while(|l| !l.trim().is_empty() && !l.trim_start().starts_with("---"))
            .take(3)
            .any(|l| l.trim_start().starts_with('#'));
        assert!(commented, "{name} has no comment above it");
    }
}

#[test]
fn compose_defaults_give_a_valid_configuration() {
    let env = compose_service_env(&compose());
    let required: BTreeMap<String, String> = REQUIRED
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let resolved: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.clone(), interpolate(v, &required)))
        .collect();
    Config::from_vars(resolved).expect("the compose settings load");
}

#[test]
fn compose_emulator_profile_runs_moto_and_creates_the_virtual_cluster() {
    let compose = compose();
    let moto = get(&compose, "services.moto");
    assert!(str_at(moto, "image").starts_with("motoserver/moto:"));
    let setup = get(&compose, "services.emr-emulator-setup");
    for service in [moto, setup] {
        let profiles: Vec<String> = seq_at(service, "profiles").iter().map(scalar).collect();
        assert_eq!(profiles, vec!["emulator"]);
    }
    let moto_port = seq_at(moto, "ports")
        .iter()
        .map(scalar)
        .map(|p| p.rsplit(':').next().unwrap().to_string())
        .next()
        .expect("moto's port");

    // The setup script the one-shot service runs is in the mounted folder.
    let mount = scalar(&seq_at(setup, "volumes")[0]);
    let (host_dir, container_dir) = mount.split_once(':').unwrap();
    let container_dir = container_dir.trim_end_matches(":ro");
    let command: Vec<String> = seq_at(setup, "command").iter().map(scalar).collect();
    let script = command
        .iter()
        .flat_map(|c| c.split_whitespace())
        .find(|w| w.starts_with(container_dir) && w.ends_with(".py"))
        .expect("the setup runs a script from the mounted folder");
    let script_on_host = script.replacen(container_dir, host_dir, 1);
    assert!(root().join(&script_on_host).is_file(), "{script_on_host}");

    // The service waits for the setup, but only when the profile is on.
    let dependency = get(
        get(&compose, "services.multiomix-aws-emr"),
        "depends_on.emr-emulator-setup",
    );
    assert_eq!(
        str_at(dependency, "condition"),
        "service_completed_successfully"
    );
    assert_eq!(get(dependency, "required"), &Value::Bool(false));

    // With the emulator env file: the profile is on, the service talks to moto, and the
    // setup is told which cluster id the service expects.
    let emulator = env_file("dev/emulator/emulator.env");
    assert_eq!(emulator["COMPOSE_PROFILES"], "emulator");
    let env = compose_service_env(&compose);
    let endpoint = interpolate(&env["AWS_ENDPOINT_URL"], &emulator);
    assert_eq!(endpoint, format!("http://moto:{moto_port}"));
    let setup_env: BTreeMap<String, String> = get(setup, "environment")
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), scalar(v)))
        .collect();
    assert_eq!(
        interpolate(&setup_env["EXPECTED_VIRTUAL_CLUSTER_ID"], &emulator),
        interpolate(&env["EMR_VIRTUAL_CLUSTER_ID"], &emulator)
    );
    assert_eq!(
        interpolate(&setup_env["MOTO_URL"], &emulator),
        format!("http://moto:{moto_port}")
    );
    let resolved: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.clone(), interpolate(v, &emulator)))
        .collect();
    let config = Config::from_vars(resolved).expect("the emulator settings load");
    assert!(
        config.backend.emr_eks().is_some(),
        "the emulator runs the EMR backend"
    );
}

// ---------------------------------------------------------------------------------------
// Kubernetes

#[test]
fn deployment_runs_one_non_root_pod_with_a_read_only_root_file_system() {
    let docs = kubernetes();
    let deployment = by_kind(&docs, "Deployment");
    assert_eq!(get(deployment, "spec.replicas").as_u64(), Some(1));
    assert_eq!(str_at(deployment, "spec.strategy.type"), "Recreate");
    let pod = get(deployment, "spec.template.spec");
    assert_eq!(get(pod, "securityContext.runAsNonRoot"), &Value::Bool(true));
    assert_ne!(get(pod, "securityContext.runAsUser").as_u64(), Some(0));
    assert!(get(pod, "terminationGracePeriodSeconds").as_u64().unwrap() > 0);
    let container = service_container(&docs);
    assert_eq!(
        get(container, "securityContext.readOnlyRootFilesystem"),
        &Value::Bool(true)
    );
    assert_eq!(
        get(container, "securityContext.allowPrivilegeEscalation"),
        &Value::Bool(false)
    );
    for key in [
        "resources.requests.memory",
        "resources.limits.memory",
        "resources.requests.cpu",
    ] {
        assert!(get(container, key).as_str().is_some(), "{key} set");
    }
}

#[test]
fn deployment_probes_health_and_readiness_on_the_service_port() {
    let docs = kubernetes();
    let container = service_container(&docs);
    let ports = seq_at(container, "ports");
    let port_of = |reference: &Value| -> u64 {
        match reference {
            Value::Number(n) => n.as_u64().unwrap(),
            Value::String(name) => named(ports, name)
                .and_then(|p| p.get("containerPort"))
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("no port named {name}")),
            other => panic!("bad port {other:?}"),
        }
    };
    assert_eq!(str_at(container, "livenessProbe.httpGet.path"), "/health");
    assert_eq!(str_at(container, "readinessProbe.httpGet.path"), "/ready");
    for probe in ["livenessProbe", "readinessProbe"] {
        let port = get(container, &format!("{probe}.httpGet.port"));
        assert_eq!(port_of(port), 8003, "{probe} port");
    }
    let env = kubernetes_env_values(container);
    assert_eq!(env["PORT"], "8003");
}

#[test]
fn deployment_mounts_the_claimed_volume_where_the_store_is() {
    let docs = kubernetes();
    let claim = by_kind(&docs, "PersistentVolumeClaim");
    let claim_name = str_at(claim, "metadata.name");
    let modes: Vec<String> = seq_at(claim, "spec.accessModes")
        .iter()
        .map(scalar)
        .collect();
    assert_eq!(modes, vec!["ReadWriteOnce"]);

    let deployment = by_kind(&docs, "Deployment");
    let volumes = seq_at(deployment, "spec.template.spec.volumes");
    let volume = volumes
        .iter()
        .find(|v| {
            v.get("persistentVolumeClaim")
                .and_then(|c| c.get("claimName"))
                .and_then(Value::as_str)
                == Some(claim_name)
        })
        .expect("a volume from the claim");
    let volume_name = str_at(volume, "name");
    let container = service_container(&docs);
    let mount = named(seq_at(container, "volumeMounts"), volume_name).expect("the claim mounted");
    let mount_path = str_at(mount, "mountPath");
    let env = kubernetes_env_values(container);
    let database = env["DATABASE_URL"].trim_start_matches("sqlite:");
    assert!(
        Path::new(database).starts_with(mount_path),
        "the store {database} is on the volume at {mount_path}"
    );
    // Every mount has a volume.
    for mount in seq_at(container, "volumeMounts") {
        let name = str_at(mount, "name");
        assert!(named(volumes, name).is_some(), "volume {name} declared");
    }
}

#[test]
fn deployment_takes_credentials_and_tokens_from_an_optional_secret() {
    let docs = kubernetes();
    let container = service_container(&docs);
    let env = seq_at(container, "env");
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "API_TOKEN",
        "CALLBACK_TOKEN",
        "NOTIFY_SECRET",
    ] {
        let entry = named(env, name).unwrap_or_else(|| panic!("{name} in env"));
        assert!(
            entry.get("value").is_none(),
            "{name} never written in the manifest"
        );
        let reference = get(entry, "valueFrom.secretKeyRef");
        assert_eq!(get(reference, "optional"), &Value::Bool(true), "{name}");
        assert!(!str_at(reference, "name").is_empty());
    }
    // Whatever variable marked secret the manifest sets, it never writes its value.
    for entry in env {
        let name = str_at(entry, "name");
        if variable(name).is_some_and(|v| v.secret) {
            assert!(
                entry.get("value").is_none(),
                "{name} written in the manifest"
            );
        }
    }
}

#[test]
fn deployment_uses_a_service_account_with_an_irsa_role() {
    let docs = kubernetes();
    let account = by_kind(&docs, "ServiceAccount");
    let role = get(account, "metadata.annotations")
        .get("eks.amazonaws.com/role-arn")
        .and_then(Value::as_str)
        .expect("the IRSA annotation");
    assert!(role.starts_with("arn:aws:iam::"), "{role}");
    let deployment = by_kind(&docs, "Deployment");
    assert_eq!(
        str_at(deployment, "spec.template.spec.serviceAccountName"),
        str_at(account, "metadata.name")
    );
}

#[test]
fn the_service_pod_mounts_no_kubernetes_api_token() {
    let docs = kubernetes();
    let deployment = by_kind(&docs, "Deployment");
    assert_eq!(
        get(
            deployment,
            "spec.template.spec.automountServiceAccountToken"
        )
        .as_bool(),
        Some(false),
        "the service never calls the Kubernetes API"
    );
}

#[test]
fn a_network_policy_admits_only_multiomix_and_the_job_pods_namespace_on_8003() {
    let docs = kubernetes();
    let policy = by_kind(&docs, "NetworkPolicy");
    let deployment = by_kind(&docs, "Deployment");
    // It selects the service's pods.
    let labels = get(deployment, "spec.template.metadata.labels");
    let selector = get(policy, "spec.podSelector.matchLabels")
        .as_mapping()
        .unwrap();
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(labels.get(key.as_str().unwrap()), Some(value), "{key:?}");
    }
    let types: Vec<String> = seq_at(policy, "spec.policyTypes")
        .iter()
        .map(scalar)
        .collect();
    assert!(types.contains(&"Ingress".to_string()), "{types:?}");
    // One rule: from Multiomix's pods or the job pods' namespace, to 8003 only.
    let rules = seq_at(policy, "spec.ingress");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let ports = seq_at(&rules[0], "ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(get(&ports[0], "port").as_u64(), Some(8003));
    let from = seq_at(&rules[0], "from");
    assert_eq!(from.len(), 2, "{from:?}");
    let pods = from
        .iter()
        .find(|peer| peer.get("podSelector").is_some())
        .expect("a rule for Multiomix's pods");
    assert!(
        pods.get("namespaceSelector").is_none(),
        "Multiomix's pods, in this namespace"
    );
    let multiomix = get(pods, "podSelector.matchLabels").as_mapping().unwrap();
    assert!(
        multiomix.values().any(|v| v.as_str() == Some("multiomix")),
        "{multiomix:?}"
    );
    let jobs = from
        .iter()
        .find(|peer| peer.get("namespaceSelector").is_some())
        .expect("a rule for the job pods' namespace");
    assert!(jobs.get("podSelector").is_none());
    assert!(get(jobs, "namespaceSelector.matchLabels")
        .get("kubernetes.io/metadata.name")
        .is_some());
}

#[test]
fn service_is_reachable_under_the_default_callback_host_on_8003() {
    let docs = kubernetes();
    let service = by_kind(&docs, "Service");
    // The sidecar calls http://{EKS_EMR_SERVICE_URL}:8003; the default host is this name.
    let default_host = dockerfile_runtime_env()["EKS_EMR_SERVICE_URL"].clone();
    assert_eq!(str_at(service, "metadata.name"), default_host);
    let ports = seq_at(service, "spec.ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(get(&ports[0], "port").as_u64(), Some(8003));
    let target = scalar(get(&ports[0], "targetPort"));
    let container = service_container(&docs);
    let container_ports = seq_at(container, "ports");
    assert!(
        named(container_ports, &target).is_some() || target == "8003",
        "targetPort {target} is the container's port"
    );
    let deployment = by_kind(&docs, "Deployment");
    let labels = get(deployment, "spec.template.metadata.labels");
    for (key, value) in get(service, "spec.selector").as_mapping().unwrap() {
        assert_eq!(
            labels.get(key.as_str().unwrap()),
            Some(value),
            "selector {key:?}"
        );
    }
}

#[test]
fn deployment_settings_load_as_a_configuration() {
    let docs = kubernetes();
    let container = service_container(&docs);
    let env = kubernetes_env_values(container);
    let config = Config::from_vars(with_required(&env)).expect("the manifest's settings load");
    assert!(config.backend.emr_eks().is_some());
}

// ---------------------------------------------------------------------------------------
// EMR on EKS pod templates

const EMR_PREDEFINED_VOLUMES: &[&str] = &["emr-container-communicate"];

/// The driver pod's annotation that carries the job's app name: the EMR on EKS backend
/// sets it with `spark.kubernetes.driver.annotation.<key>` when it stages data in S3.
const APP_NAME_ANNOTATION: &str = "multiomix-aws-emr/app-name";

/// The value of `name` in a container's `env` (a literal `value`).
fn env_value<'a>(container: &'a Value, name: &str) -> &'a str {
    let env = seq_at(container, "env");
    let entry = named(env, name).unwrap_or_else(|| panic!("{name} is set"));
    str_at(entry, "value")
}

/// Asserts that the container reads APP_NAME from exactly the annotation the backend
/// sets, through the downward API (nothing else reaches an init container or a sidecar:
/// Spark's driverEnv is for the main container only).
fn assert_app_name_from_the_annotation(container: &Value) {
    let env = seq_at(container, "env");
    let app_name = named(env, "APP_NAME").expect("APP_NAME is set");
    assert!(app_name.get("value").is_none(), "APP_NAME is not a literal");
    assert_eq!(
        str_at(app_name, "valueFrom.fieldRef.fieldPath"),
        format!("metadata.annotations['{APP_NAME_ANNOTATION}']")
    );
}

/// Every variable a pod template gives a container of ours is one its script documents
/// in its head (`#   NAME  ...`).
fn assert_env_documented_in(container: &Value, script: &str) {
    let text = read(script);
    for entry in seq_at(container, "env") {
        let name = str_at(entry, "name");
        assert!(
            text.lines()
                .take_while(|l| l.starts_with('#') || l.is_empty())
                .any(|l| l.starts_with(&format!("#   {name} "))),
            "{script} does not document {name}, which the pod template sets"
        );
    }
}

fn pod_template(relative: &str) -> Value {
    let mut docs = yaml_documents(relative);
    assert_eq!(docs.len(), 1, "{relative} holds one Pod");
    let pod = docs.remove(0);
    assert_eq!(str_at(&pod, "kind"), "Pod");
    pod
}

fn mounts(container: &Value) -> Vec<(String, String)> {
    seq_at(container, "volumeMounts")
        .iter()
        .map(|m| {
            (
                str_at(m, "name").to_string(),
                str_at(m, "mountPath").to_string(),
            )
        })
        .collect()
}

fn check_init_container_feeds_the_main_container(pod: &Value, main: &str) {
    let volumes = seq_at(pod, "spec.volumes");
    let containers = seq_at(pod, "spec.containers");
    let main = named(containers, main).expect("the Spark main container");
    let inits = seq_at(pod, "spec.initContainers");
    assert!(!inits.is_empty(), "an init container");
    let init = &inits[0];
    assert!(str_at(init, "image").contains("init"));

    let datasets_path = "/var/data";
    let (shared, _) = mounts(main)
        .into_iter()
        .find(|(_, path)| path == datasets_path)
        .expect("the datasets volume on the main container");
    assert!(
        mounts(init).iter().any(|(name, _)| *name == shared),
        "the init container writes into the volume the main container reads"
    );
    let init_env = seq_at(init, "env");
    let target = env_value(init, "DATASETS_PATH");
    let init_mount = mounts(init)
        .into_iter()
        .find(|(n, _)| *n == shared)
        .unwrap();
    assert_eq!(
        target, init_mount.1,
        "the init container copies into its mount"
    );
    let source = str_at(named(init_env, "INPUT_S3_URI").unwrap(), "value");
    assert!(source.starts_with("s3://") && source.ends_with("/datasets/"));
    assert_app_name_from_the_annotation(init);
    assert_env_documented_in(init, "templates/dockerfiles/init/fetch-inputs.sh");

    for container in containers.iter().chain(inits.iter()) {
        for (name, _) in mounts(container) {
            if EMR_PREDEFINED_VOLUMES.contains(&name.as_str()) {
                continue;
            }
            assert!(named(volumes, &name).is_some(), "volume {name} declared");
        }
    }
    for predefined in EMR_PREDEFINED_VOLUMES {
        assert!(
            named(volumes, predefined).is_none(),
            "{predefined} is EMR's own; declaring it makes the job fail"
        );
    }
}

#[test]
fn driver_template_fetches_inputs_and_runs_the_job_end_sidecar() {
    let pod = pod_template("templates/kubernetes/pod-template-driver.yaml");
    check_init_container_feeds_the_main_container(&pod, "spark-kubernetes-driver");

    let containers = seq_at(&pod, "spec.containers");
    let main = named(containers, "spark-kubernetes-driver").unwrap();
    assert!(mounts(main).iter().any(|(_, p)| p == "/var/results"));

    let sidecars: Vec<&Value> = containers
        .iter()
        .filter(|c| str_at(c, "name") != "spark-kubernetes-driver")
        .collect();
    assert_eq!(sidecars.len(), 1, "one sidecar");
    let sidecar = sidecars[0];
    assert!(str_at(sidecar, "image").contains("sidecar"));
    let (_, signal_dir) = mounts(sidecar)
        .into_iter()
        .find(|(name, _)| name == "emr-container-communicate")
        .expect("the sidecar sees EMR's end-of-main-container signal");
    let env = seq_at(sidecar, "env");
    let heartbeat = str_at(named(env, "HEARTBEAT_FILE").unwrap(), "value");
    assert_eq!(
        Path::new(heartbeat),
        Path::new(&signal_dir).join("main-container-terminated")
    );
    let script = read("templates/dockerfiles/sidecar/sidecar.sh");
    assert!(
        script.contains(&format!("HEARTBEAT_FILE:-{heartbeat}")),
        "the script's default is the same file"
    );
    let host = str_at(named(env, "EKS_EMR_SERVICE_URL").unwrap(), "value");
    let port = str_at(named(env, "EKS_EMR_SERVICE_PORT").unwrap(), "value");
    let service = by_kind(&kubernetes(), "Service").clone();
    assert_eq!(host, str_at(&service, "metadata.name"));
    assert_eq!(
        port,
        get(&seq_at(&service, "spec.ports")[0], "port")
            .as_u64()
            .unwrap()
            .to_string()
    );
    let token = get(
        named(env, "CALLBACK_TOKEN").unwrap(),
        "valueFrom.secretKeyRef",
    );
    assert_eq!(get(token, "optional"), &Value::Bool(true));
    assert_eq!(
        get(sidecar, "securityContext.runAsNonRoot"),
        &Value::Bool(true)
    );

    // The results: read-only from the volume the driver writes, uploaded to the
    // results prefix under the app name from the annotation.
    assert_app_name_from_the_annotation(sidecar);
    assert_env_documented_in(sidecar, "templates/dockerfiles/sidecar/sidecar.sh");
    let results_s3 = env_value(sidecar, "RESULTS_S3_URI");
    assert!(results_s3.starts_with("s3://") && results_s3.ends_with("/results/"));
    let results_path = env_value(sidecar, "RESULTS_PATH");
    let (main_volume, _) = mounts(main)
        .into_iter()
        .find(|(_, path)| path == results_path)
        .expect("RESULTS_PATH is where the driver's results volume is");
    let mount = seq_at(sidecar, "volumeMounts")
        .iter()
        .find(|m| str_at(m, "name") == main_volume)
        .expect("the sidecar mounts the results volume");
    assert_eq!(str_at(mount, "mountPath"), results_path);
    assert_eq!(get(mount, "readOnly"), &Value::Bool(true));
    // The AWS CLI needs a writable HOME: the image puts it in /tmp, which must be a
    // volume when the root file system is read-only.
    assert_eq!(
        get(sidecar, "securityContext.readOnlyRootFilesystem"),
        &Value::Bool(true)
    );
    assert!(
        read("templates/dockerfiles/sidecar/Dockerfile")
            .lines()
            .any(|l| l.trim() == "ENV HOME=/tmp"),
        "the sidecar image's HOME is /tmp"
    );
    assert!(
        mounts(sidecar).iter().any(|(_, path)| path == "/tmp"),
        "a writable /tmp for the sidecar"
    );
}

#[test]
fn executor_template_adds_nothing_since_executors_read_no_files() {
    // The job reads the datasets on the driver and broadcasts them (scripts/src).
    let pod = pod_template("templates/kubernetes/pod-template-executor.yaml");
    let spec = get(&pod, "spec");
    assert!(spec.get("initContainers").is_none(), "no init container");
    assert!(spec.get("volumes").is_none(), "no datasets volume");
    let containers = seq_at(&pod, "spec.containers");
    assert_eq!(containers.len(), 1, "no sidecar");
    assert_eq!(str_at(&containers[0], "name"), "spark-kubernetes-executor");
}

#[test]
fn the_pod_images_run_the_scripts_they_copy_in() {
    for image in ["init", "sidecar"] {
        let folder = format!("templates/dockerfiles/{image}");
        let dockerfile = read(&format!("{folder}/Dockerfile"));
        let entrypoint = dockerfile
            .lines()
            .find_map(|l| l.trim().strip_prefix("ENTRYPOINT "))
            .unwrap_or_else(|| panic!("{folder}/Dockerfile has an ENTRYPOINT"));
        let entrypoint: Vec<String> = serde_json::from_str(entrypoint)
            .unwrap_or_else(|e| panic!("{folder}: ENTRYPOINT in exec form: {e}"));
        let script = entrypoint.last().unwrap();
        // Copied in from a file of the folder, to the path the entry point runs.
        let copied_from = dockerfile
            .lines()
            .filter_map(|l| l.trim().strip_prefix("COPY "))
            .find_map(|args| {
                let (from, to) = args.rsplit_once(' ')?;
                (to == script).then(|| from.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{folder}/Dockerfile copies {script} in"));
        let source = root().join(&folder).join(&copied_from);
        assert!(source.is_file(), "{} exists", source.display());
        let text = read(&format!("{folder}/{copied_from}"));
        assert!(
            text.starts_with("#!/bin/sh\n"),
            "{copied_from} is a sh script"
        );
        assert_eq!(entrypoint[0], "/bin/sh", "{folder} runs it with sh");
        // The same pinned AWS CLI image for both.
        assert!(
            dockerfile
                .lines()
                .any(|l| l.trim() == "FROM amazon/aws-cli:2.17.0"),
            "{folder} builds on the pinned AWS CLI image"
        );
    }
}

#[test]
fn templates_of_the_service_config_name_the_uploaded_pod_templates() {
    let docs = kubernetes();
    let env = kubernetes_env_values(service_container(&docs));
    for variable in ["EMR_DRIVER_TEMPLATE", "EMR_EXECUTOR_TEMPLATE"] {
        let file = &env[variable];
        assert!(
            root().join("templates/kubernetes").join(file).is_file(),
            "{variable}={file} is a file of templates/kubernetes"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Drift between the files and the service's list of variables

#[test]
fn deployment_files_set_only_variables_the_service_reads() {
    assert_known("the Dockerfile", dockerfile_runtime_env().into_keys());
    assert_known(
        "docker-compose_dist.yml",
        compose_service_env(&compose()).into_keys(),
    );
    let docs = kubernetes();
    assert_known(
        "templates/kubernetes/deployment.yaml",
        kubernetes_env_names(service_container(&docs)),
    );
}

/// The Markdown table that follows `intro` in the page `page`, header included.
fn table_text(page: &str, intro: &str) -> String {
    let text = read(page);
    let (_, after) = text
        .split_once(intro)
        .unwrap_or_else(|| panic!("{page} has no {intro:?}"));
    after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn configuration_tables_are_the_rows_of_the_service_s_variables() {
    for (intro, table) in [
        (
            "The variables inherited from the Python service keep their names and defaults:",
            Table::Inherited,
        ),
        ("Added by this service:", Table::Added),
    ] {
        let expected = configuration_table(table);
        assert!(
            table_text(CONFIGURATION, intro) == expected,
            "the table of {CONFIGURATION} after {intro:?} differs from \
             src/config/variables.rs; paste this:\n\n{expected}"
        );
    }
    // And the page holds no other variable.
    assert_known(CONFIGURATION, documented_variables());
}

/// The variables of the table that follows `intro` in the page `page` (first column).
fn table_variables_after(page: &str, intro: &str) -> BTreeSet<String> {
    let text = read(page);
    let (_, after) = text
        .split_once(intro)
        .unwrap_or_else(|| panic!("{page} has no {intro:?}"));
    let mut names = BTreeSet::new();
    for line in after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
    {
        let first = line.split('|').nth(1).unwrap_or_default();
        for name in first.split(',') {
            let name = name.trim().trim_matches('`');
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Each variable the compose file sets for a container other than the service's is in
/// the development page's table, and the table lists no other; the setup script reads the ones that are
/// its own (the others are read by boto3 and pip).
#[test]
fn docs_document_the_variables_of_the_compose_files_other_services() {
    let compose = compose();
    let services = get(&compose, "services").as_mapping().unwrap();
    let mut set = BTreeSet::new();
    for (name, service) in services {
        if name.as_str() == Some("multiomix-aws-emr") {
            continue;
        }
        if let Some(env) = service.get("environment") {
            let env = env
                .as_mapping()
                .unwrap_or_else(|| panic!("{name:?}: environment is a mapping"));
            set.extend(env.keys().map(|k| k.as_str().unwrap().to_owned()));
        }
    }
    let page = "docs/development.md";
    let documented = table_variables_after(page, "(`emr-emulator-setup`, running");
    assert_eq!(set, documented, "set in the compose file / in {page}");
    let script = read("dev/emulator/create_virtual_cluster.py");
    for own in ["MOTO_URL", "EXPECTED_VIRTUAL_CLUSTER_ID"] {
        assert!(
            script.contains(&format!("\"{own}\"")),
            "the setup script does not read {own}"
        );
    }
}

#[test]
fn configuration_lists_the_contract_variables_first() {
    let page = read(CONFIGURATION);
    let position = |name: &str| {
        page.find(&format!("`{name}`"))
            .unwrap_or_else(|| panic!("{name} not in {CONFIGURATION}"))
    };
    assert!(position("PORT") < position("HOST"));
    assert!(position("EMR_VIRTUAL_CLUSTER_ID") < position("API_TOKEN"));
}

#[test]
fn deploy_guide_policy_grants_exactly_the_calls_of_the_contract() {
    let guide = read("docs/backend-emr-eks.md");
    let policy = guide
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("\"Statement\""))
        .expect("docs/backend-emr-eks.md has the IAM policy as a json block");
    let policy: serde_json::Value = serde_json::from_str(policy).expect("valid JSON");
    let mut actions = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        let listed = match &statement["Action"] {
            serde_json::Value::String(one) => vec![one.clone()],
            many => many
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect(),
        };
        let resource = statement["Resource"].as_str().unwrap();
        for action in listed {
            let scoped = action.ends_with("JobRun") || action.ends_with("JobRuns");
            if scoped {
                assert!(
                    resource.contains(":/virtualclusters/"),
                    "{action} on {resource}"
                );
            }
            actions.insert(action);
        }
    }
    let expected: BTreeSet<String> = [
        "StartJobRun",
        "DescribeJobRun",
        "CancelJobRun",
        "ListJobRuns",
        "DescribeVirtualCluster",
        "ListVirtualClusters",
    ]
    .iter()
    .map(|a| format!("emr-containers:{a}"))
    .collect();
    assert_eq!(actions, expected);
}

#[test]
fn staging_policy_grants_exactly_the_s3_calls_of_the_staging_code_on_their_prefixes() {
    let guide = read("docs/data-path.md");
    let block = guide
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("\"StageDatasets\""))
        .expect("docs/data-path.md has the staging statements as a json block");
    let statements: serde_json::Value = serde_json::from_str(block).expect("valid JSON");
    // (action, resource) pairs granted; an action may be one string or a list.
    let mut granted = BTreeSet::new();
    for statement in statements.as_array().expect("a list of statements") {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        let actions = match &statement["Action"] {
            serde_json::Value::String(one) => vec![one.clone()],
            many => many
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect(),
        };
        for action in actions {
            granted.insert((action, statement["Resource"].as_str().unwrap().to_owned()));
        }
        if statement["Action"] == "s3:ListBucket" {
            assert_eq!(
                statement["Condition"]["StringLike"]["s3:prefix"],
                serde_json::json!(["datasets/*", "results/*"]),
                "listing is limited to the two prefixes"
            );
        }
    }
    // What each call of the staging code needs. PutObject covers the multipart calls;
    // GetObject covers HeadObject; DeleteObjects needs DeleteObject on each key.
    let datasets = "arn:aws:s3:::BUCKET/datasets/*";
    let results = "arn:aws:s3:::BUCKET/results/*";
    let bucket = "arn:aws:s3:::BUCKET";
    let needs: Vec<(&str, (&str, &str))> = vec![
        ("put_object", ("s3:PutObject", datasets)),
        ("create_multipart_upload", ("s3:PutObject", datasets)),
        ("upload_part", ("s3:PutObject", datasets)),
        ("complete_multipart_upload", ("s3:PutObject", datasets)),
        ("head_object", ("s3:GetObject", datasets)),
        (
            "abort_multipart_upload",
            ("s3:AbortMultipartUpload", datasets),
        ),
        ("delete_objects", ("s3:DeleteObject", datasets)),
        // An earlier run's results, emptied before a run starts.
        ("delete_objects", ("s3:DeleteObject", results)),
        ("get_object", ("s3:GetObject", results)),
        ("list_objects_v2", ("s3:ListBucket", bucket)),
        // Uploads a stopped process left, found at start-up.
        (
            "list_multipart_uploads",
            ("s3:ListBucketMultipartUploads", bucket),
        ),
    ];
    // Every `client.<call>(` of the staging code, white space between them allowed.
    let mut calls = BTreeSet::new();
    for file in [
        "src/staging/mod.rs",
        "src/staging/datasets.rs",
        "src/staging/results.rs",
    ] {
        let source = read(file);
        calls.extend(
            source
                .split(".client")
                .skip(1)
                .filter_map(|rest| rest.trim_start().strip_prefix('.'))
                .filter_map(|rest| rest.split('(').next())
                .map(str::to_owned),
        );
    }
    let known: BTreeSet<String> = needs.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        calls, known,
        "src/staging/ makes other S3 calls than the policy covers"
    );
    let required: BTreeSet<(String, String)> = needs
        .iter()
        .map(|(_, need)| need)
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect();
    assert_eq!(
        granted, required,
        "docs/data-path.md grants more or less than the calls need"
    );
}

#[test]
fn job_role_policy_grants_the_pods_exactly_their_s3_calls_on_their_prefixes() {
    let guide = read("docs/data-path.md");
    let policy = guide
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("\"SidecarWritesTheJobsResults\""))
        .expect("docs/data-path.md has the job execution role's policy as a json block");
    let policy: serde_json::Value = serde_json::from_str(policy).expect("valid JSON");
    let statements = policy["Statement"].as_array().unwrap();
    let granted: BTreeSet<(String, String, String)> = statements
        .iter()
        .map(|s| {
            assert_eq!(s["Effect"], "Allow");
            (
                s["Action"]
                    .as_str()
                    .expect("one action a statement")
                    .to_owned(),
                s["Resource"].as_str().unwrap().to_owned(),
                s["Condition"].to_string(),
            )
        })
        .collect();
    // The init container's `aws s3 sync` lists the app's prefix and reads its objects;
    // the sidecar's `aws s3 cp` of local files only writes (tests/integration/init_script.rs and
    // tests/integration/sidecar_script.rs check both in moto's request log).
    let expected: BTreeSet<(String, String, String)> = [
        (
            "s3:ListBucket",
            "arn:aws:s3:::BUCKET",
            r#"{"StringLike":{"s3:prefix":"datasets/*"}}"#,
        ),
        ("s3:GetObject", "arn:aws:s3:::BUCKET/datasets/*", "null"),
        ("s3:PutObject", "arn:aws:s3:::BUCKET/results/*", "null"),
    ]
    .iter()
    .map(|(a, r, c)| (a.to_string(), r.to_string(), c.to_string()))
    .collect();
    assert_eq!(granted, expected);
}

/// The Markdown files whose relative links must work: the README, the documentation
/// pages and the READMEs of the workspace's parts.
fn documentation_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "scripts/README.md", "fakes/README.md"]
        .iter()
        .map(|f| root().join(f))
        .collect();
    let mut pages: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("a docs/ folder")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// Whether `line` opens or closes a fenced code block (up to three spaces of indent).
fn is_fence(line: &str) -> bool {
    let trimmed = line.trim_start_matches(' ');
    line.len() - trimmed.len() <= 3 && (trimmed.starts_with("```") || trimmed.starts_with("~~~"))
}

/// The lines of `text` outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut inside = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if is_fence(line) {
            inside = !inside;
        } else if !inside {
            lines.push(line);
        }
    }
    lines
}

/// `text` without its inline code spans (a run of backticks up to the next run of the
/// same length), which may span lines; a run with no closing run is kept as it is.
fn without_code_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|&&c| c == '`').count();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = run_at(i);
        let mut j = i + run;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let other = run_at(j);
                if other == run {
                    close = Some(j + other);
                    break;
                }
                j += other;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => i = end,
            None => {
                out.extend(&chars[i..i + run]);
                i += run;
            }
        }
    }
    out
}

/// The anchors GitHub gives the headings of a Markdown text: the heading's text, links
/// replaced by their text, in lower case, spaces turned into `-`, every character but
/// letters, digits, `-` and `_` removed; the second heading of one anchor gets `-1`, the
/// third `-2`.
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for line in prose_lines(text) {
        let trimmed = line.trim_start_matches(' ');
        if line.len() - trimmed.len() > 3 {
            continue;
        }
        let level = trimmed.chars().take_while(|&c| c == '#').count();
        let rest = &trimmed[level..];
        if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        let title = rest.trim().trim_end_matches('#').trim_end();
        let base = github_anchor(title);
        let count = seen.entry(base.clone()).or_insert(0);
        let anchor = if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        anchors.insert(anchor);
    }
    anchors
}

/// GitHub's anchor of one heading's Markdown text.
fn github_anchor(title: &str) -> String {
    // A link in a heading shows its text: drop each `(destination)` that follows a `]`.
    let mut shown = String::new();
    let mut rest = title;
    while let Some(at) = rest.find("](") {
        shown.push_str(&rest[..at]);
        rest = rest[at + 2..]
            .split_once(')')
            .map_or("", |(_, after)| after);
    }
    shown.push_str(rest);
    shown
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The destinations of a Markdown text's inline links and images (`[text](dest)`,
/// `[text](dest "title")`, `[text](<dest>)`) and link definitions (`[ref]: dest`),
/// outside code blocks and code spans.
fn link_destinations(text: &str) -> Vec<String> {
    let prose = without_code_spans(&prose_lines(text).join("\n"));
    let mut found = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let inner = rest.split(')').next().unwrap_or_default().trim();
        let dest = match inner.strip_prefix('<') {
            Some(bracketed) => bracketed.split('>').next().unwrap_or_default(),
            None => inner.split_whitespace().next().unwrap_or_default(),
        };
        found.push(dest.to_owned());
    }
    for line in prose.lines() {
        let line = line.trim_start();
        if let Some((label, after)) = line.strip_prefix('[').and_then(|l| l.split_once("]:")) {
            if !label.is_empty() && !label.contains(']') {
                found.extend(after.split_whitespace().next().map(str::to_owned));
            }
        }
    }
    found
}

/// What is wrong with each relative link of the Markdown file `file` (whose text is
/// `text`): a target that does not exist, or a `#fragment` that names no heading of its
/// Markdown target. Links with a scheme (`https:`, `mailto:`) are not followed.
fn broken_links(file: &Path, text: &str) -> Vec<String> {
    let mut broken = Vec::new();
    for dest in link_destinations(text) {
        let has_scheme = dest
            .split_once(':')
            .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'));
        if has_scheme {
            continue;
        }
        let (path, fragment) = match dest.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (dest.as_str(), None),
        };
        let target = if path.is_empty() {
            file.to_path_buf()
        } else if let Some(from_root) = path.strip_prefix('/') {
            root().join(from_root)
        } else {
            file.parent().unwrap().join(path)
        };
        if dest.is_empty() || !target.exists() {
            broken.push(format!("{dest}: no such file"));
            continue;
        }
        let Some(fragment) = fragment else { continue };
        if target.extension() != Some(std::ffi::OsStr::new("md")) {
            broken.push(format!("{dest}: a fragment of a file without headings"));
            continue;
        }
        let target_text = fs::read_to_string(&target).unwrap();
        if !heading_anchors(&target_text).contains(fragment) {
            broken.push(format!("{dest}: no heading with this anchor"));
        }
    }
    broken
}

#[test]
fn every_relative_link_of_the_documentation_reaches_a_file_and_a_heading() {
    let mut broken = Vec::new();
    let mut links = 0;
    for file in documentation_files() {
        let text = fs::read_to_string(&file).unwrap();
        links += link_destinations(&text).len();
        let shown = file.strip_prefix(root()).unwrap().display().to_string();
        broken.extend(
            broken_links(&file, &text)
                .into_iter()
                .map(|why| format!("{shown}: {why}")),
        );
    }
    assert!(
        links > 50,
        "only {links} links found: the parser misses some"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_check_finds_a_missing_file_a_missing_heading_and_a_fragment_of_a_non_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.md");
    let other = dir.path().join("other.md");
    fs::write(
        &other,
        "# Other\n\n## Step 1: the `IAM` policy's statements\n\n## Notes\n\n### Notes\n\n\
         ```sh\n# not a heading\n```\n",
    )
    .unwrap();
    fs::write(dir.path().join("data.txt"), "text\n").unwrap();
    let text = "\
# Page

## A [linked](other.md) heading

[fine](other.md) [fine](other.md#step-1-the-iam-policys-statements)
[fine](other.md#notes-1) [fine](#a-linked-heading) [fine](data.txt)
[fine](https://example.org/x#y) [fine](<other.md#notes> \"title\")
[across
lines](other.md#notes) `[inside code](missing.md)`

```md
[inside a block](missing.md)
```

[gone](missing.md)
[no heading](other.md#notes-2)
[no heading](other.md#not-a-heading)
[not a page](data.txt#top)
[here, no heading](#nothing)

[ref]: gone-too.md
";
    fs::write(&page, text).unwrap();
    assert_eq!(
        broken_links(&page, text),
        [
            "missing.md: no such file",
            "other.md#notes-2: no heading with this anchor",
            "other.md#not-a-heading: no heading with this anchor",
            "data.txt#top: a fragment of a file without headings",
            "#nothing: no heading with this anchor",
            "gone-too.md: no such file",
        ]
    );
}
