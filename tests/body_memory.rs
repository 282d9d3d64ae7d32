//! The memory one `POST /job` body costs to read, measured with a counting allocator.
//! Prints the peak for each hostile body, read the way the service reads it and, for
//! comparison, into a `serde_json::Value`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use multiomix_aws_emr::api::MAX_BODY_BYTES;
use multiomix_aws_emr::job::body::RequestBody;
use multiomix_aws_emr::job::validate_request;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated at the peak of `f`, beyond what was allocated before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> usize {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    drop(out);
    peak
}

/// `prefix` + `item,item,...` + `suffix`, as long as the body limit allows.
fn filled(prefix: &str, item: &str, suffix: &str) -> Vec<u8> {
    let room = MAX_BODY_BYTES - prefix.len() - suffix.len();
    let n = room / (item.len() + 1);
    let mut body = prefix.as_bytes().to_vec();
    body.extend(vec![item; n].join(",").as_bytes());
    body.extend(suffix.as_bytes());
    assert!(body.len() <= MAX_BODY_BYTES);
    body
}

// One test, so that nothing else allocates while it measures.
#[test]
fn reading_a_body_costs_a_bounded_multiple_of_its_size() {
    let cases = [
        ("a list of zeros", filled("[", "0", "]")),
        (
            "arguments that are zeros",
            filled(r#"{"entrypoint_arguments":["#, "0", "]}"),
        ),
        (
            "an unknown field full of zeros",
            filled(r#"{"extra":["#, "0", "]}"),
        ),
        (
            "many small arguments",
            filled(
                r#"{"entrypoint_arguments":["#,
                r#"{"name":"a","value":1}"#,
                "]}",
            ),
        ),
        (
            "a value that is a list of zeros",
            filled(
                r#"{"entrypoint_arguments":[{"name":"app-name","value":["#,
                "0",
                "]}]}",
            ),
        ),
    ];
    println!(
        "{:<34} {:>8} {:>16} {:>16}",
        "body", "bytes", "peak (service)", "peak (Value)"
    );
    for (what, body) in &cases {
        let ours = peak_of(|| {
            let read: RequestBody = serde_json::from_slice(body).unwrap();
            let _ = validate_request(&read.0);
            read
        });
        let value = peak_of(|| serde_json::from_slice::<serde_json::Value>(body).unwrap());
        println!("{what:<34} {:>8} {ours:>16} {value:>16}", body.len());
        // The body itself is held by the server; reading it may cost about as much again,
        // never the tens of bytes per element of a `Value`.
        assert!(
            ours <= 2 * body.len() + 16 * 1024,
            "{what}: {ours} bytes to read {} bytes",
            body.len()
        );
    }
}
