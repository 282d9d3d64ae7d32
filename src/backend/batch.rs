//! Reading many tracked runs in few calls: one listing per page of active runs, then a
//! read of each tracked run that was not among them (it ended, or the listing cannot show
//! it). With 1,000 runs in flight that is about 20 calls a round instead of 1,000.

use std::collections::{HashMap, HashSet};

use super::{Described, JobBackend, ListQuery};
use crate::job::{JobId, JobState};

/// The states a run can still leave.
pub fn active_states() -> Vec<JobState> {
    JobState::ALL
        .into_iter()
        .filter(|s| !s.is_final())
        .collect()
}

/// See the module documentation. `page_size` is the backend's largest page. The listing
/// stops as soon as every tracked run was seen, and after as many pages as there are
/// tracked runs still unseen: with few tracked runs among many active ones, the rest are
/// read one by one, so a round never costs more than twice the reads of each run.
pub async fn describe_by_listing<B: JobBackend + ?Sized>(
    backend: &B,
    ids: &[JobId],
    page_size: u32,
) -> Result<Described, super::BackendError> {
    let wanted: HashSet<&JobId> = ids.iter().collect();
    let mut found = HashMap::new();
    let mut query = ListQuery {
        states: active_states(),
        page_size: Some(page_size),
        ..ListQuery::default()
    };
    let mut pages = 0;
    while !wanted.is_empty() {
        let page = backend.list(&query).await?;
        pages += 1;
        for run in page.jobs {
            if wanted.contains(&run.id) {
                found.insert(run.id.clone(), run);
            }
        }
        let unseen = wanted.len() - found.len();
        match page.next_token {
            Some(token) if unseen > 0 && pages < unseen => query.next_token = Some(token),
            _ => break,
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let result = match found.remove(id) {
            Some(run) => Ok(run),
            None => backend.describe(id).await,
        };
        out.push((id.clone(), result));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;
    use time::OffsetDateTime;

    use super::*;
    use crate::backend::{BackendError, JobPage};
    use crate::job::{BackendKind, JobRun, JobSpec};

    /// Runs `r0..rN`; those in `ended` are COMPLETED. Lists pages of two.
    struct Paged {
        runs: usize,
        ended: Mutex<HashSet<usize>>,
        lists: AtomicUsize,
        describes: AtomicUsize,
    }

    fn run(i: usize, state: JobState) -> JobRun {
        JobRun {
            id: JobId::parse(&format!("r{i}")).unwrap(),
            name: "n".into(),
            state,
            created_at: OffsetDateTime::UNIX_EPOCH,
            finished_at: None,
            state_details: None,
            failure_reason: None,
            log_location: None,
            links: Default::default(),
            ours: true,
            tags: Default::default(),
        }
    }

    #[async_trait]
    impl JobBackend for Paged {
        fn kind(&self) -> BackendKind {
            // The EMR backends are the ones that read runs by listing them.
            BackendKind::Emr
        }
        async fn start(&self, _: &JobSpec, _: &str) -> Result<JobId, BackendError> {
            unreachable!()
        }
        async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
            self.describes.fetch_add(1, Ordering::SeqCst);
            let i: usize = id.as_str()[1..].parse().unwrap();
            if i >= self.runs {
                return Err(BackendError::NotFound);
            }
            let ended = self.ended.lock().unwrap().contains(&i);
            Ok(run(
                i,
                if ended {
                    JobState::Completed
                } else {
                    JobState::Running
                },
            ))
        }
        async fn cancel(&self, _: &JobId) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn list(&self, q: &ListQuery) -> Result<JobPage, BackendError> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            assert!(q.states.iter().all(|s| !s.is_final()));
            let ended = self.ended.lock().unwrap().clone();
            let active: Vec<usize> = (0..self.runs).filter(|i| !ended.contains(i)).collect();
            let start: usize = q.next_token.as_deref().map_or(0, |t| t.parse().unwrap());
            let end = (start + 2).min(active.len());
            Ok(JobPage {
                jobs: active[start..end]
                    .iter()
                    .map(|i| run(*i, JobState::Running))
                    .collect(),
                next_token: (end < active.len()).then(|| end.to_string()),
            })
        }
        async fn check(&self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    fn paged(runs: usize, ended: &[usize]) -> Paged {
        Paged {
            runs,
            ended: Mutex::new(ended.iter().copied().collect()),
            lists: AtomicUsize::new(0),
            describes: AtomicUsize::new(0),
        }
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<JobId> {
        range
            .map(|i| JobId::parse(&format!("r{i}")).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn active_runs_come_from_pages_and_only_ended_ones_are_read_alone() {
        let backend = paged(10, &[3, 7]);
        let out = describe_by_listing(&backend, &ids(0..10), 2).await.unwrap();
        assert_eq!(out.len(), 10);
        for (i, (id, run)) in out.iter().enumerate() {
            assert_eq!(id.as_str(), format!("r{i}"), "answers keep the order asked");
            let want = if i == 3 || i == 7 {
                JobState::Completed
            } else {
                JobState::Running
            };
            assert_eq!(run.as_ref().unwrap().state, want);
        }
        assert_eq!(
            backend.lists.load(Ordering::SeqCst),
            4,
            "8 active, pages of 2"
        );
        assert_eq!(backend.describes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_few_tracked_runs_among_many_active_ones_cost_at_most_twice_reading_each() {
        let backend = paged(100, &[]);
        let out = describe_by_listing(
            &backend,
            &[JobId::parse("r98").unwrap(), JobId::parse("r500").unwrap()],
            2,
        )
        .await
        .unwrap();
        assert_eq!(out[0].1.as_ref().unwrap().state, JobState::Running);
        assert!(matches!(out[1].1, Err(BackendError::NotFound)));
        let calls = backend.lists.load(Ordering::SeqCst) + backend.describes.load(Ordering::SeqCst);
        assert!(calls <= 4, "{calls} calls for 2 runs");
    }

    #[tokio::test]
    async fn the_default_reads_each_run_once() {
        let backend = paged(5, &[1]);
        let out = backend.describe_batch(&ids(0..5)).await.unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(backend.describes.load(Ordering::SeqCst), 5);
        assert_eq!(backend.lists.load(Ordering::SeqCst), 0);
    }
}
