//! buildctl's `--progress plain`: numbered `#N` lines, written as they
//! happen and never redrawn, for CI logs and pipes.
//!
//! The output follows BuildKit's plain printer (progressui's `textMux`) line
//! for line: a vertex's block opens with `#N name` (N counts vertexes in the
//! order they are first printed), carries transfer lines
//! (`#N sha256:… 1.20MB / 3.40MB 0.5s done`), `#N WARN: …` and log lines
//! stamped with seconds since the step started (`#N 0.123 text`), and closes
//! with `#N DONE 0.3s`, `#N CACHED`, `#N CANCELED` or `#N ERROR: …`. When
//! another vertex takes the output over, the unfinished one is left with
//! `#N ...` and reopened later. Transfer lines are thinned out: a running
//! transfer prints again only after 5% more bytes or 5 seconds.
//!
//! One simplification: BuildKit picks which of several running vertexes to
//! show by measuring wall-clock rates; here the choice uses only the
//! daemon's timestamps (the current vertex keeps the output until it has
//! been quiet for 5 s, or another has waited 10 s), so a recorded stream
//! always prints the same way.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

use super::model::{Change, Model, Ts};
use crate::units::human_size as format_bytes;

/// A running transfer reprints after this share of its total...
const MIN_PROGRESS_DELTA: f64 = 0.05;
/// ...or after this long.
const MIN_TIME_DELTA: Duration = Duration::from_secs(5);
/// The current vertex yields to others after being quiet this long.
const ANTI_FLICKER: Duration = Duration::from_secs(5);
/// No vertex waits longer than this for its output to be shown.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// News is gathered for this long before printing, as buildctl does, so a
/// transfer that starts and finishes at once prints one line, not three.
const BATCH: Duration = Duration::from_millis(100);

/// What the printer still owes one vertex.
#[derive(Debug, Default)]
struct Pending {
    /// Rendered log lines (`0.123 text`) not yet printed.
    logs: Vec<Vec<u8>>,
    /// The last of `logs` has no newline yet.
    logs_partial: bool,
    /// How much of `logs[0]` is already on screen (a partial line that grew).
    logs_offset: usize,
    /// Transfers reported since the last print, in order.
    transfers: Vec<String>,
    /// Warnings of the vertex already printed.
    warnings_printed: usize,
    /// Daemon time of the oldest unprinted news, and of the newest.
    waiting_since: Option<Ts>,
    last_news: Option<Ts>,
}

/// Streams plain progress lines as status updates arrive.
#[derive(Debug)]
pub(crate) struct PlainPrinter {
    numbers: HashMap<usize, u32>,
    next_number: u32,
    /// The vertex whose block is open.
    current: Option<usize>,
    printed_any: bool,
    pending: HashMap<usize, Pending>,
    /// Vertexes with unprinted news, in the order the news came.
    updated: Vec<usize>,
    /// The last printed (bytes, time) of each transfer id.
    last_transfer: HashMap<String, (i64, Ts)>,
    /// Cut names to 72 characters (`PROGRESS_NO_TRUNC=0`, as in buildctl).
    truncate_names: bool,
    /// Daemon time of the last print; `None` while no time is known.
    last_print: Option<Ts>,
    printed_any_batch: bool,
}

impl PlainPrinter {
    pub(crate) fn new(truncate_names: bool) -> Self {
        PlainPrinter {
            numbers: HashMap::new(),
            next_number: 0,
            current: None,
            printed_any: false,
            pending: HashMap::new(),
            updated: Vec::new(),
            last_transfer: HashMap::new(),
            truncate_names,
            last_print: None,
            printed_any_batch: false,
        }
    }

