//! The way in: the datasets a request names are copied from the service's mount of
//! Multiomix's datasets folder to `S3_DATASETS_PREFIX` before the job starts.
//!
//! Only the files named by [`STAGED_ARGUMENTS`] are uploaded, each under the same relative
//! path it has in the shared folder, and only from inside that folder: a path with `..`,
//! an absolute path, or one that leads out through a symbolic link is refused with the
//! argument that named it.

use std::path::{Component, Path, PathBuf};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{failure, hex, Failure, Staging};
use crate::job::{FieldError, JobSpec};

/// The request arguments that name a dataset file, relative to `SHARED_DATASETS_DIR`.
pub const STAGED_ARGUMENTS: &[&str] = crate::job::DATASET_ARGUMENTS;

/// Files up to this size go up in one `PutObject`; larger ones in parts of this size.
pub const MULTIPART_PART_BYTES: u64 = 8 * 1024 * 1024;

/// The user metadata key that holds the SHA-256 (hex) of the whole file, so that a
/// retried request can tell that an object is already there, multipart or not.
const SHA256_METADATA: &str = "sha256";

/// One file to upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedFile {
    /// The argument that named it (`molecules-dataset`).
    pub argument: String,
    /// The path as the request gave it, and the key under the prefix.
    pub relative: String,
    /// Where it is on this machine, symbolic links resolved.
    pub local: PathBuf,
}

/// Why the files of a request cannot be staged.
#[derive(Debug)]
pub enum FilesError {
    /// A path the request names is refused: a 400 naming its field.
    Invalid(FieldError),
    /// The shared datasets folder itself cannot be read.
    Folder(String),
}

/// Why an upload failed; no job starts.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// S3 could not be reached or did not answer in time.
    #[error("cannot upload {argument} '{relative}' to {target}: {why}")]
    Unavailable {
        argument: String,
        relative: String,
        target: String,
        why: String,
    },
    /// S3 answered with a refusal (access denied, no such bucket, ...), or the file
    /// could not be read.
    #[error("cannot upload {argument} '{relative}' to {target}: {why}")]
    Refused {
        argument: String,
        relative: String,
        target: String,
        why: String,
    },
}

