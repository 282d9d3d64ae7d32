//! The three EMR backends, side by side: EMR on EKS ([`eks`]), EMR Serverless
//! ([`serverless`]) and steps on an EMR cluster on EC2 ([`ec2`]), and what they share: the
//! AWS SDK set-up and the sorting of SDK errors ([`aws`]), the tags that mark a run as this
//! deployment's, and AWS times.

pub mod aws;
pub mod ec2;
pub mod eks;
pub mod serverless;

use std::collections::HashMap;

use aws_smithy_types::DateTime;
use time::OffsetDateTime;

/// Tag that marks a job as started by this service.
pub const MANAGED_BY_TAG: &str = "managed-by";
pub const MANAGED_BY_VALUE: &str = "multiomix-aws-emr";
/// Tag that names the deployment (its callback host), so that deployments sharing a
/// virtual cluster each see only their own jobs.
pub const CALLBACK_HOST_TAG: &str = "callback-host";
/// Tag that carries the client token of the submission, so that a job started by a
/// process that died before recording it can be found again (`find_submission`).
pub const CLIENT_TOKEN_TAG: &str = "client-token";

/// Whether a run's tags mark it as started by the deployment whose callback host is
/// `service_url`. Used by the EMR backends that tag their runs
/// (EMR on EC2 marks its steps in `spark.yarn.tags` instead).
pub(crate) fn is_own_tags(tags: Option<&HashMap<String, String>>, service_url: &str) -> bool {
    tags.is_some_and(|t| {
        t.get(MANAGED_BY_TAG).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && t.get(CALLBACK_HOST_TAG).map(String::as_str) == Some(service_url)
    })
}

/// An AWS timestamp as the service's time (to the second); one out of `time`'s range reads
/// as 1970.
pub(crate) fn to_offset(at: &DateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(at.secs()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
