//! The settings of each backend, checked: what start-up needs from the variables of the
//! backend it runs. Only the backend `JOB_BACKEND` names is read and checked.

use super::{
    emr_call_timeout, invalid, seconds, BackendKind, BackendSettings, ConfigError, Ec2Settings,
    EmrSettings, LivyCredentials, LivySettings, LocalSettings, Raw, ServerlessSettings,
    SparkMaster, StagingSettings,
};

/// The settings of the backend of `kind`, from its variables.
pub(super) fn settings(
    kind: BackendKind,
    raw: &Raw,
    staging: Option<&StagingSettings>,
) -> Result<BackendSettings, ConfigError> {
    Ok(match kind {
        BackendKind::Emr => {
            BackendSettings::EmrEks(emr(raw, staging.map(|s| s.results.to_string()))?)
        }
        BackendKind::EmrServerless => BackendSettings::EmrServerless(serverless(raw)?),
        BackendKind::EmrEc2 => BackendSettings::EmrEc2(ec2(raw)?),
        BackendKind::Livy => BackendSettings::Livy(livy(raw)?),
        BackendKind::Local => BackendSettings::Local(local(raw)?),
    })
}

/// The local backend: spark-submit on this machine.
fn local(raw: &Raw) -> Result<LocalSettings, ConfigError> {
    if raw.local_max_concurrent == 0 {
        return Err(invalid("LOCAL_MAX_CONCURRENT", "must be at least 1"));
    }
    Ok(LocalSettings {
        spark_submit: raw.spark_submit.clone(),
        spark_master: SparkMaster::parse(&raw.spark_master)
            .map_err(|why| invalid("SPARK_MASTER", why))?,
        scripts_dir: raw.local_scripts_dir.clone(),
        log_dir: raw.local_log_dir.clone(),
        max_concurrent: raw.local_max_concurrent,
        cancel_grace: seconds("LOCAL_CANCEL_GRACE", raw.local_cancel_grace)?,
    })
}

/// EMR on EKS. `staged_results`: with `DATA_STAGING=s3`, the S3 results prefix.
fn emr(raw: &Raw, staged_results: Option<String>) -> Result<EmrSettings, ConfigError> {
    let mut missing = Vec::new();
    if raw.emr_virtual_cluster_id.is_none() {
        missing.push("EMR_VIRTUAL_CLUSTER_ID");
    }
    if raw.emr_execution_role_arn.is_none() {
        missing.push("EMR_EXECUTION_ROLE_ARN");
    }
    if raw.emr_s3_bucket.is_none() {
        missing.push("EMR_S3_BUCKET");
    }
    if !missing.is_empty() {
        return Err(ConfigError::Missing(missing));
    }
    // It travels in the space-separated sparkSubmitParameters (as the driver's
    // PROGRESS_PATH), where whitespace would end it.
    if staged_results
        .as_deref()
        .is_some_and(|p| p.chars().any(char::is_whitespace))
    {
        return Err(invalid(
            "S3_RESULTS_PREFIX",
            "must not contain whitespace on EMR on EKS: it is passed to the driver in sparkSubmitParameters",
        ));
    }
    Ok(EmrSettings {
        virtual_cluster_id: raw.emr_virtual_cluster_id.clone().unwrap_or_default(),
        execution_role_arn: raw.emr_execution_role_arn.clone().unwrap_or_default(),
        s3_bucket: raw.emr_s3_bucket.clone().unwrap_or_default(),
        release_label: raw.emr_release_label.clone(),
        region: raw.aws_default_region.clone(),
        endpoint_url: raw.aws_endpoint_url.clone(),
        service_url: raw.eks_emr_service_url.clone(),
        image: raw.emr_image.clone(),
        driver_template: raw.emr_driver_template.clone(),
        executor_template: raw.emr_executor_template.clone(),
        call_timeout: emr_call_timeout(seconds("REQUEST_TIMEOUT", raw.request_timeout)?),
        annotate_app_name: staged_results.is_some(),
        progress_path: staged_results,
    })
}

/// EMR Serverless.
fn serverless(raw: &Raw) -> Result<ServerlessSettings, ConfigError> {
    let mut missing = Vec::new();
    if raw.emr_serverless_application_id.is_none() {
        missing.push("EMR_SERVERLESS_APPLICATION_ID");
    }
    if raw.emr_execution_role_arn.is_none() {
        missing.push("EMR_EXECUTION_ROLE_ARN");
    }
    if raw.emr_s3_bucket.is_none() {
        missing.push("EMR_S3_BUCKET");
    }
    if !missing.is_empty() {
        return Err(ConfigError::Missing(missing));
    }
    // EMR Serverless accepts 1 minute to 7 days; 0 is not "no timeout" there.
    if let Some(minutes) = raw.emr_serverless_execution_timeout {
        if !(1..=10_080).contains(&minutes) {
            return Err(invalid(
                "EMR_SERVERLESS_EXECUTION_TIMEOUT",
                "must be between 1 and 10080 minutes",
            ));
        }
    }
    Ok(ServerlessSettings {
        application_id: raw
            .emr_serverless_application_id
            .clone()
            .unwrap_or_default(),
        execution_role_arn: raw.emr_execution_role_arn.clone().unwrap_or_default(),
        s3_bucket: raw.emr_s3_bucket.clone().unwrap_or_default(),
        region: raw.aws_default_region.clone(),
        endpoint_url: raw.aws_endpoint_url.clone(),
        service_url: raw.eks_emr_service_url.clone(),
        execution_timeout_minutes: raw.emr_serverless_execution_timeout,
        call_timeout: emr_call_timeout(seconds("REQUEST_TIMEOUT", raw.request_timeout)?),
    })
}

