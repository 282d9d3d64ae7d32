//! The EMR on EKS client against moto's emr-containers server: a peer nobody here wrote,
//! speaking the same protocol as AWS. The same client code the service uses starts, reads,
//! lists and cancels jobs there. The whole Multiomix flow on moto (submit, read, list,
//! cancel, 409, 404, callback, notice) is in the conformance suite (tests/integration/conformance).
//!
//! moto comes from the test virtualenv (`dev/test.sh` creates it). Without it these tests
//! are skipped with a message on a developer's machine, and fail under CI.

use multiomix_aws_emr::backend::emr::eks::EmrEksBackend;
use multiomix_aws_emr::backend::{BackendError, JobBackend, ListQuery};
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::job::{JobId, JobState};

use crate::common::moto::{moto, Moto};
use crate::common::{create_virtual_cluster, emr_client, multiomix_body};

fn config(vc: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("EMR_VIRTUAL_CLUSTER_ID".into(), vc.into()),
        (
            "EMR_EXECUTION_ROLE_ARN".into(),
            "arn:aws:iam::123456789012:role/emr-job".into(),
        ),
        ("EMR_S3_BUCKET".into(), "multiomix-bucket".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_vars(vars).unwrap()
}

fn backend(moto: &Moto, config: &Config) -> EmrEksBackend {
    EmrEksBackend::with_client(
        emr_client(&moto.url),
        config.backend.emr_eks().cloned().unwrap(),
        config.spark.clone(),
        config.job.clone(),
    )
}

fn spec() -> multiomix_aws_emr::job::JobSpec {
    multiomix_aws_emr::job::validate_request(&multiomix_body()).unwrap()
}

#[tokio::test]
async fn the_emr_client_starts_describes_lists_and_cancels_jobs_on_moto() {
    let Some(moto) = moto().await else { return };
    let vc = create_virtual_cluster(&emr_client(&moto.url)).await;
    let config = config(&vc, &[]);
    let emr = backend(&moto, &config);

    emr.check().await.expect("the virtual cluster is there");

    let id = emr.start(&spec(), "token-1").await.expect("StartJobRun");
    assert_eq!(id.as_str().len(), 19);
    let run = emr.describe(&id).await.expect("DescribeJobRun");
    assert_eq!(run.id, id);
    assert_eq!(run.name, "BreastCancerBBHA");
    assert!(
        !run.state.is_final(),
        "a new job is not final: {:?}",
        run.state
    );

    // The request reached moto as the contract says.
    let raw = emr_client(&moto.url)
        .describe_job_run()
        .virtual_cluster_id(&vc)
        .id(id.as_str())
        .send()
        .await
        .unwrap();
    let job_run = raw.job_run().unwrap();
    let driver = job_run
        .job_driver()
        .unwrap()
        .spark_submit_job_driver()
        .unwrap();
    assert_eq!(
        driver.entry_point(),
        "s3://multiomix-bucket/scripts/main.py"
    );
    assert_eq!(
        driver.entry_point_arguments(),
        [
            "--app-name",
            "exp-42-app",
            "--molecules-dataset",
            "exp-42-app/molecules.csv",
            "--n-stars",
            "15",
            "--cv-folds",
            "10"
        ]
    );
    // Exactly the contract's list: the Python workers' memory is added only when set.
    assert!(driver
        .spark_submit_parameters()
        .unwrap()
        .ends_with("--conf spark.kubernetes.driverEnv.JOB_NAME=BreastCancerBBHA"));
    assert_eq!(job_run.release_label(), Some("emr-6.9.0-latest"));
    assert_eq!(
        job_run
            .tags()
            .and_then(|t| t.get("managed-by"))
            .map(String::as_str),
        Some("multiomix-aws-emr")
    );

    // A second job, cancelled: the state filter must keep one and drop the other, both ways,
    // so that neither check can pass on an empty list.
    let other = emr.start(&spec(), "token-2").await.expect("StartJobRun");
    assert_ne!(other, id);
    emr.cancel(&other).await.expect("CancelJobRun");
    let other_state = emr.describe(&other).await.unwrap().state;
    assert!(
        matches!(other_state, JobState::Cancelled | JobState::CancelPending),
        "{other_state:?}"
    );
    let state = emr.describe(&id).await.unwrap().state;
    assert_ne!(state, other_state);

    let page = emr.list(&ListQuery::default()).await.expect("ListJobRuns");
    let ids: Vec<&JobId> = page.jobs.iter().map(|j| &j.id).collect();
    assert!(ids.contains(&&id) && ids.contains(&&other), "{page:?}");
    for (wanted, kept, dropped) in [(state, &id, &other), (other_state, &other, &id)] {
        let filtered = emr
            .list(&ListQuery {
                states: vec![wanted],
                ..ListQuery::default()
            })
            .await
            .unwrap();
        assert!(
            filtered.jobs.iter().any(|j| &j.id == kept),
            "{wanted:?} keeps {kept}: {filtered:?}"
        );
        assert!(
            filtered
                .jobs
                .iter()
                .all(|j| &j.id != dropped && j.state == wanted),
            "{wanted:?} drops {dropped}: {filtered:?}"
        );
    }

    emr.cancel(&id).await.expect("CancelJobRun");
    let run = emr.describe(&id).await.unwrap();
    assert!(matches!(
        run.state,
        JobState::Cancelled | JobState::CancelPending
    ));
    match emr.cancel(&id).await {
        Err(BackendError::Conflict(msg)) => assert!(msg.contains(id.as_str()), "{msg}"),
        other => panic!("cancelling twice should be a conflict, got {other:?}"),
    }

    let unknown = JobId::parse("0000000000000000000").unwrap();
    assert!(matches!(
        emr.describe(&unknown).await,
        Err(BackendError::NotFound)
    ));
    assert!(matches!(
        emr.cancel(&unknown).await,
        Err(BackendError::NotFound)
    ));
}

#[tokio::test]
async fn an_unknown_virtual_cluster_is_refused_by_moto() {
    let Some(moto) = moto().await else { return };
    let config = config("doesnotexist0000000000000", &[]);
    let emr = backend(&moto, &config);
    // moto answers ValidationException naming the cluster where EMR documents
    // ResourceNotFoundException too; either way a refusal, not an outage, and not any
    // error (a refused connection is one too). The fake EMR covers ResourceNotFound.
    for (operation, result) in [
        ("DescribeVirtualCluster", emr.check().await.map(|_| ())),
        ("StartJobRun", emr.start(&spec(), "t").await.map(|_| ())),
    ] {
        match result {
            Err(BackendError::Rejected(msg))
                if msg.contains("ValidationException")
                    && msg.contains("doesnotexist0000000000000") => {}
            Err(BackendError::NotFound) => {}
            other => panic!("{operation} in an unknown cluster: {other:?}"),
        }
    }
}
