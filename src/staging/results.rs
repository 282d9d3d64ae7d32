//! The way back: a completed job leaves its results under
//! `S3_RESULTS_PREFIX<app-name>/` (the job package or the driver pod's sidecar puts them
//! there, `result.json` last). Before the job's notice is sent they are copied into
//! `SHARED_RESULTS_DIR/<app-name>/`, where Multiomix reads them when the notice says
//! COMPLETED.
//!
//! The copy goes into a hidden folder next to the target and is renamed into place once
//! every file is on disk, so Multiomix never sees half a folder. Once the notice is
//! delivered, the job's staged datasets can be deleted from S3.

use std::path::{Component, Path, PathBuf};

use aws_sdk_s3::types::{ChecksumMode, Delete, ObjectIdentifier};
use tokio::io::AsyncWriteExt;

use super::{failure, Failure, Staging};

/// What a download brought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub files: usize,
    pub bytes: u64,
}

/// Why a job's results are not in the shared folder yet. Every kind is retried: the
/// notice waits for its results.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The job's folder in S3 has no `result.json`: its upload has not finished (the
    /// sidecar uploads after the driver ends), or it never ran.
    #[error("no result.json under {0} yet")]
    NotReady(String),
    /// S3 could not be reached, or refused (access denied, no such bucket).
    #[error("cannot download the results from {from}: {why}")]
    S3 { from: String, why: String },
    /// The shared results folder could not be written.
    #[error("cannot write the results into {target}: {why}")]
    Local { target: String, why: String },
    /// An object's key cannot be a file in the results folder (`..`, empty parts).
    #[error("refusing the object s3://{bucket}/{key}: {why}")]
    Invalid {
        bucket: String,
        key: String,
        why: String,
    },
    /// The whole download took longer than `RESULTS_FETCH_TIMEOUT`.
    #[error("the download from {0} took longer than RESULTS_FETCH_TIMEOUT")]
    TimedOut(String),
}

impl FetchError {
    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::NotReady(_) => "not_ready",
            FetchError::S3 { .. } => "s3",
            FetchError::Local { .. } => "local",
            FetchError::Invalid { .. } => "invalid",
            FetchError::TimedOut(_) => "timed_out",
        }
    }
}

/// One object of a job's results.
struct Object {
    key: String,
    relative: PathBuf,
    size: u64,
}

/// Marks the hidden folders a download works in, so that one left by a process that
/// stopped mid-download is recognised and removed.
const INCOMING: &str = ".incoming-";
const REPLACED: &str = ".replaced-";

impl Staging {
    /// `s3://bucket/results/<app>/`.
    pub fn results_source(&self, app: &str) -> String {
        format!("{}{app}/", self.settings.results)
    }

    /// `SHARED_RESULTS_DIR/<app>`.
    pub fn results_target(&self, app: &str) -> PathBuf {
        self.settings.results_dir.join(app)
    }

    /// Copies `results/<app>/` into `SHARED_RESULTS_DIR/<app>/`, replacing what was
    /// there. Bounded by `RESULTS_FETCH_TIMEOUT`.
    pub async fn fetch_results(&self, app: &str) -> Result<Fetched, FetchError> {
        let source = self.results_source(app);
        if !crate::job::is_valid_app_name(app) {
            // Checked when the job was started; a job adopted from EMR was not.
            return Err(FetchError::Local {
                target: self.settings.results_dir.display().to_string(),
                why: format!("'{app}' cannot name a folder there"),
            });
        }
        let work = async {
            let objects = self.list_results(app).await?;
            if !objects
                .iter()
                .any(|o| o.relative == Path::new("result.json"))
            {
                return Err(FetchError::NotReady(source.clone()));
            }
            self.remove_leftovers(app).await;
            let incoming = self
                .settings
                .results_dir
                .join(format!(".{app}{INCOMING}{}", uuid::Uuid::new_v4().simple()));
            let copied = self.download_all(&objects, &incoming).await;
            let placed = match copied {
                Ok(fetched) => self.put_in_place(app, &incoming).await.map(|()| fetched),
                Err(e) => Err(e),
            };
            if placed.is_err() {
                let _ = tokio::fs::remove_dir_all(&incoming).await;
            }
            placed
        };
        match tokio::time::timeout(self.settings.fetch_timeout, work).await {
            Ok(outcome) => outcome,
            // The hidden folder it left is removed by the next try.
            Err(_) => Err(FetchError::TimedOut(source)),
        }
    }