/// EMR on EC2.
fn ec2(raw: &Raw) -> Result<Ec2Settings, ConfigError> {
    let mut missing = Vec::new();
    if raw.emr_cluster_id.is_none() {
        missing.push("EMR_CLUSTER_ID");
    }
    if raw.emr_s3_bucket.is_none() {
        missing.push("EMR_S3_BUCKET");
    }
    if !missing.is_empty() {
        return Err(ConfigError::Missing(missing));
    }
    let cluster_id = raw.emr_cluster_id.clone().unwrap_or_default();
    if !cluster_id.starts_with("j-")
        || cluster_id.len() > 256
        || !cluster_id[2..].bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(invalid(
            "EMR_CLUSTER_ID",
            format!("'{cluster_id}' is not an EMR cluster id (j-...)"),
        ));
    }
    // A failed job must never stop the lab's cluster: TERMINATE_CLUSTER and
    // TERMINATE_JOB_FLOW are refused.
    let action = raw.emr_step_action_on_failure.to_ascii_uppercase();
    if !["CONTINUE", "CANCEL_AND_WAIT"].contains(&action.as_str()) {
        return Err(invalid(
                "EMR_STEP_ACTION_ON_FAILURE",
                format!(
                    "'{}' is not CONTINUE or CANCEL_AND_WAIT (a failed job must not terminate the cluster)",
                    raw.emr_step_action_on_failure
                ),
            ));
    }
    Ok(Ec2Settings {
        cluster_id,
        s3_bucket: raw.emr_s3_bucket.clone().unwrap_or_default(),
        region: raw.aws_default_region.clone(),
        endpoint_url: raw.aws_endpoint_url.clone(),
        action_on_failure: action,
        call_timeout: emr_call_timeout(seconds("REQUEST_TIMEOUT", raw.request_timeout)?),
    })
}

/// The variables without which the backend of `kind` cannot even say where staged data
/// would go: checked before staging, so that start-up names them first.
pub(super) fn required_first(kind: BackendKind, raw: &Raw) -> Result<(), ConfigError> {
    if kind != BackendKind::Livy {
        return Ok(());
    }
    let missing: Vec<&'static str> = [
        ("LIVY_URL", raw.livy_url.is_none()),
        ("LIVY_PACKAGE_URL", raw.livy_package_url.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Missing(missing))
    }
}

/// The bucket of an `s3://bucket/...` URL.
pub(super) fn s3_bucket_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("s3://")?;
    let bucket = rest.split('/').next().unwrap_or_default();
    (!bucket.is_empty()).then_some(bucket)
}

/// Apache Livy.
fn livy(raw: &Raw) -> Result<LivySettings, ConfigError> {
    required_first(BackendKind::Livy, raw)?;
    let url = raw
        .livy_url
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let well_formed = (url.starts_with("http://") || url.starts_with("https://"))
        && url
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty())
        && !url.contains(|c: char| c.is_whitespace() || c == '?' || c == '#');
    if !well_formed {
        return Err(invalid(
            "LIVY_URL",
            format!("'{url}' is not an http(s) URL without query or fragment (http://HOST:8998)"),
        ));
    }
    // The URL is logged and shown; credentials in it would be too.
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid(
            "LIVY_URL",
            "must not carry credentials: set LIVY_USERNAME and LIVY_PASSWORD",
        ));
    }

    let mut package_url = raw.livy_package_url.clone().unwrap_or_default();
    let scheme_ok = package_url.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            && !rest.is_empty()
    });
    // It ends up in the batch's `file` and `pyFiles`, and Spark splits those on commas.
    if !(scheme_ok || package_url.starts_with('/'))
        || package_url.contains(|c: char| c.is_whitespace() || c == ',')
    {
        return Err(invalid(
            "LIVY_PACKAGE_URL",
            format!(
                "'{package_url}' is not a URL the cluster can read the package from \
                 (s3://BUCKET/, hdfs:///apps/multiomix/, an absolute path)"
            ),
        ));
    }
    if !package_url.ends_with('/') {
        package_url.push('/');
    }

    let credentials = match (&raw.livy_username, &raw.livy_password) {
        (Some(username), Some(password)) => Some(LivyCredentials {
            username: username.clone(),
            password: password.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid("LIVY_PASSWORD", "is needed with LIVY_USERNAME"));
        }
        (None, Some(_)) => {
            return Err(invalid("LIVY_USERNAME", "is needed with LIVY_PASSWORD"));
        }
    };
    if credentials
        .as_ref()
        .is_some_and(|c| c.username.contains(':'))
    {
        return Err(invalid(
            "LIVY_USERNAME",
            "must not contain ':' (HTTP Basic separates the user from the password with it)",
        ));
    }

    let prefix = &raw.livy_name_prefix;
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "LIVY_NAME_PREFIX",
            format!("'{prefix}' is not 1 to 64 letters, digits, '.', '_' and '-'"),
        ));
    }

    // Livy takes these as integers (driverCores, executorCores, numExecutors).
    for (name, value, least) in [
        ("EMR_DRIVER_CORES", &raw.emr_driver_cores, 1),
        ("EMR_EXECUTOR_CORES", &raw.emr_executor_cores, 1),
        ("EMR_EXECUTOR_INSTANCES", &raw.emr_executor_instances, 0),
    ] {
        if !value.parse::<u32>().is_ok_and(|n| n >= least) {
            return Err(invalid(
                name,
                format!("'{value}' is not a whole number of at least {least}, as Livy needs"),
            ));
        }
    }

    Ok(LivySettings {
        url,
        package_url,
        credentials,
        proxy_user: raw.livy_proxy_user.clone(),
        queue: raw.livy_queue.clone(),
        name_prefix: prefix.clone(),
        call_timeout: emr_call_timeout(seconds("REQUEST_TIMEOUT", raw.request_timeout)?),
    })
}
