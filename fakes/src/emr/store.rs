//! The fake's memory: virtual clusters, job runs, client tokens and scripted errors, and the
//! rules EMR applies to them. Everything here runs under one mutex, never across an await.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use axum::http::StatusCode;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::{JobState, NewJob, Operation, Settings};

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// An error as emr-containers sends it: a status, an error type, a message.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) status: StatusCode,
    pub(crate) error_type: String,
    pub(crate) message: String,
}

impl Fault {
    pub(crate) fn new(status: u16, error_type: &str, message: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("an HTTP status code"),
            error_type: error_type.to_owned(),
            message: message.to_owned(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: "ValidationException".to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error_type: "ResourceNotFoundException".to_owned(),
            message: message.into(),
        }
    }
}

/// Whole seconds since the epoch, written as emr-containers writes `Date` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timestamp(pub(crate) i64);

impl Timestamp {
    fn from_nanos(nanos: i128) -> Self {
        Timestamp(nanos.div_euclid(NANOS_PER_SEC) as i64)
    }

    fn from_datetime(at: OffsetDateTime) -> Self {
        Timestamp(at.unix_timestamp())
    }

    fn nanos(self) -> i128 {
        i128::from(self.0) * NANOS_PER_SEC
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = OffsetDateTime::from_unix_timestamp(self.0).map_err(|_| fmt::Error)?;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn now_nanos() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos()
}

/// `len` characters of `[0-9a-z]`, the alphabet of emr-containers ids.
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Job run ids look like `000000031kd8aj0vtn3`: 19 characters, leading zeros.
fn random_job_id() -> String {
    let mut id = String::with_capacity(19);
    id.push_str("0000000");
    id.push_str(&random_id(12));
    id
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Cluster {
    id: String,
    name: String,
    arn: String,
    state: String,
    container_provider: Value,
    created_at: Timestamp,
    tags: Map<String, Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Job {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    virtual_cluster_id: String,
    arn: String,
    state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    configuration_overrides: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_driver: Option<Value>,
    created_at: Timestamp,
    created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_details: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_policy_configuration: Option<Value>,
    /// Creation order, to break ties between runs created in the same second.
    #[serde(skip)]
    seq: u64,
    /// Scheduled transitions (instant in nanoseconds, state), latest first.
    #[serde(skip)]
    plan: Vec<(i128, JobState)>,
}

impl Job {
    /// Applies the transitions whose time has come; EMR's clock runs without anyone looking.
    fn settle(&mut self, now: i128) {
        while let Some(&(at, state)) = self.plan.last() {
            if at > now {
                break;
            }
            self.plan.pop();
            self.enter(state, Timestamp::from_nanos(at));
        }
    }

    fn enter(&mut self, state: JobState, at: Timestamp) {
        self.state = state;
        match state {
            JobState::Completed => {
                self.state_details = None;
                self.failure_reason = None;
            }
            JobState::Failed => {
                self.state_details =
                    Some("Jobrun failed. Main Spark container terminated with errors.".into());
                self.failure_reason = Some("USER_ERROR".into());
            }
            JobState::Cancelled => {
                self.state_details = Some("Job run was cancelled.".into());
                self.failure_reason = None;
            }
            _ => {}
        }
        if state.is_final() {
            self.finished_at = Some(at);
            self.plan.clear();
        } else {
            self.finished_at = None;
        }
    }

    fn key(&self) -> (Timestamp, u64) {
        (self.created_at, self.seq)
    }
}

/// What ListJobRuns was asked for, parsed from its query string.
#[derive(Debug, Default)]
pub(crate) struct JobFilter {
    pub(crate) states: Vec<JobState>,
    pub(crate) created_after: Option<i128>,
    pub(crate) created_before: Option<i128>,
    pub(crate) name: Option<String>,
    pub(crate) max_results: Option<usize>,
    pub(crate) next_token: Option<String>,
}

/// What ListVirtualClusters was asked for.
#[derive(Debug, Default)]
pub(crate) struct ClusterFilter {
    pub(crate) states: Vec<String>,
    pub(crate) container_provider_id: Option<String>,
    pub(crate) max_results: Option<usize>,
    pub(crate) next_token: Option<String>,
}

const DEFAULT_MAX_RESULTS: usize = 50;

pub(crate) struct Inner {
    clusters: HashMap<String, Cluster>,
    cluster_tokens: HashMap<String, String>,
    jobs: HashMap<String, Job>,
    /// (virtual cluster id, client token) → job run id.
    tokens: HashMap<(String, String), String>,
    pub(crate) start_requests: Vec<Value>,
    faults: [VecDeque<Fault>; Operation::COUNT],
    delays: [Duration; Operation::COUNT],
    next_seq: u64,
}

impl Inner {
    pub(crate) fn new(settings: &Settings, virtual_cluster_id: &str) -> Self {
        let mut inner = Inner {
            clusters: HashMap::new(),
            cluster_tokens: HashMap::new(),
            jobs: HashMap::new(),
            tokens: HashMap::new(),
            start_requests: Vec::new(),
            faults: Default::default(),
            delays: [Duration::ZERO; Operation::COUNT],
            next_seq: 0,
        };
        inner.add_cluster(settings, virtual_cluster_id, "multiomix", None, None);
        inner
    }

    pub(crate) fn scripted(&mut self, op: Operation) -> (Duration, Option<Fault>) {
        (self.delays[op.index()], self.faults[op.index()].pop_front())
    }

    pub(crate) fn push_fault(&mut self, op: Operation, fault: Fault) {
        self.faults[op.index()].push_back(fault);
    }

    pub(crate) fn clear_faults(&mut self) {
        self.faults.iter_mut().for_each(VecDeque::clear);
    }

    pub(crate) fn set_delay(&mut self, op: Operation, delay: Duration) {
        self.delays[op.index()] = delay;
    }

    fn cluster_arn(settings: &Settings, id: &str) -> String {
        format!(
            "arn:aws:emr-containers:{}:{}:/virtualclusters/{id}",
            settings.region, settings.account_id
        )
    }

    pub(crate) fn add_cluster(
        &mut self,
        settings: &Settings,
        id: &str,
        name: &str,
        container_provider: Option<Value>,
        tags: Option<Map<String, Value>>,
    ) {
        let container_provider = container_provider.unwrap_or_else(|| {
            json!({"type": "EKS", "id": "multiomix-eks", "info": {"eksInfo": {"namespace": "emr"}}})
        });
        self.clusters.insert(
            id.to_owned(),
            Cluster {
                id: id.to_owned(),
                name: name.to_owned(),
                arn: Self::cluster_arn(settings, id),
                state: "RUNNING".to_owned(),
                container_provider,
                created_at: Timestamp::from_nanos(now_nanos()),
                tags: tags.unwrap_or_default(),
            },
        );
    }

    pub(crate) fn set_cluster_state(&mut self, id: &str, state: &str) -> bool {
        match self.clusters.get_mut(id) {
            Some(cluster) => {
                cluster.state = state.to_owned();
                true
            }
            None => false,
        }
    }

    fn cluster(&self, id: &str) -> Result<&Cluster, Fault> {
        self.clusters
            .get(id)
            .ok_or_else(|| Fault::not_found(format!("Virtual cluster {id} doesn't exist.")))
    }

    fn job_mut(&mut self, vc: &str, id: &str, now: i128) -> Result<&mut Job, Fault> {
        self.cluster(vc)?;
        match self.jobs.get_mut(id) {
            Some(job) if job.virtual_cluster_id == vc => {
                job.settle(now);
                Ok(job)
            }
            _ => Err(Fault::not_found(format!("Job run {id} doesn't exist."))),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn fresh_job_id(&self) -> String {
        loop {
            let id = random_job_id();
            if !self.jobs.contains_key(&id) {
                return id;
            }
        }
    }

    /// StartJobRun, once the body has been checked. Answers the StartJobRun output.
    pub(crate) fn start_job_run(
        &mut self,
        settings: &Settings,
        vc: &str,
        request: StartRequest,
    ) -> Result<Vec<u8>, Fault> {
        let cluster = self.cluster(vc)?;
        if cluster.state != "RUNNING" {
            return Err(Fault::validation(format!(
                "Virtual cluster {vc} is not in a valid state to run jobs: {}.",
                cluster.state
            )));
        }
        let token_key = (vc.to_owned(), request.client_token.clone());
        let id = match self.tokens.get(&token_key) {
            Some(id) => id.clone(),
            None => {
                let id = self.fresh_job_id();
                let created = now_nanos();
                let plan = settings
                    .lifecycle
                    .iter()
                    .rev()
                    .map(|(after, state)| (created + after.as_nanos() as i128, *state))
                    .collect();
                let seq = self.next_seq();
                let job = Job {
                    arn: format!("{}/jobruns/{id}", Self::cluster_arn(settings, vc)),
                    id: id.clone(),
                    name: request.name,
                    virtual_cluster_id: vc.to_owned(),
                    state: settings.initial_state,
                    client_token: Some(request.client_token),
                    execution_role_arn: request.execution_role_arn,
                    release_label: request.release_label,
                    configuration_overrides: request.configuration_overrides,
                    job_driver: request.job_driver,
                    created_at: Timestamp::from_nanos(created),
                    created_by: created_by(settings),
                    finished_at: None,
                    state_details: None,
                    failure_reason: None,
                    tags: request.tags,
                    retry_policy_configuration: request.retry_policy_configuration,
                    seq,
                    plan,
                };
                self.tokens.insert(token_key, id.clone());
                self.jobs.insert(id.clone(), job);
                id
            }
        };
        let job = &self.jobs[&id];
        let mut out = Map::new();
        out.insert("id".into(), json!(job.id));
        if let Some(name) = &job.name {
            out.insert("name".into(), json!(name));
        }
        out.insert("arn".into(), json!(job.arn));
        out.insert("virtualClusterId".into(), json!(job.virtual_cluster_id));
        Ok(serde_json::to_vec(&out).expect("JSON"))
    }

    pub(crate) fn describe_job_run(&mut self, vc: &str, id: &str) -> Result<Vec<u8>, Fault> {
        let job = self.job_mut(vc, id, now_nanos())?;
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            job_run: &'a Job,
        }
        Ok(serde_json::to_vec(&Out { job_run: job }).expect("JSON"))
    }

    pub(crate) fn cancel_job_run(
        &mut self,
        settings: &Settings,
        vc: &str,
        id: &str,
    ) -> Result<Vec<u8>, Fault> {
        let now = now_nanos();
        let job = self.job_mut(vc, id, now)?;
        if job.state.is_final() || job.state == JobState::CancelPending {
            return Err(Fault::validation(format!(
                "Job run {id} is not in a cancellable state: {}.",
                job.state
            )));
        }
        job.plan.clear();
        if settings.cancel_takes.is_zero() {
            job.enter(JobState::Cancelled, Timestamp::from_nanos(now));
        } else {
            job.enter(JobState::CancelPending, Timestamp::from_nanos(now));
            let at = now + settings.cancel_takes.as_nanos() as i128;
            job.plan.push((at, JobState::Cancelled));
        }
        Ok(
            serde_json::to_vec(&json!({"id": job.id, "virtualClusterId": job.virtual_cluster_id}))
                .expect("JSON"),
        )
    }

    pub(crate) fn list_job_runs(&mut self, vc: &str, filter: &JobFilter) -> Result<Vec<u8>, Fault> {
        self.cluster(vc)?;
        let start = match &filter.next_token {
            Some(token) => Some(parse_job_token(token)?),
            None => None,
        };
        let max = filter.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
        let now = now_nanos();
        let mut matching: Vec<&Job> = self
            .jobs
            .values_mut()
            .filter(|job| job.virtual_cluster_id == vc)
            .map(|job| {
                job.settle(now);
                &*job
            })
            .filter(|job| {
                (filter.states.is_empty() || filter.states.contains(&job.state))
                    && filter
                        .name
                        .as_ref()
                        .map_or(true, |name| job.name.as_ref() == Some(name))
                    && filter
                        .created_after
                        .map_or(true, |after| job.created_at.nanos() >= after)
                    && filter
                        .created_before
                        .map_or(true, |before| job.created_at.nanos() <= before)
                    && start.map_or(true, |start| job.key() <= start)
            })
            .collect();
        matching.sort_unstable_by_key(|job| std::cmp::Reverse(job.key()));
        let next_token = matching.get(max).map(|job| job_token(job.key()));
        matching.truncate(max);
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            job_runs: Vec<&'a Job>,
            #[serde(skip_serializing_if = "Option::is_none")]
            next_token: Option<String>,
        }
        Ok(serde_json::to_vec(&Out {
            job_runs: matching,
            next_token,
        })
        .expect("JSON"))
    }

    pub(crate) fn describe_virtual_cluster(&self, id: &str) -> Result<Vec<u8>, Fault> {
        let cluster = self.cluster(id)?;
        Ok(serde_json::to_vec(&json!({ "virtualCluster": cluster })).expect("JSON"))
    }

    pub(crate) fn list_virtual_clusters(&self, filter: &ClusterFilter) -> Result<Vec<u8>, Fault> {
        let skip = match &filter.next_token {
            Some(token) => token
                .parse::<usize>()
                .map_err(|_| Fault::validation("Invalid pagination token."))?,
            None => 0,
        };
        let max = filter.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
        let mut clusters: Vec<&Cluster> = self
            .clusters
            .values()
            .filter(|cluster| filter.states.is_empty() || filter.states.contains(&cluster.state))
            .filter(|cluster| {
                filter
                    .container_provider_id
                    .as_ref()
                    .map_or(true, |wanted| {
                        cluster.container_provider.get("id").and_then(Value::as_str)
                            == Some(wanted.as_str())
                    })
            })
            .collect();
        clusters.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        let page: Vec<_> = clusters.iter().skip(skip).take(max).collect();
        let mut out = json!({ "virtualClusters": page });
        if clusters.len() > skip + max {
            out["nextToken"] = json!((skip + max).to_string());
        }
        Ok(serde_json::to_vec(&out).expect("JSON"))
    }

    pub(crate) fn create_virtual_cluster(
        &mut self,
        settings: &Settings,
        body: &Value,
    ) -> Result<Vec<u8>, Fault> {
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty() && name.len() <= 64)
            .ok_or_else(|| Fault::validation("name must be a string of 1 to 64 characters."))?;
        let provider = body
            .get("containerProvider")
            .filter(|provider| provider.is_object())
            .ok_or_else(|| Fault::validation("containerProvider is required."))?;
        let tags = body.get("tags").and_then(Value::as_object).cloned();
        let token = body.get("clientToken").and_then(Value::as_str);
        let existing = token.and_then(|token| self.cluster_tokens.get(token).cloned());
        let id = match existing {
            Some(id) => id,
            None => {
                let id = random_id(25);
                self.add_cluster(settings, &id, name, Some(provider.clone()), tags);
                if let Some(token) = token {
                    self.cluster_tokens.insert(token.to_owned(), id.clone());
                }
                id
            }
        };
        let cluster = &self.clusters[&id];
        Ok(
            serde_json::to_vec(
                &json!({"id": cluster.id, "name": cluster.name, "arn": cluster.arn}),
            )
            .expect("JSON"),
        )
    }

    pub(crate) fn set_state(
        &mut self,
        id: &str,
        state: JobState,
        state_details: Option<&str>,
        failure_reason: Option<&str>,
    ) -> bool {
        let Some(job) = self.jobs.get_mut(id) else {
            return false;
        };
        job.plan.clear();
        job.state = state;
        job.finished_at = state.is_final().then(|| Timestamp::from_nanos(now_nanos()));
        job.state_details = state_details.map(str::to_owned);
        job.failure_reason = failure_reason.map(str::to_owned);
        true
    }

    pub(crate) fn job_json(&mut self, id: &str) -> Option<Value> {
        let job = self.jobs.get_mut(id)?;
        job.settle(now_nanos());
        Some(serde_json::to_value(&*job).expect("JSON"))
    }

    pub(crate) fn job_ids(&self) -> Vec<String> {
        let mut jobs: Vec<&Job> = self.jobs.values().collect();
        jobs.sort_unstable_by_key(|job| job.seq);
        jobs.into_iter().map(|job| job.id.clone()).collect()
    }

    pub(crate) fn insert_job(
        &mut self,
        settings: &Settings,
        default_vc: &str,
        new: NewJob,
    ) -> String {
        let vc = new
            .virtual_cluster_id
            .unwrap_or_else(|| default_vc.to_owned());
        assert!(
            self.clusters.contains_key(&vc),
            "insert_job: virtual cluster {vc} does not exist"
        );
        let id = new.id.unwrap_or_else(|| self.fresh_job_id());
        assert!(
            !self.jobs.contains_key(&id),
            "insert_job: job run {id} exists"
        );
        let created_at = new
            .created_at
            .map(Timestamp::from_datetime)
            .unwrap_or_else(|| Timestamp::from_nanos(now_nanos()));
        let finished_at = match new.finished_at {
            Some(at) => Some(Timestamp::from_datetime(at)),
            None if new.state.is_final() => Some(Timestamp::from_nanos(now_nanos())),
            None => None,
        };
        let tags = (!new.tags.is_empty()).then(|| json!(new.tags));
        if let Some(token) = &new.client_token {
            self.tokens.insert((vc.clone(), token.clone()), id.clone());
        }
        let seq = self.next_seq();
        let job = Job {
            arn: format!("{}/jobruns/{id}", Self::cluster_arn(settings, &vc)),
            id: id.clone(),
            name: new.name,
            virtual_cluster_id: vc,
            state: new.state,
            client_token: new.client_token,
            execution_role_arn: new.execution_role_arn,
            release_label: new.release_label,
            configuration_overrides: new.configuration_overrides,
            job_driver: new.job_driver,
            created_at,
            created_by: created_by(settings),
            finished_at,
            state_details: new.state_details,
            failure_reason: new.failure_reason,
            tags,
            retry_policy_configuration: None,
            seq,
            plan: Vec::new(),
        };
        self.jobs.insert(id.clone(), job);
        id
    }
}

fn created_by(settings: &Settings) -> String {
    format!(
        "arn:aws:iam::{}:user/multiomix-aws-emr",
        settings.account_id
    )
}

/// Page tokens name the first run of the next page by its sort key, so runs created
/// between two pages neither repeat nor shift the rest.
fn job_token((created, seq): (Timestamp, u64)) -> String {
    format!("{}.{seq}", created.0)
}

fn parse_job_token(token: &str) -> Result<(Timestamp, u64), Fault> {
    let invalid = || Fault::validation("Invalid pagination token.");
    let (created, seq) = token.split_once('.').ok_or_else(invalid)?;
    Ok((
        Timestamp(created.parse().map_err(|_| invalid())?),
        seq.parse().map_err(|_| invalid())?,
    ))
}

/// The fields of a StartJobRun body the fake keeps.
#[derive(Debug)]
pub(crate) struct StartRequest {
    pub(crate) client_token: String,
    pub(crate) name: Option<String>,
    pub(crate) execution_role_arn: Option<String>,
    pub(crate) release_label: Option<String>,
    pub(crate) job_driver: Option<Value>,
    pub(crate) configuration_overrides: Option<Value>,
    pub(crate) tags: Option<Value>,
    pub(crate) retry_policy_configuration: Option<Value>,
}

impl StartRequest {
    /// Checks a StartJobRun body as the service does, with its messages' spirit.
    pub(crate) fn parse(body: &Value) -> Result<Self, Fault> {
        let body = body
            .as_object()
            .ok_or_else(|| Fault::validation("The request body must be a JSON object."))?;
        let text = |field: &str| -> Result<Option<String>, Fault> {
            match body.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Fault::validation(format!("{field} must be a string."))),
            }
        };
        let object = |field: &str| -> Result<Option<Value>, Fault> {
            match body.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(value @ Value::Object(_)) => Ok(Some(value.clone())),
                Some(_) => Err(Fault::validation(format!("{field} must be an object."))),
            }
        };

