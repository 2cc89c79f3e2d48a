//! Rate-limited warnings: at most one line per cause per second, with a count
//! of the lines held back. A flood (a child printing garbage, a connection
//! storm, a server asking questions nobody can answer) must not push the
//! audit entries out of the journal's own rate limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

static LAST: Mutex<Option<HashMap<String, (Instant, u64)>>> = Mutex::new(None);

/// Whether a line for `cause` may be logged now, and how many were held back
/// since the last one.
pub fn allow(cause: &str) -> Option<u64> {
    let mut g = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    match map.get_mut(cause) {
        Some((at, held)) if now.duration_since(*at) < WINDOW => {
            *held += 1;
            None
        }
        Some((at, held)) => {
            *at = now;
            Some(std::mem::take(held))
        }
        None => {
            if map.len() > 4096 {
                map.clear();
            }
            map.insert(cause.to_string(), (now, 0));
            Some(0)
        }
    }
}

/// A warning, at most once per second per `cause`.
pub fn warn(cause: &str, msg: std::fmt::Arguments<'_>) {
    match allow(cause) {
        Some(0) => tracing::warn!("{msg}"),
        Some(n) => tracing::warn!("{msg} ({n} more like this suppressed)"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_cause_per_second() {
        assert_eq!(allow("test-a"), Some(0));
        for _ in 0..100 {
            assert_eq!(allow("test-a"), None);
        }
        assert_eq!(allow("test-b"), Some(0));
        std::thread::sleep(WINDOW);
        assert_eq!(allow("test-a"), Some(100));
    }
}