    /// Whether the job left `result.json` in its S3 results folder: what tells a job that
    /// did its work from one whose cluster only says so (Livy reports `success` whenever
    /// spark-submit exits 0, even for a Spark application that failed). The job writes
    /// the file last, so its presence means the rest is there too.
    pub async fn has_result_json(&self, app: &str) -> Result<bool, FetchError> {
        let bucket = &self.settings.results.bucket;
        let key = format!("{}{app}/result.json", self.settings.results.prefix);
        let page = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&key)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| FetchError::S3 {
                from: self.results_source(app),
                why: failure(e, "ListObjectsV2").describe(),
            })?;
        Ok(page
            .contents()
            .iter()
            .any(|o| o.key() == Some(key.as_str())))
    }

    async fn list_results(&self, app: &str) -> Result<Vec<Object>, FetchError> {
        let bucket = &self.settings.results.bucket;
        let prefix = format!("{}{app}/", self.settings.results.prefix);
        let source = self.results_source(app);
        let keys = self
            .list_keys(bucket, &prefix)
            .await
            .map_err(|f| FetchError::S3 {
                from: source.clone(),
                why: f.describe(),
            })?;
        let mut objects = Vec::with_capacity(keys.len());
        for (key, size) in keys {
            let rest = &key[prefix.len()..];
            // A "folder" made in the console is an empty object whose key ends in `/`.
            if rest.is_empty() || rest.ends_with('/') {
                continue;
            }
            let relative = Path::new(rest);
            let plain = rest
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..")
                && relative
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)));
            if !plain {
                return Err(FetchError::Invalid {
                    bucket: bucket.clone(),
                    key,
                    why: "its path below the job's folder has empty, '.' or '..' parts".into(),
                });
            }
            objects.push(Object {
                relative: relative.to_path_buf(),
                key,
                size,
            });
        }
        Ok(objects)
    }

    /// Every key under `prefix`, with its size.
    async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, Failure> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| failure(e, "ListObjectsV2"))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    keys.push((key.to_owned(), object.size().unwrap_or(0).max(0) as u64));
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(keys),
            }
        }
    }

    async fn download_all(
        &self,
        objects: &[Object],
        incoming: &Path,
    ) -> Result<Fetched, FetchError> {
        let local = |e: std::io::Error| FetchError::Local {
            target: incoming.display().to_string(),
            why: e.to_string(),
        };
        tokio::fs::create_dir_all(incoming).await.map_err(local)?;
        let mut bytes = 0;
        for object in objects {
            bytes += self
                .download(object, &incoming.join(&object.relative))
                .await?;
        }
        Ok(Fetched {
            files: objects.len(),
            bytes,
        })
    }

    /// One object into `path`, its checksum checked when it has one, flushed to disk.
    async fn download(&self, object: &Object, path: &Path) -> Result<u64, FetchError> {
        let bucket = &self.settings.results.bucket;
        let source = format!("s3://{bucket}/{}", object.key);
        let s3 = |why: String| FetchError::S3 {
            from: source.clone(),
            why,
        };
        let local = |e: std::io::Error| FetchError::Local {
            target: path.display().to_string(),
            why: e.to_string(),
        };
        let answer = self
            .client
            .get_object()
            .bucket(bucket)
            .key(&object.key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| s3(failure(e, "GetObject").describe()))?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(local)?;
        }
        let mut file = tokio::fs::File::create(path).await.map_err(local)?;
        let mut body = answer.body;
        let mut written = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| s3(format!("reading the object: {e}")))?
        {
            file.write_all(&chunk).await.map_err(local)?;
            written += chunk.len() as u64;
        }
        if written != object.size {
            return Err(s3(format!(
                "got {written} bytes where the listing said {}",
                object.size
            )));
        }
        file.sync_all().await.map_err(local)?;
        Ok(written)
    }

    /// Renames the complete download to `SHARED_RESULTS_DIR/<app>`. A folder already
    /// there (an earlier try that stopped after its rename, or a rerun of the same
    /// experiment) is moved aside first and removed after.
    async fn put_in_place(&self, app: &str, incoming: &Path) -> Result<(), FetchError> {
        let target = self.results_target(app);
        let local = |e: std::io::Error| FetchError::Local {
            target: target.display().to_string(),
            why: e.to_string(),
        };
        // The renames below must reach the disk before the notice says the files are there.
        let sync_parent = || async {
            if let Ok(dir) = tokio::fs::File::open(&self.settings.results_dir).await {
                let _ = dir.sync_all().await;
            }
        };
        if tokio::fs::symlink_metadata(&target).await.is_ok() {
            let aside = self
                .settings
                .results_dir
                .join(format!(".{app}{REPLACED}{}", uuid::Uuid::new_v4().simple()));
            tokio::fs::rename(&target, &aside).await.map_err(local)?;
            tokio::fs::rename(incoming, &target).await.map_err(local)?;
            sync_parent().await;
            if let Err(e) = remove_any(&aside).await {
                tracing::warn!(path = %aside.display(), error = %e, "cannot remove the results this download replaced");
            }
        } else {
            tokio::fs::rename(incoming, &target).await.map_err(local)?;
            sync_parent().await;
        }
        Ok(())
    }

    /// Removes the hidden folders a stopped download of `app` left behind: exactly
    /// `.<app>.incoming-<id>` and `.<app>.replaced-<id>`, never those of another app whose
    /// name starts like this one's (`x` and `x.incoming-1`).
    async fn remove_leftovers(&self, app: &str) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.settings.results_dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name();
            if leftover_of(&name.to_string_lossy()) == Some(app) {
                if let Err(e) = remove_any(&entry.path()).await {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a download left behind");
                }
            }
        }
    }

    /// Deletes the job's staged datasets, `datasets/<app>/`, once Multiomix has its
    /// notice (Multiomix deletes its own copy then too). Returns how many objects went.
    pub async fn remove_datasets(&self, app: &str) -> Result<usize, String> {
        if !crate::job::is_valid_app_name(app) {
            return Err(format!("'{app}' cannot name a folder of datasets"));
        }
        let datasets = &self.settings.datasets;
        self.delete_prefix(&datasets.bucket, &format!("{}{app}/", datasets.prefix))
            .await
            .map_err(Failure::describe)
    }

    /// Deletes every object under `prefix`; returns how many went.
    pub(crate) async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize, Failure> {
        let keys = self.list_keys(bucket, prefix).await?;
        let mut removed = 0;
        // DeleteObjects takes at most 1,000 keys.
        for batch in keys.chunks(1_000) {
            let objects = batch
                .iter()
                .map(|(key, _)| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::Refused(e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Failure::Refused(e.to_string()))?;
            let answer = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| failure(e, "DeleteObjects"))?;
            if let Some(first) = answer.errors().first() {
                return Err(Failure::Refused(format!(
                    "DeleteObjects: {} of {} objects not deleted, the first {}: {} {}",
                    answer.errors().len(),
                    batch.len(),
                    first.key().unwrap_or_default(),
                    first.code().unwrap_or("error"),
                    first.message().unwrap_or_default()
                )));
            }
            removed += batch.len();
        }
        Ok(removed)
    }
}

