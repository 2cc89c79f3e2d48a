//! Server-sent events from a remote upstream, decoded in bounded memory and
//! linear time.
//!
//! A decoder that keeps the whole unparsed buffer and scans it again for every
//! chunk (as `eventsource-stream` does) costs quadratic CPU on one long line:
//! 64 MB in 64 KiB chunks took 13 s. [`Decoder`] scans each byte once: a line
//! is looked for only in the new chunk, and only the unfinished line is
//! carried over. An event whose data (or any of whose lines) would pass `max`
//! bytes is not kept: the decoder reports it once as [`Item::TooLarge`], with
//! its first bytes (to find the request it answers), and skips the rest of it
//! without buffering, so the stream itself stays usable.
//!
//! Lines end in `\n`, `\r\n` or `\r`; `data` lines are joined with `\n`; a
//! blank line ends an event; `:` starts a comment; a leading byte-order mark
//! is dropped; `id` and `retry` are ignored (the hub never reconnects a
//! stream with `Last-Event-ID`), as the WHATWG event-stream format allows.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::VecDeque;

/// How many leading bytes of an event that is too large are kept.
const PREFIX: usize = 1024;

/// A dispatched event.
#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    /// The `event` field; empty when the event named none (a `message`).
    pub event: String,
    pub data: Vec<u8>,
}

impl Event {
    /// An event that carries JSON-RPC: named `message` or not named, with data.
    pub fn is_message(&self) -> bool {
        (self.event.is_empty() || self.event == "message")
            && self.data.iter().any(|b| !b.is_ascii_whitespace())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    /// An event over the limit; the rest of it is skipped. `prefix` holds the
    /// first bytes of its data (or of the line that was too long).
    TooLarge {
        prefix: Vec<u8>,
    },
}

/// An incremental event-stream decoder (see the module doc).
pub struct Decoder {
    max: usize,
    /// The unfinished line carried over from earlier chunks.
    pending: Vec<u8>,
    /// The last chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    /// No line has been seen yet (a byte-order mark may start the stream).
    first_line: bool,
    event: String,
    data: Vec<u8>,
    /// The current event went over the limit: skip it up to its blank line.
    skipping_event: bool,
    /// The current line went over the limit: skip it up to its end.
    skipping_line: bool,
    /// Bytes looked at, over the decoder's life: the proof of linear cost.
    scanned: u64,
}

impl Decoder {
    /// A decoder for events of at most `max` bytes of data.
    pub fn new(max: usize) -> Decoder {
        Decoder {
            max,
            pending: Vec::new(),
            after_cr: false,
            first_line: true,
            event: String::new(),
            data: Vec::new(),
            skipping_event: false,
            skipping_line: false,
            scanned: 0,
        }
    }

    /// Bytes scanned so far. Never more than the bytes fed.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// The longest line kept: a `data:` line holding `max` bytes of data.
    fn max_line(&self) -> usize {
        self.max.saturating_add(16)
    }

    /// Decodes one chunk, appending what it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Item>) {
        let mut rest = chunk;
        if std::mem::take(&mut self.after_cr) {
            rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        }
        while !rest.is_empty() {
            let Some(at) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.scanned += rest.len() as u64;
                self.carry(rest, out);
                return;
            };
            self.scanned += at as u64 + 1;
            let line = &rest[..at];
            let mut next = at + 1;
            if rest[at] == b'\r' {
                match rest.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            rest = &rest[next..];
            if std::mem::take(&mut self.skipping_line) {
                continue;
            }
            if self.pending.is_empty() {
                self.line(line, out);
            } else {
                self.carry(line, out);
                if !std::mem::take(&mut self.skipping_line) {
                    let whole = std::mem::take(&mut self.pending);
                    self.line(&whole, out);
                    self.pending = whole;
                    self.pending.clear();
                }
            }
        }
    }

    /// Keeps part of an unfinished line, unless the line is over the limit.
    fn carry(&mut self, part: &[u8], out: &mut Vec<Item>) {
        if self.skipping_line {
            return;
        }
        if self.pending.len() + part.len() > self.max_line() {
            let mut prefix = std::mem::take(&mut self.pending);
            prefix.extend_from_slice(&part[..part.len().min(PREFIX)]);
            let value = field(&prefix).1;
            let value = value[..value.len().min(PREFIX)].to_vec();
            self.too_large(value, out);
            self.skipping_line = true;
            return;
        }
        self.pending.extend_from_slice(part);
    }

    fn too_large(&mut self, line_value: Vec<u8>, out: &mut Vec<Item>) {
        if !self.skipping_event {
            let mut prefix = std::mem::take(&mut self.data);
            prefix.extend_from_slice(&line_value);
            prefix.truncate(PREFIX);
            out.push(Item::TooLarge { prefix });
        }
        self.skipping_event = true;
        self.data = Vec::new();
    }

    /// One whole line.
    fn line(&mut self, line: &[u8], out: &mut Vec<Item>) {
        let line = match std::mem::take(&mut self.first_line) {
            true => line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line),
            false => line,
        };
        if line.is_empty() {
            let data = std::mem::take(&mut self.data);
            let event = std::mem::take(&mut self.event);
            if !std::mem::take(&mut self.skipping_event) && !data.is_empty() {
                let mut data = data;
                data.pop(); // the `\n` after the last data line
                out.push(Item::Event(Event { event, data }));
            }
            return;
        }
        if self.skipping_event || line[0] == b':' {
            return;
        }
        match field(line) {
            (b"data", value) => {
                if self.data.len() + value.len() + 1 > self.max.saturating_add(1) {
                    let value = value[..value.len().min(PREFIX)].to_vec();
                    self.too_large(value, out);
                } else {
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                }
            }
            (b"event", value) => self.event = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
    }
}

