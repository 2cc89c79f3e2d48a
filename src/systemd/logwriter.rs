//! Log lines on stderr, written in batches by one thread.
//!
//! With `logEnabled` every `tools/call` logs an audit line. Written where it
//! is logged, each line is one `write` to stderr, and when stderr is a pipe
//! (a terminal multiplexer, a container runtime, a supervisor) each write
//! also wakes the reader: at tens of thousands of calls a second that was
//! about a quarter of the hub's CPU per call. Here a line is appended to one
//! buffer under a lock and a writer thread writes everything that gathered
//! in [`LINGER`] with one `write`; it is woken once per batch, not per line.
//!
//! Nothing is dropped: a line that would take the buffer past
//! [`MAX_PENDING`] waits, in the thread that logs it, until the writer has
//! written what is there (as a `write` to a full stderr pipe would wait).
//! Lines keep their order, whoever logs them. Before [`start`] and after its
//! guard is dropped (at exit, SIGTERM included, after the last batch is
//! written) lines are written at once where they are logged. A writer stuck
//! on a stderr nobody reads holds up the exit as it holds up the loggers, as
//! a direct write would.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// How long the first line of a batch waits for more before the batch is
/// written: the most a line sits in memory when stderr keeps up.
pub const LINGER: Duration = Duration::from_millis(2);

/// Bytes waiting to be written, at most; a line that would pass the bound
/// waits for the writer (a single longer line goes alone).
pub const MAX_PENDING: usize = 1024 * 1024;

/// What the writer keeps between batches; a burst's larger buffer is let go.
const KEEP: usize = 64 * 1024;

struct State {
    pending: Vec<u8>,
    /// A writer thread runs; without one, lines are written where logged.
    batching: bool,
    /// The writer waits for a first line, so the line that ends the wait
    /// wakes it (and no other line pays for a wake-up).
    idle: bool,
    /// Loggers waiting for room.
    waiting: usize,
    /// The guard was dropped: write what is there and end.
    stop: bool,
}

/// A batching queue in front of one output.
pub struct Queue {
    state: Mutex<State>,
    /// The writer waits here for a first line or for `stop`.
    work: Condvar,
    /// Loggers wait here for room.
    room: Condvar,
    max: usize,
    out: fn(&[u8]),
}

