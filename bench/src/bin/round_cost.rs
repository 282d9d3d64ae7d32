//! What one round of looking for ended jobs costs in backend calls, for 10, 100 and 1,000
//! tracked runs: before (one DescribeJobRun, GetJobRun or DescribeStep per run) and after
//! (reads in batches: a page of active runs per ListJobRuns or ListSteps, then a read of
//! each run that ended).
//! The backends are the service's own, in process, against the fakes, which count every
//! call they receive. 1% of the runs (at least one) ended since the previous round.
//!
//!     cargo run --release -p multiomix-bench --bin round_cost

use std::collections::BTreeMap;

use aws_sdk_emrcontainers::config::{BehaviorVersion, Credentials, Region};
use multiomix_aws_emr::backend::emr::ec2::{token_tag, EmrEc2Backend};
use multiomix_aws_emr::backend::emr::eks::EmrEksBackend;
use multiomix_aws_emr::backend::emr::serverless::EmrServerlessBackend;
use multiomix_aws_emr::backend::emr::{CALLBACK_HOST_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE};
use multiomix_aws_emr::backend::JobBackend;
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::job::JobId;
use multiomix_fakes::{
    FakeEmr, FakeEmrEc2, FakeEmrServerless, JobState, NewJob, RunState, StepState,
};

const SIZES: [usize; 3] = [10, 100, 1_000];
const SERVICE: &str = "multiomix-aws-emr";

fn credentials() -> Credentials {
    Credentials::new("AKIDBENCH", "bench-secret", None, None, "bench")
}

