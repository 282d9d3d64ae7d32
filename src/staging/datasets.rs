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
use tokio::io::AsyncReadExt;

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

    /// Uploads every file, one after the other; the first failure stops and says which.
    /// A file already there with the same SHA-256 is not uploaded again, so a retried
    /// request uploads nothing twice.
    pub async fn upload(&self, files: &[StagedFile]) -> Result<(), StageError> {
        for file in files {
            self.upload_one(file).await?;
        }
        Ok(())
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
            // Without s3:ListBucket (which the README's policy leaves out) S3 answers a
            // missing key with 403 instead of 404: upload, and let PutObject say whether
            // the service may write there.
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
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.settings.datasets.bucket)
            .key(key)
            .metadata(SHA256_METADATA, hex)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| failure(e, "CreateMultipartUpload"))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let result = self.parts(file, key, &upload_id, size).await;
        if result.is_err() {
            // Parts left behind are billed until aborted.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.settings.datasets.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn parts(
        &self,
        file: &StagedFile,
        key: &str,
        upload_id: &str,
        size: u64,
    ) -> Result<(), Failure> {
        let mut reader = tokio::fs::File::open(&file.local)
            .await
            .map_err(Failure::Read)?;
        let mut completed = Vec::new();
        let mut sent = 0u64;
        let mut number = 1;
        while sent < size {
            let len = MULTIPART_PART_BYTES.min(size - sent) as usize;
            let mut chunk = vec![0u8; len];
            reader.read_exact(&mut chunk).await.map_err(Failure::Read)?;
            let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&chunk));
            let part = self
                .client
                .upload_part()
                .bucket(&self.settings.datasets.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_sha256(&checksum)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| failure(e, "UploadPart"))?;
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .checksum_sha256(checksum)
                    .build(),
            );
            sent += len as u64;
            number += 1;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.settings.datasets.bucket)
            .key(key)
            .upload_id(upload_id)
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
}

async fn sha256_of(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((hasher.finalize().into(), size))
}
