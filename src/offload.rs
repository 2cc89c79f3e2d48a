//! Work on one large message (a few megabytes of JSON, within
//! `maxBodySize`) run off the async workers, one at a time hub-wide, on one
//! thread of its own.
//!
//! On a 2-core machine one scan of such a message takes long enough to hold
//! up every other request on the workers, `/healthz` included. Running
//! several at once would only take every core, and each its own copy, at
//! once; so they queue for one turn. Each of these takes a turn of its own:
//! a request's parse (with, for a 2026-07-28 request, the one read of its
//! params), the strip of its modern keys for a 2025 upstream, a server's
//! stdout line, and the OpenAPI facade's estimate and check of a tool call's
//! body. None holds it across a wait on anything else (a hand-on to a child
//! that stopped reading must not hold up every other large body).
//!
//! One thread rather than the blocking pool: the allocator gives each thread
//! that allocates its own arena, and a few megabytes freed in the arenas of
//! several pool threads stay in the hub's memory. On one thread they are
//! reused by the next large message (in the debug build's test of 16 bodies
//! of 3 MB on the 2026-07-28 path, a peak of 57–58 MiB against 93–98 MiB on
//! the blocking pool).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Sender};
use std::sync::OnceLock;

/// Messages up to this size are worked on in place: the hand-off costs more.
pub const INLINE: usize = 64 << 10;

type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on the large-message thread once it is this caller's turn; a
/// panic in `f` goes on in the caller.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    run_caught(f)
        .await
        .unwrap_or_else(|panic| resume_unwind(panic))
}

/// [`run`], with a panic in `f` returned instead, for a caller that answers
/// it with an error of its own.
pub async fn run_caught<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::Result<T> {
    static TURN: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    static THREAD: OnceLock<Sender<Job>> = OnceLock::new();
    // The semaphore is never closed. The turn goes with the job and ends
    // when it does, even if this caller stops waiting: one job at a time is
    // queued or running, never a pile of abandoned ones.
    let turn = TURN.acquire().await.ok();
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        drop(turn);
        let _ = done.send(r);
    });
    let thread = THREAD.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("mcp-hub-large".into())
            .spawn(move || rx.into_iter().for_each(|job| job()))
            .expect("a thread for large messages can be started");
        tx
    });
    thread
        .send(job)
        .expect("the large-message thread runs as long as the hub");
    result.await.expect("a job always sends its result")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_one_at_a_time_off_the_workers_and_a_panic_is_the_callers() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..8).map(|i| {
            let (running, most) = (running.clone(), most.clone());
            tokio::spawn(run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
                (i, std::thread::current().name().map(str::to_owned))
            }))
        });
        for (i, j) in jobs.enumerate() {
            let (n, thread) = j.await.unwrap();
            assert_eq!(n, i);
            assert_eq!(thread.as_deref(), Some("mcp-hub-large"));
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "two jobs ran at once");
        let panicked = tokio::spawn(run(|| panic!("planted"))).await;
        assert!(panicked.unwrap_err().is_panic());
        assert!(run_caught(|| panic!("planted")).await.is_err());
        // The thread survived it.
        assert_eq!(run(|| 7).await, 7);
    }
}
