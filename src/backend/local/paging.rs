//! Pages of [`JobBackend::list`](crate::backend::JobBackend::list): their size and the
//! `next_token` that says where the next page starts.

use crate::job::JobId;
use crate::store::LocalRunRow;

/// Largest page of [`JobBackend::list`](crate::backend::JobBackend::list), as for EMR.
pub(super) const MAX_PAGE_SIZE: u32 = 50;

/// `next_token` is the `(created_at, id)` of the last run of the page.
pub(super) fn encode_token(row: &LocalRunRow) -> String {
    format!("{}.{}", row.created_at, row.id)
}

pub(super) fn decode_token(token: &str) -> Option<(i64, JobId)> {
    let (created_at, id) = token.split_once('.')?;
    Some((created_at.parse().ok()?, JobId::parse(id)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobState;

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let row = LocalRunRow {
            id: "abc123".into(),
            name: "n".into(),
            client_token: "t".into(),
            state: JobState::Pending,
            command: "{}".into(),
            log_path: "/x".into(),
            pid: None,
            process_start: None,
            state_details: None,
            failure_reason: None,
            created_at: 1700000000123,
            started_at: None,
            finished_at: None,
        };
        let (at, id) = decode_token(&encode_token(&row)).unwrap();
        assert_eq!((at, id.as_str()), (1700000000123, "abc123"));
        for bad in ["", "x", "12", "12.", "a.b", "1.ABC", "1.../etc"] {
            assert!(decode_token(bad).is_none(), "{bad}");
        }
    }
}