impl Staging {
    /// The files `spec` names, checked: each is a file inside `SHARED_DATASETS_DIR`, in
    /// the folder of the job's `app-name` (one plain folder name, checked at the door). The job's
    /// pods copy only `datasets/<app-name>/`, its results come back under
    /// `results/<app-name>/`, and its datasets are deleted by that prefix.
    pub fn files(&self, spec: &JobSpec) -> Result<Vec<StagedFile>, FilesError> {
        let app = spec.app_name().unwrap_or_default();
        // The app name follows the one rule (`job::APP_NAME_RULE`), checked at the door.
        // Checked at start-up; a mount that has gone since is the service's problem.
        let root = self.settings.datasets_dir.canonicalize().map_err(|e| {
            FilesError::Folder(format!(
                "the shared datasets folder '{}' cannot be read: {e}",
                self.settings.datasets_dir.display()
            ))
        })?;
        let mut files = Vec::new();
        for (i, (name, value)) in spec.arguments.iter().enumerate() {
            if !STAGED_ARGUMENTS.contains(&name.as_str()) {
                continue;
            }
            let field = format!("entrypoint_arguments[{i}].value");
            let refuse = |why: String| {
                FilesError::Invalid(FieldError {
                    field: field.clone(),
                    message: format!("{name} '{value}' {why}"),
                })
            };
            let relative = Path::new(value);
            if value.is_empty()
                || relative.is_absolute()
                || !relative
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
            {
                return Err(refuse(
                    "must be a path inside the datasets folder (relative, without '..')".into(),
                ));
            }
            let local = root
                .join(relative)
                .canonicalize()
                .map_err(|e| refuse(format!("cannot be read: {e}")))?;
            if !local.starts_with(&root) {
                return Err(refuse("leads out of the datasets folder".into()));
            }
            if !local.is_file() {
                return Err(refuse("is not a file".into()));
            }
            if relative
                .components()
                .find(|c| matches!(c, Component::Normal(_)))
                != Some(Component::Normal(app.as_ref()))
                || !local.starts_with(root.join(app))
            {
                return Err(refuse(format!(
                    "must be in the folder of app-name '{app}/': the job's pods are given \
                     only that folder"
                )));
            }
            let key = relative
                .components()
                .filter_map(|c| match c {
                    Component::Normal(part) => part.to_str(),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("/");
            files.push(StagedFile {
                argument: name.clone(),
                relative: key,
                local,
            });
        }
        Ok(files)
    }

    /// The object key of a file.
    pub fn key(&self, file: &StagedFile) -> String {
        format!("{}{}", self.settings.datasets.prefix, file.relative)
    }

    /// Makes S3 ready for a new run of `app`: uploads every file the request names (a
    /// file already there with the same SHA-256 is not uploaded again, so a retried
    /// request uploads nothing twice), then empties `results/<app>/`, so that the run's
    /// results folder holds only what this run writes. Bounded by
    /// `STAGING_UPLOAD_TIMEOUT`, not by the request's own timeout; stopped as soon as
    /// `caller_gone` resolves (the request was dropped), since no job will start then.
    /// A multipart upload stopped half way is aborted.
    pub async fn prepare_run(
        &self,
        app: &str,
        files: &[StagedFile],
        caller_gone: impl std::future::Future<Output = ()>,
    ) -> Result<(), StageError> {
        let work = async {
            for file in files {
                self.upload_one(file).await?;
            }
            self.clear_results(app).await
        };
        let bound = self.settings.upload_timeout;
        let stopped = |why: String| StageError::Unavailable {
            argument: "app-name".into(),
            relative: app.to_owned(),
            target: format!("{}{app}/", self.settings.datasets),
            why,
        };
        tokio::select! {
            done = tokio::time::timeout(bound, work) => done.unwrap_or_else(|_| Err(stopped(format!(
                "the datasets took longer than STAGING_UPLOAD_TIMEOUT ({} s) to upload",
                bound.as_secs_f64()
            )))),
            () = caller_gone => Err(stopped("the request was dropped before its datasets were up".into())),
        }
    }

    async fn upload_one(&self, file: &StagedFile) -> Result<(), StageError> {
        let key = self.key(file);
        let target = format!("s3://{}/{key}", self.settings.datasets.bucket);
        self.put(file, &key).await.map_err(|failure| {
            let (argument, relative) = (file.argument.clone(), file.relative.clone());
            match failure {
                Failure::Unavailable(why) => StageError::Unavailable {
                    argument,
                    relative,
                    target,
                    why,
                },
                Failure::Refused(why) => StageError::Refused {
                    argument,
                    relative,
                    target,
                    why,
                },
                Failure::Read(e) => StageError::Refused {
                    argument,
                    relative,
                    target,
                    why: format!("cannot read the file: {e}"),
                },
            }
        })?;
        Ok(())
    }

    /// Empties `results/<app>/` before a run: what is there is an earlier run's.
    async fn clear_results(&self, app: &str) -> Result<(), StageError> {
        let results = &self.settings.results;
        let prefix = format!("{}{app}/", results.prefix);
        match self.delete_prefix(&results.bucket, &prefix).await {
            Ok(0) => Ok(()),
            Ok(removed) => {
                tracing::info!(app_name = %app, removed, "an earlier run's results removed from S3 before this run");
                Ok(())
            }
            Err(failure) => {
                let (argument, relative) = ("app-name".to_owned(), app.to_owned());
                let target = format!("s3://{}/{prefix}", results.bucket);
                Err(match failure {
                    Failure::Refused(why) => StageError::Refused {
                        argument,
                        relative,
                        target,
                        why: format!("cannot remove an earlier run's results: {why}"),
                    },
                    other => StageError::Unavailable {
                        argument,
                        relative,
                        target,
                        why: format!(
                            "cannot remove an earlier run's results: {}",
                            other.describe()
                        ),
                    },
                })
            }
        }
    }

    async fn put(&self, file: &StagedFile, key: &str) -> Result<(), Failure> {
        let (digest, size) = sha256_of(&file.local).await.map_err(Failure::Read)?;
        let hex = hex(&digest);

        match self
            .client
            .head_object()
            .bucket(&self.settings.datasets.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => {
                let same = head
                    .metadata()
                    .and_then(|m| m.get(SHA256_METADATA))
                    .is_some_and(|seen| *seen == hex);
                if same {
                    tracing::debug!(key = %key, "dataset already staged");
                    return Ok(());
                }
            }
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => {}
            // Without s3:ListBucket (which the policy of docs/data-path.md grants only for
            // listings) S3 answers a missing key with 403 instead of 404: upload, and let
            // PutObject say whether the service may write there.
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 403 => {}
            Err(e) => return Err(failure(e, "HeadObject")),
        }

        if size <= MULTIPART_PART_BYTES {
            let body = ByteStream::from_path(&file.local)
                .await
                .map_err(|e| Failure::Read(std::io::Error::other(e)))?;
            self.client
                .put_object()
                .bucket(&self.settings.datasets.bucket)
                .key(key)
                .metadata(SHA256_METADATA, &hex)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(digest))
                .body(body)
                .send()
                .await
                .map_err(|e| failure(e, "PutObject"))?;
        } else {
            self.multipart(file, key, &hex, size).await?;
        }
        tracing::info!(key = %key, bytes = size, "dataset staged");
        Ok(())
    }

    async fn multipart(
        &self,
        file: &StagedFile,
        key: &str,
        hex: &str,
        size: u64,
    ) -> Result<(), Failure> {
        let bucket = &self.settings.datasets.bucket;
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .metadata(SHA256_METADATA, hex)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| failure(e, "CreateMultipartUpload"))?;
        let upload = Upload {
            client: aws_sdk_s3::Client::clone(&self.client),
            bucket: bucket.clone(),
            key: key.to_owned(),
            id: created.upload_id().unwrap_or_default().to_owned(),
        };
        // Parts left behind are billed until aborted: the upload is aborted on failure,
        // and also when this future is dropped half way (its bound passed, its caller
        // left), by the guard.
        let mut guard = AbortOnDrop(Some(upload.clone()));
        let result = upload.send_parts(&file.local, size).await;
        guard.0 = None;
        if result.is_err() {
            upload.abort().await;
        }
        result
    }

