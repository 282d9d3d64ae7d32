//! The job model: what Multiomix asks for, what a backend reports, and what the API shows.

mod backend_kind;
pub mod body;
mod validate;

pub use backend_kind::BackendKind;

pub use validate::{
    is_relative_inside, is_valid_app_name, validate_request, FieldError, APP_NAME_RULE,
    DATASET_ARGUMENTS, MAX_ARGUMENTS, MAX_ARGUMENTS_BYTES, MAX_ARGUMENT_NAME_CHARS, MAX_BODY_BYTES,
    MAX_VALUE_CHARS,
};

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

/// The feature-selection algorithms Multiomix can run, by the integer it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    BlindSearch = 0,
    Bbha = 1,
}

impl Algorithm {
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Algorithm::BlindSearch),
            1 => Some(Algorithm::Bbha),
            _ => None,
        }
    }

    pub fn code(self) -> i64 {
        self as i64
    }

    /// The name used in `ALGO_<NAME>_*` variables.
    pub fn env_name(self) -> &'static str {
        match self {
            Algorithm::BlindSearch => "BLIND_SEARCH",
            Algorithm::Bbha => "BBHA",
        }
    }

    /// The name in generated job names: lower case, `_` as `-`.
    pub fn slug(self) -> &'static str {
        match self {
            Algorithm::BlindSearch => "blind-search",
            Algorithm::Bbha => "bbha",
        }
    }
}

/// A job run id, checked before it reaches a backend or a URL.
///
/// EMR ids are 19 characters of `[0-9a-z]`; anything of `[0-9a-z]{1,64}` is accepted so
/// ids from other backends and future formats still work, and so is `s-[0-9a-z]{1,62}`,
/// EMR on EC2's step ids in lower case, which no other backend's id can equal. Every such
/// id is safe in a URL path segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix("s-").unwrap_or(raw);
        let ok = !body.is_empty()
            && raw.len() <= 64
            && body
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
        ok.then(|| JobId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A job id read as text: what tests and logs compare it with.
impl PartialEq<&str> for JobId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job name that is safe for EMR and for the spark-submit parameter string:
/// 1 to 64 characters of `[.\-_/#A-Za-z0-9]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobName(String);

impl JobName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_CHARS
            && raw.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b'#')
            });
        ok.then(|| JobName(raw.to_owned()))
    }

    /// `multiomix-<algorithm>-<6 lowercase letters>-<6 digits>`, as the old service named
    /// jobs that came without a name.
    pub fn generate(algorithm: Algorithm) -> Self {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let letters: String = (0..6)
            .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
            .collect();
        let digits: String = (0..6)
            .map(|_| char::from(rng.gen_range(b'0'..=b'9')))
            .collect();
        JobName(format!("multiomix-{}-{letters}-{digits}", algorithm.slug()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated request to start a job. Argument values are already text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    pub name: JobName,
    pub algorithm: Algorithm,
    /// `(name, value)` in request order; names are checked, values are opaque text.
    pub arguments: Vec<(String, String)>,
    /// The job's own token for its progress reports, handed to its driver as
    /// `PROGRESS_TOKEN`; drawn by `POST /job`, never taken from the request.
    pub progress_token: Option<ProgressToken>,
}

/// The secret a job's progress reports carry (`PROGRESS_TOKEN` in its driver): one per
/// job, random, so that a report is taken only for the job it names. It is in the job's
/// parameters, visible to whoever can describe the run, and opens nothing but that job's
/// progress. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProgressToken(String);

impl ProgressToken {
    /// 256 random bits, as 64 lowercase hex digits (safe in a spark-submit parameter).
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        ProgressToken(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A token read back from the store.
    pub fn from_stored(token: String) -> Self {
        ProgressToken(token)
    }

    /// The token itself, for the one place that hands it to the job or stores it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, compared in constant time (SHA-256 digests, so
    /// that neither the first wrong byte nor the length shows in the time taken).
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let presented = Sha256::digest(presented.as_bytes());
        let expected = Sha256::digest(self.0.as_bytes());
        bool::from(presented.ct_eq(&expected))
    }
}

impl fmt::Debug for ProgressToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressToken([redacted])")
    }
}