/// A line's field name and value (one space after the colon dropped).
fn field(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b':') {
        Some(i) => {
            let v = &line[i + 1..];
            (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &[]),
    }
}

/// Decodes a body stream (an HTTP response's) into [`Item`]s.
pub struct Events<S> {
    body: S,
    decoder: Decoder,
    ready: VecDeque<Item>,
    scratch: Vec<Item>,
}

impl<S, E> Events<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    pub fn new(body: S, max: usize) -> Self {
        Events {
            body,
            decoder: Decoder::new(max),
            ready: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// The next item; `None` at the end of the body, `Err` when it failed.
    pub async fn next(&mut self) -> Option<Result<Item, E>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(Ok(item));
            }
            match self.body.next().await? {
                Ok(chunk) => {
                    self.decoder.feed(&chunk, &mut self.scratch);
                    self.ready.extend(self.scratch.drain(..));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]], max: usize) -> Vec<Item> {
        let mut d = Decoder::new(max);
        let mut out = vec![];
        for c in chunks {
            d.feed(c, &mut out);
        }
        out
    }

    fn ev(event: &str, data: &str) -> Item {
        Item::Event(Event {
            event: event.into(),
            data: data.as_bytes().to_vec(),
        })
    }

    #[test]
    fn the_event_stream_format() {
        let text = b"\xEF\xBB\xBF: comment\nevent: endpoint\ndata: /message?x=1\n\n\
            data:{\"a\":1}\r\n\r\ndata: one\rdata: two\r\rid: 7\nretry: 10\ndata\n\n\
            event: only-a-name\n\n";
        let want = vec![
            ev("endpoint", "/message?x=1"),
            ev("", "{\"a\":1}"),
            ev("", "one\ntwo"),
            ev("", ""),
        ];
        // The same events whatever the chunking, a `\r\n` split included.
        assert_eq!(decode(&[text], 1000), want);
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(decode(&bytes, 1000), want);
        for cut in 0..text.len() {
            assert_eq!(
                decode(&[&text[..cut], &text[cut..]], 1000),
                want,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_event_over_the_limit_is_reported_once_and_skipped() {
        let big = format!("data: {{\"id\":7,{}}}\n\ndata: after\n\n", "x".repeat(5000));
        for chunk in [1, 7, 4096, big.len()] {
            let chunks: Vec<&[u8]> = big.as_bytes().chunks(chunk).collect();
            let out = decode(&chunks, 100);
            assert_eq!(out.len(), 2, "chunks of {chunk}: {out:?}");
            let Item::TooLarge { prefix } = &out[0] else {
                panic!("{out:?}")
            };
            assert!(prefix.starts_with(b"{\"id\":7,x"), "{prefix:?}");
            assert!(prefix.len() <= PREFIX);
            assert_eq!(out[1], ev("", "after"));
        }
        // Many data lines that add up past the limit.
        let lines = format!("{}\ndata: after\n\n", "data: 0123456789\n".repeat(20));
        let out = decode(&[lines.as_bytes()], 100);
        assert!(
            matches!(&out[0], Item::TooLarge { prefix } if prefix.starts_with(b"0123456789\n"))
        );
        assert_eq!(out[1], ev("", "after"));
        // Exactly at the limit is fine.
        let exact = format!("data: {}\n\n", "y".repeat(100));
        assert_eq!(
            decode(&[exact.as_bytes()], 100),
            vec![ev("", &"y".repeat(100))]
        );
    }

    #[test]
    fn a_long_line_fed_a_byte_at_a_time_costs_linear_work() {
        // eventsource-stream scanned its whole buffer again for each chunk:
        // N bytes in 1-byte chunks cost N²/2. Here each byte is looked at once.
        for n in [1_000usize, 100_000, 1_000_000] {
            let mut d = Decoder::new(usize::MAX / 2);
            let mut out = vec![];
            d.feed(b"data: ", &mut out);
            for _ in 0..n {
                d.feed(b"x", &mut out);
            }
            d.feed(b"\n\n", &mut out);
            assert_eq!(d.scanned(), n as u64 + 8, "n = {n}");
            assert!(matches!(&out[..], [Item::Event(e)] if e.data.len() == n));
        }
        // And a line over the limit is not even kept while it is skipped.
        let mut d = Decoder::new(1000);
        let mut out = vec![];
        for _ in 0..1_000_000 {
            d.feed(b"x", &mut out);
        }
        assert_eq!(d.scanned(), 1_000_000);
        assert!(d.pending.capacity() <= 2048, "{}", d.pending.capacity());
        assert_eq!(out.len(), 1);
    }

    #[tokio::test]
    async fn events_from_a_body_stream() {
        let chunks: Vec<Result<Bytes, ()>> = vec![
            Ok(Bytes::from_static(b"data: 1\n")),
            Ok(Bytes::from_static(b"\ndata: 2\n\n")),
            Err(()),
        ];
        let mut events = Events::new(futures_util::stream::iter(chunks), 100);
        assert_eq!(events.next().await, Some(Ok(ev("", "1"))));
        assert_eq!(events.next().await, Some(Ok(ev("", "2"))));
        assert_eq!(events.next().await, Some(Err(())));
    }
}