    /// Aborts the multipart uploads under `S3_DATASETS_PREFIX` begun before `before`:
    /// one process writes there, so at start-up they are what a stopped process left.
    /// Returns how many were aborted.
    pub async fn abort_abandoned_uploads(
        &self,
        before: std::time::SystemTime,
    ) -> Result<usize, String> {
        let datasets = &self.settings.datasets;
        let mut aborted = 0;
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&datasets.bucket)
                .prefix(&datasets.prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| failure(e, "ListMultipartUploads").describe())?;
            for u in page.uploads() {
                let begun = u
                    .initiated()
                    .and_then(|t| std::time::SystemTime::try_from(*t).ok());
                if begun.is_some_and(|t| t >= before) {
                    continue;
                }
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                let upload = Upload {
                    client: aws_sdk_s3::Client::clone(&self.client),
                    bucket: datasets.bucket.clone(),
                    key: key.to_owned(),
                    id: id.to_owned(),
                };
                if upload.try_abort().await.is_ok() {
                    aborted += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                return Ok(aborted);
            }
        }
    }
}

/// How many parts of one file are uploaded at once: each holds one part in memory.
pub const UPLOAD_CONCURRENCY: usize = 8;

/// One multipart upload in S3.
#[derive(Clone)]
struct Upload {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    id: String,
}

impl Upload {
    /// Sends the file's parts, [`UPLOAD_CONCURRENCY`] at a time, each read from its
    /// offset, then completes the upload.
    async fn send_parts(&self, path: &Path, size: u64) -> Result<(), Failure> {
        let count = size.div_ceil(MULTIPART_PART_BYTES);
        let next = Arc::new(AtomicU64::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..UPLOAD_CONCURRENCY.min(count as usize) {
            let (upload, next, path) = (self.clone(), next.clone(), path.to_owned());
            workers.spawn(async move {
                let mut sent = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        return Ok::<_, Failure>(sent);
                    }
                    sent.push(upload.send_part(&path, index, size).await?);
                }
            });
        }
        let mut completed = Vec::with_capacity(count as usize);
        // The first failure drops the set, which stops the other workers.
        while let Some(joined) = workers.join_next().await {
            let sent =
                joined.map_err(|e| Failure::Read(std::io::Error::other(e.to_string())))??;
            completed.extend(sent);
        }
        completed.sort_by_key(|p| p.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| failure(e, "CompleteMultipartUpload"))?;
        Ok(())
    }

    /// Part `index` (from 0) of the file.
    async fn send_part(
        &self,
        path: &Path,
        index: u64,
        size: u64,
    ) -> Result<CompletedPart, Failure> {
        let offset = index * MULTIPART_PART_BYTES;
        let len = MULTIPART_PART_BYTES.min(size - offset) as usize;
        let path = path.to_owned();
        let (chunk, checksum) = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let mut file = std::fs::File::open(path)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut chunk = vec![0u8; len];
            file.read_exact(&mut chunk)?;
            let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&chunk));
            Ok::<_, std::io::Error>((chunk, checksum))
        })
        .await
        .map_err(|e| Failure::Read(std::io::Error::other(e.to_string())))?
        .map_err(Failure::Read)?;
        let number = index as i32 + 1;
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .part_number(number)
            .checksum_sha256(&checksum)
            .body(ByteStream::from(chunk))
            .send()
            .await
            .map_err(|e| failure(e, "UploadPart"))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(part.e_tag().map(str::to_owned))
            .checksum_sha256(checksum)
            .build())
    }

    async fn try_abort(&self) -> Result<(), Failure> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .send()
            .await
            .map(drop)
            .map_err(|e| failure(e, "AbortMultipartUpload"))
    }

    async fn abort(&self) {
        if let Err(f) = self.try_abort().await {
            tracing::warn!(key = %self.key, error = %f.describe(), "cannot abort an unfinished multipart upload; it is aborted at the next start-up");
        }
    }
}

/// Aborts its upload when dropped while still set: the future that owned the upload was
/// dropped before it could finish or abort it itself.
struct AbortOnDrop(Option<Upload>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(upload) = self.0.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { upload.abort().await });
            }
        }
    }
}

/// The SHA-256 of a file and its size, read on a blocking thread in large blocks.
async fn sha256_of(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            size += n as u64;
        }
        Ok((hasher.finalize().into(), size))
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))?
}