impl JobSpec {
    /// The `app-name` argument, which Multiomix uses to name the job's result folder.
    pub fn app_name(&self) -> Option<&str> {
        self.arguments
            .iter()
            .find(|(name, _)| name == "app-name")
            .map(|(_, value)| value.as_str())
    }

    /// Where the `app-name` argument is in the request, for an answer that names it.
    pub fn app_name_field(&self) -> String {
        self.arguments
            .iter()
            .position(|(name, _)| name == "app-name")
            .map(|i| format!("entrypoint_arguments[{i}].value"))
            .unwrap_or_else(|| "entrypoint_arguments".into())
    }
}

/// EMR's job run states, which the API passes through unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Pending,
    Submitted,
    Running,
    Failed,
    Cancelled,
    CancelPending,
    Completed,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Pending,
        JobState::Submitted,
        JobState::Running,
        JobState::Failed,
        JobState::Cancelled,
        JobState::CancelPending,
        JobState::Completed,
    ];

    /// Only a job in a final state gets its job-end notice.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Submitted => "SUBMITTED",
            JobState::Running => "RUNNING",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::CancelPending => "CANCEL_PENDING",
            JobState::Completed => "COMPLETED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job run as a backend reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRun {
    pub id: JobId,
    pub name: String,
    pub state: JobState,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub state_details: Option<String>,
    pub failure_reason: Option<String>,
    /// Where the job's logs are (an S3 prefix, a local file, the driver's log page).
    pub log_location: Option<String>,
    /// Links to the driver's log and the Spark UI, where the backend gives them (boxed:
    /// most runs have none).
    pub links: Option<Box<RunLinks>>,
    /// The tags the backend keeps with the run (empty where it keeps none): what tells
    /// this deployment's runs from another's.
    pub tags: BTreeMap<String, String>,
    /// Whether the backend's own marks say this deployment started the run (on EMR, its
    /// `managed-by` and `callback-host` tags). A backend whose runs can only be this
    /// service's (the local one) says true. The API answers 404 for a run that is neither
    /// this nor in the store, so that deployments sharing a virtual cluster cannot read
    /// or cancel each other's jobs.
    pub ours: bool,
}

/// Where to look at a run: links the backend gives (Livy's `appInfo`), none elsewhere.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunLinks {
    /// The Spark driver's log (on YARN, its NodeManager's log page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_log: Option<String>,
    /// The application's Spark UI (on YARN, through the ResourceManager's proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spark_ui: Option<String>,
}

impl RunLinks {
    pub fn is_empty(&self) -> bool {
        self.driver_log.is_none() && self.spark_ui.is_none()
    }
}

/// How the delivery of a job's end notice stands, for `GET /job/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoticeView {
    /// `waiting` (the job is not final yet), `fetching` (COMPLETED; its results are being
    /// copied into the shared results folder first, with `DATA_STAGING=s3`), `pending`
    /// (being delivered), then `delivered`, `refused`, `given_up` or `abandoned`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Tries to copy the job's results so far.
    pub results_fetch_attempts: i64,
    /// Why the last try (a read of the job, a copy of results or a delivery) failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The progress of a job as `GET /job/{id}` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressView {
    /// BBHA: 0 once the initial stars are evaluated, then one per iteration. Blind
    /// Search: chunks of subsets done.
    pub iteration: i64,
    pub iterations: i64,
    /// The best fitness so far (the black hole's, for BBHA); null while none is finite.
    pub best_fitness: Option<f64>,
    /// Molecules in the best subset so far.
    pub molecules: i64,
    pub evaluations_done: i64,
    pub evaluations_total: i64,
    /// When the job wrote the report, in the format of `createdAt`.
    #[schema(pattern = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00:00$")]
    pub updated_at: String,
    /// Seconds to the end at the pace so far; null when unknown (no evaluation yet) or
    /// when the job has ended.
    #[schema(minimum = 0)]
    pub eta_seconds: Option<u64>,
}

/// The job as the API shows it and as the job-end notice carries it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: String,
    pub name: String,
    pub state: JobState,
    /// `YYYY-MM-DD HH:MM:SS+00:00`, what Multiomix's `strptime` expects.
    #[schema(pattern = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00:00$")]
    pub created_at: String,
    /// Same format as `createdAt`; null until the job ends.
    #[schema(pattern = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00:00$")]
    pub finished_at: Option<String>,
    pub state_details: Option<String>,
    pub failure_reason: Option<String>,
    pub log_uri: Option<String>,
    /// Links to the driver's log and the Spark UI, when the backend gives them (Livy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<RunLinks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<NoticeView>,
    /// How far the job has come, from its own progress reports: absent until the first
    /// report is read (and for a job whose reports the service cannot read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressView>,
}