    /// Takes in what one status message changed and prints what is due.
    pub(crate) fn update(&mut self, model: &Model, changes: &[Change], out: &mut dyn Write) -> io::Result<()> {
        let now = model.latest().unwrap_or(Ts(0));
        for change in changes {
            let vertex = change.vertex();
            let pending = self.pending.entry(vertex).or_default();
            match change {
                Change::Vertex(_) | Change::Warning { .. } => {}
                Change::Transfer { id, .. } => {
                    if !pending.transfers.contains(id) {
                        pending.transfers.push(id.clone());
                    }
                }
                Change::Log(piece) => {
                    if piece.continues && pending.logs_partial && !pending.logs.is_empty() {
                        if let Some(last) = pending.logs.last_mut() {
                            last.extend_from_slice(&piece.text);
                        }
                    } else {
                        let mut line = super::model::format_log_offset(piece.offset_nanos).into_bytes();
                        line.push(b' ');
                        line.extend_from_slice(&piece.text);
                        pending.logs.push(line);
                    }
                    pending.logs_partial = !piece.complete;
                }
            }
            pending.waiting_since.get_or_insert(now);
            pending.last_news = Some(now);
            if !self.updated.contains(&vertex) {
                self.updated.push(vertex);
            }
        }
        // Batch by the daemon's clock so a replayed stream prints the same
        // way every time; `tick` prints what waits when the stream is live.
        match (self.printed_any_batch, self.last_print, model.latest()) {
            (false, _, latest) => self.last_print = latest,
            // The first print came before any time was known: the batch
            // starts at the first time the daemon mentions.
            (true, None, latest) => {
                self.last_print = latest;
                return Ok(());
            }
            (true, Some(last), _) if now.since(last) < BATCH => return Ok(()),
            (true, Some(_), _) => self.last_print = Some(now),
        }
        self.printed_any_batch = true;
        self.print(model, now, out)
    }

    /// Prints news that has waited for a batch to fill; called on a timer.
    pub(crate) fn tick(&mut self, model: &Model, out: &mut dyn Write) -> io::Result<()> {
        if self.updated.is_empty() {
            return Ok(());
        }
        let now = model.latest().unwrap_or(Ts(0));
        self.last_print = model.latest();
        self.printed_any_batch = true;
        self.print(model, now, out)
    }

    /// Prints everything still owed, at the end of the stream.
    pub(crate) fn flush(&mut self, model: &Model, out: &mut dyn Write) -> io::Result<()> {
        let now = model.latest().unwrap_or(Ts(0));
        self.print(model, now, out)?;
        // Whatever is left belongs to vertexes that never finished (a
        // cancelled build): show it rather than lose it.
        while let Some(&vertex) = self.updated.first() {
            if model.vertexes[vertex].hidden {
                self.updated.remove(0);
                continue;
            }
            self.print_vertex(model, vertex, out)?;
        }
        if let Some(current) = self.current.take() {
            if self.pending.get(&current).is_some_and(|p| p.logs_partial) {
                writeln!(out)?;
            }
        }
        Ok(())
    }

    fn print(&mut self, model: &Model, now: Ts, out: &mut dyn Write) -> io::Result<()> {
        let visible = |i: &usize| !model.vertexes[*i].hidden;
        let mut completed: Vec<usize> =
            self.updated.iter().copied().filter(visible).filter(|&i| model.vertexes[i].is_completed()).collect();
        let rest: Vec<usize> =
            self.updated.iter().copied().filter(visible).filter(|&i| !model.vertexes[i].is_completed()).collect();
        self.updated.retain(|i| visible(i));

        // Finished vertexes first, the open block before the others.
        let current = self.current;
        if let Some(c) = current.filter(|c| completed.contains(c)) {
            self.print_vertex(model, c, out)?;
        }
        completed.sort_by_key(|&i| model.vertexes[i].latest_stop());
        for i in completed {
            if Some(i) != current {
                self.print_vertex(model, i, out)?;
            }
        }

        if rest.is_empty() {
            if let Some(c) = self.current {
                let v = &model.vertexes[c];
                if v.is_started() && !v.is_completed() {
                    return Ok(());
                }
            }
            // Let a running vertex hold the output so its next news continues its block.
            let open = model.shown().find(|(_, v)| v.is_started() && !v.is_completed()).map(|(i, _)| i);
            if let Some(open) = open {
                self.print_vertex(model, open, out)?;
            }
            return Ok(());
        }

        if let Some(c) = self.current.filter(|c| rest.contains(c)) {
            self.print_vertex(model, c, out)?;
        }
        let waited = |p: &Pending, limit: Duration| p.waiting_since.is_some_and(|t| now.since(t) > limit);
        let candidate = rest
            .iter()
            .copied()
            .filter(|&i| Some(i) != self.current)
            .min_by_key(|i| self.pending.get(i).and_then(|p| p.waiting_since));
        let Some(candidate) = candidate else {
            return Ok(());
        };
        let switch = match self.current {
            None => true,
            Some(c) => {
                let quiet =
                    self.pending.get(&c).is_none_or(|p| p.last_news.is_none_or(|t| now.since(t) >= ANTI_FLICKER));
                quiet || self.pending.get(&candidate).is_some_and(|p| waited(p, MAX_DELAY))
            }
        };
        if switch {
            self.print_vertex(model, candidate, out)?;
        }
        Ok(())
    }