fn to_stderr(bytes: &[u8]) {
    // Nowhere to report a failed write to stderr.
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// The hub's stderr.
static STDERR: Queue = Queue::new(MAX_PENDING, to_stderr);

impl Queue {
    const fn new(max: usize, out: fn(&[u8])) -> Queue {
        Queue {
            state: Mutex::new(State {
                pending: Vec::new(),
                batching: false,
                idle: false,
                waiting: 0,
                stop: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            max,
            out,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a valid buffer: carry on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands one finished line (or several) to the writer.
    fn write(&self, line: &[u8]) {
        let mut s = self.lock();
        while s.batching && !s.pending.is_empty() && s.pending.len() + line.len() > self.max {
            s.waiting += 1;
            s = self.room.wait(s).unwrap_or_else(|p| p.into_inner());
            s.waiting -= 1;
        }
        if !s.batching {
            // Under the lock, so it cannot pass a batch being written at the end.
            (self.out)(line);
            return;
        }
        s.pending.extend_from_slice(line);
        if s.idle {
            s.idle = false;
            self.work.notify_one();
        }
    }

    fn start(&'static self) -> Batching {
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || self.run());
        match spawned {
            Ok(t) => {
                let mut s = self.lock();
                s.batching = true;
                s.stop = false;
                drop(s);
                Batching(self, Some(t))
            }
            // No thread, no batching: lines are written where they are logged.
            Err(_) => Batching(self, None),
        }
    }

    fn run(&self) {
        let mut out = Vec::new();
        let mut s = self.lock();
        loop {
            while s.pending.is_empty() && !s.stop {
                s.idle = true;
                s = self.work.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            s.idle = false;
            if s.pending.is_empty() {
                // Stopped, nothing left: later lines are written where logged,
                // under the lock, so none can land in a buffer nobody writes.
                s.batching = false;
                if s.waiting > 0 {
                    self.room.notify_all();
                }
                return;
            }
            if !s.stop && s.pending.len() < self.max {
                drop(s);
                std::thread::sleep(LINGER);
                s = self.lock();
            }
            std::mem::swap(&mut s.pending, &mut out);
            if s.waiting > 0 {
                self.room.notify_all();
            }
            drop(s);
            // One write for the batch (more only if the output takes part of it).
            (self.out)(&out);
            out.clear();
            if out.capacity() > KEEP {
                out = Vec::new();
            }
            s = self.lock();
        }
    }
}

/// Hands one finished line (or several) to the stderr writer.
pub fn write(line: &[u8]) {
    STDERR.write(line)
}

/// Starts the stderr writer thread. Call once the process may have threads
/// (in `main`, after socket activation read its environment); keep the
/// guard until the end of `main`.
pub fn start() -> Batching {
    STDERR.start()
}

/// Writes everything pending and goes back to writing lines where they are
/// logged, when dropped.
pub struct Batching(&'static Queue, Option<std::thread::JoinHandle<()>>);

impl Drop for Batching {
    fn drop(&mut self) {
        let Some(t) = self.1.take() else { return };
        self.0.lock().stop = true;
        self.0.work.notify_one();
        let _ = t.join();
    }
}

/// Set when stderr gets the subscriber's plain (uncoloured) full format
/// through this module, so a hot caller may format its own line so.
static PLAIN: AtomicBool = AtomicBool::new(false);

/// Stderr lines are the subscriber's plain full format, written here.
pub fn plain() -> bool {
    PLAIN.load(Ordering::Relaxed)
}

pub(super) fn set_plain() {
    PLAIN.store(true, Ordering::Relaxed);
}

/// `now` as the subscriber writes it: `2026-01-31T23:59:59.123456Z`, UTC.
pub fn timestamp(out: &mut String, now: SystemTime) {
    use std::fmt::Write;
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian
    // calendar, in eras of 400 years).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_micros()
    );
}

/// Writes into a `String` as the subscriber writes a message: the
/// characters a terminal acts on (ESC, BEL, BS, FF, DEL and the C1
/// controls) as escapes, the rest as it is.
pub struct Sanitized<'a>(pub &'a mut String);

impl std::fmt::Write for Sanitized<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        // C1 controls are U+0080..U+009F: 0xC2 0x80..=0x9F in UTF-8.
        let clean = !s
            .bytes()
            .any(|b| matches!(b, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f | 0xc2));
        if clean {
            self.0.push_str(s);
            return Ok(());
        }
        for c in s.chars() {
            match c {
                '\x1b' => self.0.push_str("\\x1b"),
                '\x07' => self.0.push_str("\\x07"),
                '\x08' => self.0.push_str("\\x08"),
                '\x0c' => self.0.push_str("\\x0c"),
                '\x7f' => self.0.push_str("\\x7f"),
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", c as u32)?,
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

/// The `MakeWriter` for the tracing subscriber: each event's line, which
/// the subscriber formats whole into its own reused buffer, goes to
/// [`write`] in one call.
pub struct Stderr;

pub struct Line;

impl std::io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static OUT: Mutex<(Vec<u8>, usize)> = Mutex::new((Vec::new(), 0));
    fn to_vec(b: &[u8]) {
        let mut o = OUT.lock().unwrap();
        o.0.extend_from_slice(b);
        o.1 += 1;
    }
    /// Small, so loggers have to wait for room.
    static SMALL: Queue = Queue::new(4096, to_vec);

    #[test]
    fn timestamps_are_the_subscribers() {
        let at = |secs: u64, micros: u64| {
            let mut s = String::new();
            timestamp(
                &mut s,
                SystemTime::UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + micros),
            );
            s
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_767_225_599, 999_999), "2025-12-31T23:59:59.999999Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn every_line_is_written_once_in_order_in_few_writes_and_none_is_lost_at_the_end() {
        SMALL.write(b"before\n");
        let guard = SMALL.start();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        SMALL.write(format!("{t} {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Dropped at once: what is pending is written before it returns.
        drop(guard);
        SMALL.write(b"after\n");
        let (bytes, writes) = std::mem::take(&mut *OUT.lock().unwrap());
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + 4 * 5000);
        assert_eq!(lines[0], "before");
        assert_eq!(lines[lines.len() - 1], "after");
        let mut next = [0usize; 4];
        for l in &lines[1..lines.len() - 1] {
            let (t, i) = l.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines out of order");
            next[t] += 1;
        }
        assert!(
            writes < 4 * 5000 / 10,
            "{writes} writes for 20,000 lines: not batched"
        );
    }
}