impl From<&JobRun> for JobView {
    fn from(run: &JobRun) -> Self {
        JobView {
            id: run.id.to_string(),
            name: run.name.clone(),
            state: run.state,
            created_at: format_date(run.created_at),
            finished_at: run.finished_at.map(format_date),
            state_details: run.state_details.clone(),
            failure_reason: run.failure_reason.clone(),
            log_uri: run.log_location.clone(),
            links: run.links.as_deref().filter(|l| !l.is_empty()).cloned(),
            notice: None,
            progress: None,
        }
    }
}

const DATE_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]+00:00");

/// Formats a moment in UTC, whole seconds: `2023-06-29 17:08:56+00:00`.
pub fn format_date(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(DATE_FORMAT)
        .expect("the date format has only numeric components")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dates_are_utc_whole_seconds_with_a_space_and_an_explicit_offset() {
        let at = datetime!(2023-06-29 19:08:56.789 +02:00);
        assert_eq!(format_date(at), "2023-06-29 17:08:56+00:00");
    }

    #[test]
    fn formatted_dates_parse_with_the_format_multiomix_uses() {
        // Multiomix: strptime(value, '%Y-%m-%d %H:%M:%S+00:00')
        let s = format_date(datetime!(2024-01-02 03:04:05 UTC));
        let (date, rest) = s.split_once(' ').unwrap();
        assert_eq!(date.len(), 10);
        assert!(rest.ends_with("+00:00"));
        assert_eq!(rest.trim_end_matches("+00:00"), "03:04:05");
        assert!(!s.contains('T') && !s.contains('Z') && !s.contains('.'));
    }

    #[test]
    fn generated_names_follow_the_old_pattern_and_are_valid() {
        for alg in [Algorithm::BlindSearch, Algorithm::Bbha] {
            let name = JobName::generate(alg);
            let s = name.as_str();
            let prefix = format!("multiomix-{}-", alg.slug());
            assert!(s.starts_with(&prefix), "{s}");
            let rest = &s[prefix.len()..];
            let (letters, digits) = rest.split_once('-').unwrap();
            assert_eq!(letters.len(), 6);
            assert!(letters.bytes().all(|b| b.is_ascii_lowercase()), "{s}");
            assert_eq!(digits.len(), 6);
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{s}");
            assert!(JobName::parse(s).is_some());
        }
        assert_eq!(
            JobName::generate(Algorithm::BlindSearch).as_str().len(),
            "multiomix-blind-search-abcdef-123456".len()
        );
    }

    #[test]
    fn job_ids_are_lowercase_alphanumerics_or_step_ids_only() {
        assert!(JobId::parse("000000031kd8aj0vtn3").is_some());
        assert!(JobId::parse("s-2v57yi7t5nf42").is_some());
        for bad in [
            "",
            "ABC",
            "-ab",
            "ab-",
            "../x",
            "a b",
            "a/b",
            "a.b",
            "a_b",
            &"a".repeat(65),
        ] {
            assert!(JobId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn job_names_refuse_anything_outside_the_emr_alphabet() {
        assert!(JobName::parse("BreastCancer_BBHA-1.0/#x").is_some());
        assert!(JobName::parse(&"n".repeat(64)).is_some());
        for bad in [
            "",
            "with space",
            "x --conf spark.driver.extraJavaOptions=-Dx",
            "tab\tname",
            "new\nline",
            "ñame",
            &"n".repeat(65),
        ] {
            assert!(JobName::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn progress_tokens_are_256_random_bits_in_hex_and_never_printed() {
        let a = ProgressToken::generate();
        let b = ProgressToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert!(a.matches(a.expose()));
        assert!(!a.matches(b.expose()));
        assert!(!a.matches(""));
        assert!(!a.matches(&a.expose()[..63]));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn only_completed_failed_and_cancelled_are_final() {
        let finals: Vec<_> = JobState::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(
            finals,
            vec![JobState::Failed, JobState::Cancelled, JobState::Completed]
        );
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
