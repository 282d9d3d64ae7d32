//! Pages of [`JobBackend::list`](crate::backend::JobBackend::list) for the backends that
//! list from rows of their own in the store (local runs, Livy batches): the page size,
//! where a page starts, and the `next_token` that says where the next one does.

use super::{BackendError, ListQuery};
use crate::job::JobId;

/// Largest page of [`JobBackend::list`](crate::backend::JobBackend::list), as for EMR.
pub const MAX_PAGE_SIZE: u32 = 50;

/// The size of the page `query` asks for, from 1 to [`MAX_PAGE_SIZE`].
pub fn page_size(query: &ListQuery) -> usize {
    query
        .page_size
        .unwrap_or(MAX_PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE) as usize
}

/// Where the page starts: the `(created_at, id)` of the previous page's last row, from
/// the query's `next_token`; `None` for the first page. A token this service did not
/// give out is refused.
pub fn after(query: &ListQuery) -> Result<Option<(i64, JobId)>, BackendError> {
    match &query.next_token {
        Some(token) => decode_token(token).map(Some).ok_or_else(|| {
            BackendError::Rejected("next_token is not one this service gave out".into())
        }),
        None => Ok(None),
    }
}

/// The query's `created_after` in unix milliseconds, as the store keeps times.
pub fn created_after_millis(query: &ListQuery) -> Option<i64> {
    query
        .created_after
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Cuts `rows`, read with one more than `size` asked for, to the page, and gives the
/// `next_token` of its last row when more follow. `key` is a row's `(created_at, id)`.
pub fn cut<R>(rows: &mut Vec<R>, size: usize, key: impl Fn(&R) -> (i64, &str)) -> Option<String> {
    if rows.len() <= size {
        return None;
    }
    rows.truncate(size);
    rows.last().map(|row| {
        let (created_at, id) = key(row);
        format!("{created_at}.{id}")
    })
}

fn decode_token(token: &str) -> Option<(i64, JobId)> {
    let (created_at, id) = token.split_once('.')?;
    Some((created_at.parse().ok()?, JobId::parse(id)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let mut rows = vec![(1, "a1"), (1_700_000_000_123, "abc123"), (0, "z9")];
        let token = cut(&mut rows, 2, |r| *r).expect("a row follows the page");
        assert_eq!(rows, [(1, "a1"), (1_700_000_000_123, "abc123")]);
        let query = ListQuery {
            next_token: Some(token),
            ..ListQuery::default()
        };
        let (at, id) = after(&query).unwrap().unwrap();
        assert_eq!((at, id.as_str()), (1_700_000_000_123, "abc123"));
        for bad in ["", "x", "12", "12.", "a.b", "1.ABC", "1.../etc"] {
            let query = ListQuery {
                next_token: Some(bad.into()),
                ..ListQuery::default()
            };
            assert!(
                matches!(after(&query), Err(BackendError::Rejected(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_last_page_has_no_token_and_sizes_stay_within_bounds() {
        let mut rows = vec![1, 2];
        assert_eq!(cut(&mut rows, 2, |_| (0, "x")), None);
        assert_eq!(rows, [1, 2]);
        for (asked, size) in [(None, 50), (Some(0), 1), (Some(7), 7), (Some(500), 50)] {
            let query = ListQuery {
                page_size: asked,
                ..ListQuery::default()
            };
            assert_eq!(page_size(&query), size, "{asked:?}");
        }
    }
}
