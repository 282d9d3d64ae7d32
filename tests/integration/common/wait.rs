//! The one way a test waits: check, sleep a little, check again, until a deadline.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// Longest a test waits for what takes milliseconds against a fake: long enough for a
/// loaded two-core machine, short enough that a test that will never see it fails soon.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How long between two checks.
const EVERY: Duration = Duration::from_millis(20);

/// Runs `check` until it gives `Ok`, and returns what it gave. `Err` carries what there
/// is instead (a job's state, a status code, a list of files): after `timeout` the test
/// fails with `what` and the last of these, which is what one needs to see to know why.
pub async fn wait_for<T, E, F>(what: &str, timeout: Duration, mut check: impl FnMut() -> F) -> T
where
    E: Debug,
    F: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(found) => return found,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "waited {timeout:?} for {what}; the last check saw {seen:?}"
            ),
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// [`wait_for`] a condition that needs no I/O of the test's own (a file, a flag).
pub async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    wait_for(what, timeout, || {
        std::future::ready(done().then_some(()).ok_or("not yet"))
    })
    .await
}

/// [`wait_for`] for a test without a runtime (the pod scripts' tests, which block on
/// processes and threads): the same checks, the same failure.
pub fn wait_blocking<T, E: Debug>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match check() {
            Ok(found) => return found,
            Err(seen) => assert!(
                std::time::Instant::now() < deadline,
                "waited {timeout:?} for {what}; the last check saw {seen:?}"
            ),
        }
        std::thread::sleep(EVERY);
    }
}