    fn print_vertex(&mut self, model: &Model, index: usize, out: &mut dyn Write) -> io::Result<()> {
        self.updated.retain(|&i| i != index);
        let v = &model.vertexes[index];
        let number = match self.numbers.get(&index) {
            Some(&n) => n,
            None => {
                self.next_number += 1;
                self.numbers.insert(index, self.next_number);
                self.next_number
            }
        };

        if self.current != Some(index) {
            if let Some(old) = self.current {
                let old_number = self.numbers.get(&old).copied().unwrap_or(0);
                if let Some(p) = self.pending.get_mut(&old) {
                    if p.logs_partial {
                        writeln!(out)?;
                    }
                    // The unfinished line is printed whole when the block reopens.
                    p.logs_offset = 0;
                }
                writeln!(out, "#{old_number} ...")?;
            }
            if self.printed_any {
                writeln!(out)?;
            }
            self.printed_any = true;
            if self.truncate_names && v.name.chars().count() > 72 {
                let cut: String = v.name.chars().take(72).collect();
                writeln!(out, "#{number} {cut}...")?;
            } else {
                writeln!(out, "#{number} {}", v.name)?;
            }
        }

        let pending = self.pending.entry(index).or_default();
        pending.waiting_since = None;

        let mut open_transfer = false;
        for t in v.transfers.iter().filter(|t| t.started.is_some()) {
            if !pending.transfers.contains(&t.id) {
                continue;
            }
            if let (Some(&(last_current, last_time)), None) = (self.last_transfer.get(&t.id), t.completed) {
                let progress = if t.total > 0 { (t.current - last_current) as f64 / t.total as f64 } else { 0.0 };
                if progress < MIN_PROGRESS_DELTA && t.timestamp.since(last_time) < MIN_TIME_DELTA {
                    continue;
                }
            }
            self.last_transfer.insert(t.id.clone(), (t.current, t.timestamp));
            let bytes = if t.total != 0 {
                format!(" {} / {}", format_bytes(t.current), format_bytes(t.total))
            } else if t.current != 0 {
                format!(" {}", format_bytes(t.current))
            } else {
                String::new()
            };
            let mut time = String::new();
            if let Some(started) = t.started {
                let secs = t.completed.unwrap_or(t.timestamp).since(started).as_secs_f64();
                if secs > 0.01 {
                    time = format!(" {secs:.1}s");
                }
            }
            if t.completed.is_some() {
                time.push_str(" done");
            } else {
                open_transfer = true;
            }
            writeln!(out, "#{number} {}{bytes}{time}", t.id)?;
        }
        pending.transfers.clear();

        for &w in &v.warnings[pending.warnings_printed.min(v.warnings.len())..] {
            writeln!(out, "#{number} WARN: {}", model.warnings[w].short)?;
        }
        pending.warnings_printed = v.warnings.len();

        let count = pending.logs.len();
        for (k, line) in pending.logs.iter().enumerate() {
            if k == 0 && pending.logs_offset != 0 {
                out.write_all(line.get(pending.logs_offset..).unwrap_or_default())?;
            } else {
                write!(out, "#{number} ")?;
                out.write_all(line)?;
            }
            if k + 1 != count || !pending.logs_partial {
                writeln!(out)?;
            }
        }
        if count > 0 {
            if pending.logs_partial {
                let last = pending.logs.pop().unwrap_or_default();
                pending.logs_offset = last.len();
                pending.logs = vec![last];
            } else {
                pending.logs.clear();
                pending.logs_offset = 0;
            }
        }

        self.current = Some(index);
        if v.is_completed() && !open_transfer {
            self.current = None;
            if pending.logs_partial {
                writeln!(out)?;
            }
            if v.is_canceled() {
                writeln!(out, "#{number} CANCELED")?;
            } else if !v.error.is_empty() {
                writeln!(out, "#{number} ERROR: {}", v.error)?;
            } else if v.cached {
                writeln!(out, "#{number} CACHED")?;
            } else if v.is_started() {
                let secs = v.duration(Ts(0)).as_secs_f64();
                writeln!(out, "#{number} DONE {secs:.1}s")?;
            } else {
                writeln!(out, "#{number} DONE")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::model::tests::ts;
    use crate::proto::moby::buildkit::v1::{StatusResponse, Vertex, VertexLog, VertexStatus};

    fn render(messages: &[StatusResponse]) -> String {
        let mut model = Model::new();
        let mut printer = PlainPrinter::new(false);
        let mut out = Vec::new();
        for m in messages {
            let changes = model.apply(m);
            printer.update(&model, &changes, &mut out).unwrap();
        }
        printer.flush(&model, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn vtx(d: &str, name: &str, s: Option<i64>, c: Option<i64>) -> StatusResponse {
        StatusResponse {
            vertexes: vec![Vertex {
                digest: d.into(),
                name: name.into(),
                started: s.and_then(ts),
                completed: c.and_then(ts),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn log(d: &str, ms: i64, text: &str) -> StatusResponse {
        StatusResponse {
            logs: vec![VertexLog {
                vertex: d.into(),
                timestamp: ts(ms),
                stream: 1,
                msg: text.as_bytes().to_vec().into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn interleaved_vertexes_are_parked_with_dots_and_reopened() {
        let out = render(&[
            vtx("a", "step a", Some(0), None),
            log("a", 10, "a1\npart"),
            vtx("b", "step b", Some(20), None),
            // `a` goes quiet for 6 s, so `b`'s news takes the output.
            log("b", 6100, "b1\n"),
            log("a", 6200, "ial\n"),
            vtx("b", "step b", Some(20), Some(6300)),
            vtx("a", "step a", Some(0), Some(6400)),
        ]);
        assert_eq!(
            out,
            "#1 step a\n#1 0.010 a1\n#1 0.010 part\n#1 ...\n\n#2 step b\n#2 6.080 b1\n#2 DONE 6.3s\n\n#1 step a\n#1 0.010 partial\n#1 DONE 6.4s\n"
        );
    }

    #[test]
    fn running_transfers_are_thinned() {
        let status = |cur: i64, ms: i64, done: bool| StatusResponse {
            statuses: vec![VertexStatus {
                id: "sha256:aaa".into(),
                vertex: "a".into(),
                current: cur,
                total: 10_000_000,
                timestamp: ts(ms),
                started: ts(0),
                completed: if done { ts(ms) } else { None },
                ..Default::default()
            }],
            ..Default::default()
        };
        let out = render(&[
            vtx("a", "pull", Some(0), None),
            status(100_000, 100, false),
            status(200_000, 200, false),
            status(900_000, 300, false),
            status(10_000_000, 1500, true),
            vtx("a", "pull", Some(0), Some(1600)),
        ]);
        assert_eq!(
            out,
            "#1 pull\n#1 sha256:aaa 100.00kB / 10.00MB 0.1s\n#1 sha256:aaa 900.00kB / 10.00MB 0.3s\n#1 sha256:aaa 10.00MB / 10.00MB 1.5s done\n#1 DONE 1.6s\n"
        );
    }
}
