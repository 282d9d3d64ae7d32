//! Ids of local runs: like EMR's, 19 characters of `[0-9a-z]`, in creation order.

use rand::Rng;

use crate::job::JobId;
use crate::store::now_millis;

/// 19 characters of `[0-9a-z]`, like EMR's: the creation time in milliseconds (9
/// base-36 digits, so ids sort by creation) and 10 random characters.
pub(super) fn new_id() -> JobId {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut time = now_millis().max(0) as u64;
    let mut id = [b'0'; 19];
    for slot in id[..9].iter_mut().rev() {
        *slot = DIGITS[(time % 36) as usize];
        time /= 36;
    }
    let mut rng = rand::thread_rng();
    for slot in id[9..].iter_mut() {
        *slot = DIGITS[rng.gen_range(0..36)];
    }
    JobId::parse(std::str::from_utf8(&id).expect("ASCII")).expect("a well-formed id")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ids_are_19_lowercase_alphanumerics_and_sort_by_creation() {
        let a = new_id();
        std::thread::sleep(Duration::from_millis(2));
        let b = new_id();
        for id in [&a, &b] {
            assert_eq!(id.as_str().len(), 19, "{id}");
            assert!(id
                .as_str()
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        }
        assert!(a.as_str()[..9] < b.as_str()[..9], "{a} {b}");
        assert_ne!(a, new_id());
    }
}