/// The app whose download left the hidden folder `name` (`.<app>.incoming-<id>` or
/// `.<app>.replaced-<id>`, `<id>` a UUID's 32 hex digits), if it is one.
fn leftover_of(name: &str) -> Option<&str> {
    let hidden = name.strip_prefix('.')?;
    let (rest, id) = hidden.rsplit_once('-')?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let rest = format!("{rest}-");
    let app_len = [INCOMING, REPLACED]
        .iter()
        .find(|marker| rest.ends_with(*marker))
        .map(|marker| rest.len() - marker.len())?;
    Some(&hidden[..app_len]).filter(|app| crate::job::is_valid_app_name(app))
}

async fn remove_any(path: &Path) -> std::io::Result<()> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(path).await,
        Ok(_) => tokio::fs::remove_file(path).await,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::leftover_of;

    #[test]
    fn a_leftover_folder_belongs_to_exactly_one_app() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(leftover_of(&format!(".x.incoming-{id}")), Some("x"));
        assert_eq!(leftover_of(&format!(".x.replaced-{id}")), Some("x"));
        // The folders of the app `x.incoming-1` are its own, not `x`'s.
        assert_eq!(
            leftover_of(&format!(".x.incoming-1.incoming-{id}")),
            Some("x.incoming-1")
        );
        assert_eq!(
            leftover_of(&format!(".x.incoming-1.replaced-{id}")),
            Some("x.incoming-1")
        );
        for other in [
            "x".to_owned(),
            ".x".to_owned(),
            ".x.incoming-".to_owned(),
            ".x.incoming-1".to_owned(),
            format!(".x.incoming-{id}x"),
            format!(".x.elsewhere-{id}"),
            format!("x.incoming-{id}"),
        ] {
            assert_eq!(leftover_of(&other), None, "{other}");
        }
    }
}