fn config(vars: &[(&str, &str)]) -> Config {
    let mut all = vec![
        (
            "EMR_EXECUTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/job",
        ),
        ("EMR_S3_BUCKET", "bench-bucket"),
    ];
    all.extend_from_slice(vars);
    Config::from_vars(all.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

fn own_tags() -> BTreeMap<String, String> {
    [
        (MANAGED_BY_TAG.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (CALLBACK_HOST_TAG.to_owned(), SERVICE.to_owned()),
    ]
    .into()
}

/// Calls counted by a fake, before and after one round.
struct Round {
    reads: usize,
    lists: usize,
}

async fn measure(
    backend: &dyn JobBackend,
    ids: &[JobId],
    ended: usize,
    calls: impl Fn() -> (usize, usize),
) -> (Round, Round) {
    let (r0, l0) = calls();
    for id in ids {
        backend.describe(id).await.expect("a read");
    }
    let (r1, l1) = calls();
    let described = backend.describe_batch(ids).await.expect("a batch");
    let (r2, l2) = calls();
    let finals = described
        .iter()
        .filter(|(_, run)| run.as_ref().expect("every run read").state.is_final())
        .count();
    assert_eq!(finals, ended, "the batch sees exactly the runs that ended");
    (
        Round {
            reads: r1 - r0,
            lists: l1 - l0,
        },
        Round {
            reads: r2 - r1,
            lists: l2 - l1,
        },
    )
}

async fn emr_eks(n: usize) -> (Round, Round) {
    let fake = FakeEmr::builder()
        .record_start_requests(false)
        .start()
        .await;
    let c = config(&[("EMR_VIRTUAL_CLUSTER_ID", fake.virtual_cluster_id())]);
    let client = aws_sdk_emrcontainers::Client::from_conf(
        aws_sdk_emrcontainers::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(credentials())
            .endpoint_url(fake.url())
            .build(),
    );
    let backend = EmrEksBackend::with_client(
        client,
        c.backend.emr_eks().cloned().unwrap(),
        c.spark,
        c.job,
    );
    let ids: Vec<String> = (0..n)
        .map(|_| {
            fake.insert_job(NewJob {
                state: JobState::Running,
                tags: own_tags(),
                ..NewJob::default()
            })
        })
        .collect();
    let ended = ended(n);
    for id in &ids[..ended] {
        fake.set_state(id, JobState::Completed, None, None);
    }
    let ids: Vec<JobId> = ids.iter().map(|i| JobId::parse(i).unwrap()).collect();
    measure(&backend, &ids, ended, || {
        (fake.calls("DescribeJobRun"), fake.calls("ListJobRuns"))
    })
    .await
}

async fn emr_serverless(n: usize) -> (Round, Round) {
    let fake = FakeEmrServerless::start().await;
    let c = config(&[
        ("JOB_BACKEND", "emr-serverless"),
        ("EMR_SERVERLESS_APPLICATION_ID", fake.application_id()),
    ]);
    let client = aws_sdk_emrserverless::Client::from_conf(
        aws_sdk_emrserverless::Config::builder()
            .behavior_version(aws_sdk_emrserverless::config::BehaviorVersion::latest())
            .region(aws_sdk_emrserverless::config::Region::new("us-east-1"))
            .credentials_provider(credentials())
            .endpoint_url(fake.url())
            .build(),
    );
    let backend = EmrServerlessBackend::with_client(
        client,
        c.backend.emr_serverless().cloned().unwrap(),
        c.spark,
        c.job,
    );
    let tags: Vec<(String, String)> = own_tags().into_iter().collect();
    let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ids = fake.insert_runs(n, RunState::Running, &tags);
    let ended = ended(n);
    for id in &ids[..ended] {
        fake.set_state(id, RunState::Success, "");
    }
    let ids: Vec<JobId> = ids.iter().map(|i| JobId::parse(i).unwrap()).collect();
    measure(&backend, &ids, ended, || {
        (fake.calls("GetJobRun"), fake.calls("ListJobRuns"))
    })
    .await
}

async fn emr_ec2(n: usize) -> (Round, Round) {
    let fake = FakeEmrEc2::start().await;
    let c = config(&[
        ("JOB_BACKEND", "emr-ec2"),
        ("EMR_CLUSTER_ID", fake.cluster_id()),
    ]);
    let client = aws_sdk_emr::Client::from_conf(
        aws_sdk_emr::Config::builder()
            .behavior_version(aws_sdk_emr::config::BehaviorVersion::latest())
            .region(aws_sdk_emr::config::Region::new("us-east-1"))
            .credentials_provider(credentials())
            .endpoint_url(fake.url())
            .build(),
    );
    let backend = EmrEc2Backend::with_client(
        client,
        c.backend.emr_ec2().cloned().unwrap(),
        c.spark,
        c.job,
    );
    // The service's steps carry its YARN tag among their arguments.
    let tag = format!("spark.yarn.tags={}", token_tag("bench"));
    let ids = fake.insert_steps(n, "bench", StepState::Running, &["--conf", &tag]);
    let ended = ended(n);
    for id in &ids[..ended] {
        fake.set_state(id, StepState::Completed, "");
    }
    let ids: Vec<JobId> = ids
        .iter()
        .map(|i| multiomix_aws_emr::backend::emr::ec2::job_id(i).unwrap())
        .collect();
    measure(&backend, &ids, ended, || {
        (fake.calls("DescribeStep"), fake.calls("ListSteps"))
    })
    .await
}

fn ended(n: usize) -> usize {
    (n / 100).max(1)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        println!("backend calls per round, tracked runs not final at the last round (1% ended since, at least 1)");
        println!(
            "{:<16} {:>8} {:>8}   {:>22}   {:>32}",
            "backend", "tracked", "ended", "before: reads (calls)", "after: lists + reads = calls"
        );
        for n in SIZES {
            for (name, (before, after)) in [
                ("emr-eks", emr_eks(n).await),
                ("emr-serverless", emr_serverless(n).await),
                ("emr-ec2", emr_ec2(n).await),
            ] {
                println!(
                    "{:<16} {:>8} {:>8}   {:>22}   {:>32}",
                    name,
                    n,
                    ended(n),
                    format!("{} ({})", before.reads, before.reads + before.lists),
                    format!(
                        "{} + {} = {}",
                        after.lists,
                        after.reads,
                        after.lists + after.reads
                    ),
                );
            }
        }
    });
}
