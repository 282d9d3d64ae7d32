//! A run's log file: where its output goes, the line that opens each attempt, and the tail
//! that a failed run's `stateDetails` quotes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use time::OffsetDateTime;

use super::LocalCommand;
use crate::job::{format_date, JobId};

/// How many of the last log lines a failed run's `stateDetails` carries.
pub const LOG_TAIL_LINES: usize = 20;
/// The most bytes of log a failed run's `stateDetails` carries.
pub const LOG_TAIL_BYTES: usize = 4096;
/// Marks the lines this service writes into a job's log, so they stay out of the tail.
const LOG_MARK: &str = "[multiomix-aws-emr]";

/// Opens the run's log for appending (creating its folder if needed) and writes the
/// command about to start, marked as ours.
pub(super) fn open(id: &JobId, command: &LocalCommand, log_path: &Path) -> io::Result<File> {
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    writeln!(
        log,
        "{LOG_MARK} {} job {id}: {} {}",
        format_date(OffsetDateTime::now_utc()),
        command.program,
        command.args.join(" ")
    )?;
    Ok(log)
}

/// The last `max_lines` lines of the log, at most `max_bytes` bytes, without the lines
/// this service wrote.
pub fn log_tail(path: &Path, max_lines: usize, max_bytes: usize) -> String {
    let read = || -> io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        // Enough for the lines even after our own marks are dropped.
        let window = (max_bytes as u64 * 4).max(16 * 1024);
        file.seek(SeekFrom::Start(len.saturating_sub(window)))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(buf)
    };
    let Ok(bytes) = read() else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(LOG_MARK)).collect();
    let mut tail = lines[lines.len().saturating_sub(max_lines)..].join("\n");
    let trimmed = tail.trim_end().len();
    tail.truncate(trimmed);
    if tail.len() > max_bytes {
        let mut cut = tail.len() - max_bytes;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_tail_keeps_the_last_lines_within_the_byte_limit_without_our_marks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut text = format!("{LOG_MARK} start\n");
        for i in 1..=30 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let tail = log_tail(&path, 3, 1000);
        assert_eq!(tail, "line 28\nline 29\nline 30");
        let short = log_tail(&path, 20, 10);
        assert!(
            short.starts_with('…') && short.ends_with("line 30"),
            "{short:?}"
        );
        assert!(short.len() <= 10 + '…'.len_utf8());
        std::fs::write(&path, format!("{LOG_MARK} only ours\n")).unwrap();
        assert_eq!(log_tail(&path, 20, 100), "");
        assert_eq!(log_tail(&dir.path().join("missing.log"), 20, 100), "");
    }

    #[test]
    fn a_byte_limit_inside_a_multibyte_character_does_not_split_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "ééééé\n").unwrap();
        let tail = log_tail(&path, 20, 3);
        assert_eq!(tail, "…é");
    }
}