        let client_token = text("clientToken")?
            .filter(|token| !token.trim().is_empty() && token.len() <= 64)
            .ok_or_else(|| {
                Fault::validation("clientToken must be a string of 1 to 64 characters.")
            })?;
        let name = text("name")?;
        if let Some(name) = &name {
            let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#".contains(c);
            if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
                return Err(Fault::validation(format!(
                    "1 validation error detected: Value '{name}' at 'name' failed to satisfy \
                     constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
                )));
            }
        }
        if let Some(template) = text("jobTemplateId")? {
            return Err(Fault::not_found(format!(
                "Job template {template} doesn't exist."
            )));
        }
        let execution_role_arn = text("executionRoleArn")?
            .ok_or_else(|| Fault::validation("executionRoleArn is required."))?;
        if !(execution_role_arn.starts_with("arn:aws") && execution_role_arn.contains(":role/")) {
            return Err(Fault::validation(format!(
                "executionRoleArn {execution_role_arn} is not an IAM role ARN."
            )));
        }
        let release_label =
            text("releaseLabel")?.ok_or_else(|| Fault::validation("releaseLabel is required."))?;
        let job_driver =
            object("jobDriver")?.ok_or_else(|| Fault::validation("jobDriver is required."))?;
        check_job_driver(&job_driver)?;
        let tags = object("tags")?;
        if let Some(tags) = tags.as_ref().and_then(Value::as_object) {
            if tags.values().any(|value| !value.is_string()) {
                return Err(Fault::validation("tags must map strings to strings."));
            }
        }
        Ok(StartRequest {
            client_token,
            name,
            execution_role_arn: Some(execution_role_arn),
            release_label: Some(release_label),
            job_driver: Some(job_driver),
            configuration_overrides: object("configurationOverrides")?,
            tags,
            retry_policy_configuration: object("retryPolicyConfiguration")?,
        })
    }
}

fn check_job_driver(driver: &Value) -> Result<(), Fault> {
    let submit = driver.get("sparkSubmitJobDriver");
    let sql = driver.get("sparkSqlJobDriver");
    match (submit, sql) {
        (Some(submit), None) => {
            match submit.get("entryPoint") {
                Some(Value::String(entry)) if !entry.is_empty() => {}
                _ => {
                    return Err(Fault::validation(
                        "jobDriver.sparkSubmitJobDriver.entryPoint is required.",
                    ))
                }
            }
            match submit.get("entryPointArguments") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
                Some(_) => return Err(Fault::validation(
                    "jobDriver.sparkSubmitJobDriver.entryPointArguments must be a list of strings.",
                )),
            }
            match submit.get("sparkSubmitParameters") {
                None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
                Some(_) => Err(Fault::validation(
                    "jobDriver.sparkSubmitJobDriver.sparkSubmitParameters must be a string.",
                )),
            }
        }
        (None, Some(_)) => Ok(()),
        _ => Err(Fault::validation(
            "jobDriver must hold exactly one of sparkSubmitJobDriver and sparkSqlJobDriver.",
        )),
    }
}
