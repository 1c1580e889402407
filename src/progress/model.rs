//! The build's state as the daemon has reported it so far.
//!
//! [`Model::apply`] folds one `StatusResponse` into the state and returns what
//! changed, so a streaming renderer (plain) can print just the news while a
//! redrawing one (tty) reads the whole state. No I/O and no clock live here:
//! every time is the daemon's, which keeps rendering from a recorded stream
//! deterministic.
//!
//! The rules follow BuildKit's own progress trace (`util/progress/progressui`):
//! a vertex may run more than once (its run intervals are merged), a record
//! without a start time does not reset a started vertex, vertexes in a
//! progress group are shown as one entry named after the group, and log
//! chunks are split into lines stamped with their offset from the vertex's
//! start.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::proto::moby::buildkit::v1::{StatusResponse, Vertex, VertexLog, VertexStatus, VertexWarning};

use super::failure::SourceSnippet;

/// How many complete log lines each vertex keeps (for the tty's live tail and
/// the failure report). The daemon clips logs itself; this bounds our memory.
pub(crate) const LOG_LINES_KEPT: usize = 20;

/// A daemon timestamp: nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Ts(pub(crate) i64);

impl Ts {
    pub(crate) fn from_proto(t: &prost_types::Timestamp) -> Ts {
        Ts(t.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nanos)))
    }

    fn from_opt(t: Option<&prost_types::Timestamp>) -> Option<Ts> {
        t.map(Ts::from_proto)
    }

    /// The time from `earlier` to `self`; zero when `earlier` is later.
    pub(crate) fn since(self, earlier: Ts) -> Duration {
        Duration::from_nanos(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// One run of a vertex; `stop` is `None` while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interval {
    pub(crate) start: Ts,
    pub(crate) stop: Option<Ts>,
}

impl Interval {
    fn duration(&self, now: Ts) -> Duration {
        self.stop.unwrap_or(now).since(self.start)
    }
}

/// Merges overlapping runs; an open run swallows every run after it.
fn merge_intervals(intervals: &BTreeMap<Ts, Option<Ts>>) -> Vec<Interval> {
    let mut merged: Vec<Interval> = Vec::new();
    for (&start, &stop) in intervals {
        let next = Interval { start, stop };
        let Some(cur) = merged.last_mut() else {
            merged.push(next);
            continue;
        };
        match cur.stop {
            None => break,
            Some(cur_stop) if cur_stop < next.start => merged.push(next),
            Some(cur_stop) => match next.stop {
                None => {
                    cur.stop = None;
                    break;
                }
                Some(next_stop) if next_stop > cur_stop => cur.stop = Some(next_stop),
                Some(_) => {}
            },
        }
    }
    merged
}

/// A byte transfer or other sub-task of a vertex (a layer pull, a context upload).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transfer {
    pub(crate) id: String,
    pub(crate) current: i64,
    pub(crate) total: i64,
    pub(crate) timestamp: Ts,
    pub(crate) started: Option<Ts>,
    pub(crate) completed: Option<Ts>,
}

/// One line of a vertex's output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogLine {
    /// Counts the vertex's lines from 0; a partial line keeps its number as it grows.
    pub(crate) seq: u64,
    /// Time from the vertex's latest start to the chunk that began the line.
    pub(crate) offset_nanos: i64,
    pub(crate) text: Vec<u8>,
}

impl LogLine {
    /// The line as buildctl prints it: `0.123 text`.
    pub(crate) fn render(&self) -> String {
        format!("{} {}", format_log_offset(self.offset_nanos), String::from_utf8_lossy(&self.text))
    }
}

/// Seconds with 3 decimals below 10 s, 2 below 100 s, else 1 — buildctl's log stamp.
pub(crate) fn format_log_offset(nanos: i64) -> String {
    let secs = nanos as f64 / 1e9;
    let precision = if secs < 10.0 {
        3
    } else if secs < 100.0 {
        2
    } else {
        1
    };
    format!("{secs:.precision$}")
}

/// The last lines of a vertex's output, bounded.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogBuffer {
    lines: VecDeque<LogLine>,
    partial: Option<LogLine>,
    next_seq: u64,
    /// Every byte of output received, kept or not.
    pub(crate) bytes: u64,
}

impl LogBuffer {
    /// The last `n` lines, the unfinished one included.
    pub(crate) fn tail(&self, n: usize) -> Vec<&LogLine> {
        let len = self.lines.len() + usize::from(self.partial.is_some());
        self.lines.iter().chain(self.partial.as_ref()).skip(len.saturating_sub(n)).collect()
    }

    fn push_complete(&mut self, line: LogLine) {
        if self.lines.len() == LOG_LINES_KEPT {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

/// A piece of log output as it arrived, for renderers that stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogPiece {
    pub(crate) vertex: usize,
    /// Continues the line the previous piece left unfinished.
    pub(crate) continues: bool,
    /// The offset stamp of the line this piece belongs to.
    pub(crate) offset_nanos: i64,
    pub(crate) text: Vec<u8>,
    /// The piece ends with a newline.
    pub(crate) complete: bool,
}

/// A warning from the frontend (a Dockerfile lint rule, a deprecated option).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Warning {
    /// The model index of the vertex it belongs to, when that vertex is known.
    pub(crate) vertex: Option<usize>,
    pub(crate) level: i64,
    pub(crate) short: String,
    pub(crate) detail: Vec<String>,
    pub(crate) url: String,
    pub(crate) source: Option<SourceSnippet>,
}

/// A member of a progress group, as last reported.
#[derive(Debug, Clone)]
struct GroupMember {
    digest: String,
    started: Option<Ts>,
    completed: Option<Ts>,
    cached: bool,
    error: String,
    weak: bool,
}

/// The fields whose change makes a vertex worth reprinting.
#[derive(Debug, Clone, PartialEq)]
struct VertexRecord {
    name: String,
    started: Option<Ts>,
    completed: Option<Ts>,
    cached: bool,
    error: String,
}

/// A step of the build as shown to people: a vertex, or a progress group
/// standing for its members.
#[derive(Debug, Clone)]
pub(crate) struct VertexState {
    /// The vertex digest, or the progress group id for a group.
    pub(crate) digest: String,
    pub(crate) name: String,
    pub(crate) inputs: Vec<String>,
    pub(crate) cached: bool,
    /// The daemon's error text; empty when the vertex has not failed.
    pub(crate) error: String,
    /// 1-based position in start order; `None` until the vertex starts.
    pub(crate) number: Option<u32>,
    intervals: BTreeMap<Ts, Option<Ts>>,
    pub(crate) merged: Vec<Interval>,
    /// Sub-tasks in the order they were first reported.
    pub(crate) transfers: Vec<Transfer>,
    pub(crate) logs: LogBuffer,
    /// Indexes into [`Model::warnings`].
    pub(crate) warnings: Vec<usize>,
    /// A progress group stays hidden until one of its non-weak members starts.
    pub(crate) hidden: bool,
    members: Option<Vec<GroupMember>>,
    prev: Option<VertexRecord>,
}

impl VertexState {
    fn new(digest: &str, name: &str) -> Self {
        VertexState {
            digest: digest.to_string(),
            name: name.to_string(),
            inputs: Vec::new(),
            cached: false,
            error: String::new(),
            number: None,
            intervals: BTreeMap::new(),
            merged: Vec::new(),
            transfers: Vec::new(),
            logs: LogBuffer::default(),
            warnings: Vec::new(),
            hidden: false,
            members: None,
            prev: None,
        }
    }

    pub(crate) fn is_started(&self) -> bool {
        !self.merged.is_empty()
    }

    /// Finished its latest run (a vertex can be started again later).
    pub(crate) fn is_completed(&self) -> bool {
        self.merged.last().is_some_and(|i| i.stop.is_some())
    }

    pub(crate) fn latest_start(&self) -> Option<Ts> {
        self.merged.last().map(|i| i.start)
    }

    pub(crate) fn latest_stop(&self) -> Option<Ts> {
        self.merged.last().and_then(|i| i.stop)
    }

    /// Time spent running, summed over merged runs; a running run counts up to `now`.
    pub(crate) fn duration(&self, now: Ts) -> Duration {
        self.merged.iter().map(|i| i.duration(now)).sum()
    }

    /// The daemon reports a cancelled step as an error ending in this text.
    pub(crate) fn is_canceled(&self) -> bool {
        !self.error.is_empty() && self.error.ends_with("context canceled")
    }

    pub(crate) fn has_failed(&self) -> bool {
        !self.error.is_empty() && !self.is_canceled()
    }
}

/// What one update changed, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Started, finished, was cached, failed or was renamed.
    Vertex(usize),
    Transfer {
        vertex: usize,
        id: String,
    },
    Warning {
        vertex: usize,
        warning: usize,
    },
    Log(LogPiece),
}

impl Change {
    pub(crate) fn vertex(&self) -> usize {
        match self {
            Change::Vertex(v) | Change::Transfer { vertex: v, .. } | Change::Warning { vertex: v, .. } => *v,
            Change::Log(piece) => piece.vertex,
        }
    }
}

/// Everything the daemon has said about the build so far.
#[derive(Debug, Default)]
pub(crate) struct Model {
    /// Vertexes and groups in first-seen order.
    pub(crate) vertexes: Vec<VertexState>,
    /// Vertex digest (group members included) to index in `vertexes`.
    by_digest: HashMap<String, usize>,
    groups: HashMap<String, usize>,
    /// Indexes of started vertexes in start order: the order people see.
    started: Vec<usize>,
    /// All warnings in arrival order, for vertexes known or not.
    pub(crate) warnings: Vec<Warning>,
    first_start: Option<Ts>,
    latest: Option<Ts>,
}

impl Model {
    pub(crate) fn new() -> Self {
        Model::default()
    }

    /// Started vertexes (and revealed groups) in start order.
    pub(crate) fn shown(&self) -> impl Iterator<Item = (usize, &VertexState)> {
        self.started.iter().map(|&i| (i, &self.vertexes[i])).filter(|(_, v)| !v.hidden)
    }

    pub(crate) fn vertex_index(&self, digest: &str) -> Option<usize> {
        self.by_digest.get(digest).copied()
    }

    /// When the first vertex started, by the daemon's clock.
    pub(crate) fn first_start(&self) -> Option<Ts> {
        self.first_start
    }

    /// The latest time the daemon has mentioned: "now" for a finished stream.
    /// The update the daemon sends for steps still running when a build is
    /// cancelled (`context canceled`), completed at `now`: when we stop the
    /// build ourselves we stop listening before it arrives, yet the view
    /// should end as buildctl's does, with those steps marked CANCELED.
    pub(crate) fn cancel_running(&self, now: Ts) -> StatusResponse {
        let timestamp = |ts: Ts| prost_types::Timestamp {
            seconds: ts.0.div_euclid(1_000_000_000),
            nanos: ts.0.rem_euclid(1_000_000_000) as i32,
        };
        let vertexes = self
            .vertexes
            .iter()
            .filter(|v| v.members.is_none() && v.is_started() && !v.is_completed())
            .map(|v| crate::proto::moby::buildkit::v1::Vertex {
                digest: v.digest.clone(),
                name: v.name.clone(),
                inputs: v.inputs.clone(),
                cached: v.cached,
                started: v.latest_start().map(timestamp),
                completed: Some(timestamp(now.max(v.latest_start().unwrap_or(now)))),
                error: "context canceled".into(),
                ..Default::default()
            })
            .collect();
        StatusResponse { vertexes, ..Default::default() }
    }

    pub(crate) fn latest(&self) -> Option<Ts> {
        self.latest
    }

    /// Steps that can be shown (started or not); hidden groups aside.
    pub(crate) fn count_total(&self) -> usize {
        self.vertexes.iter().filter(|v| !v.hidden).count()
    }

    pub(crate) fn count_completed(&self) -> usize {
        self.vertexes.iter().filter(|v| !v.hidden && v.is_completed()).count()
    }

    /// From the first start to the last stop (or the latest time seen while
    /// something still runs): the build's length as the daemon saw it.
    pub(crate) fn elapsed(&self) -> Duration {
        let Some(first) = self.first_start else {
            return Duration::ZERO;
        };
        let end = self.vertexes.iter().filter_map(|v| v.latest_stop()).chain(self.latest).max().unwrap_or(first);
        end.since(first)
    }

    fn see(&mut self, t: Option<Ts>) {
        if let Some(t) = t {
            self.latest = Some(self.latest.map_or(t, |l| l.max(t)));
        }
    }

    fn see_start(&mut self, t: Option<Ts>) {
        if let Some(t) = t {
            self.first_start = Some(self.first_start.map_or(t, |f| f.min(t)));
        }
        self.see(t);
    }

    fn mark_started(&mut self, index: usize) {
        self.started.push(index);
        let number = u32::try_from(self.started.len()).unwrap_or(u32::MAX);
        self.vertexes[index].number = Some(number);
    }

    /// Folds one status message in and says what changed.
    pub(crate) fn apply(&mut self, status: &StatusResponse) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut touched_groups: Vec<usize> = Vec::new();
        for vertex in &status.vertexes {
            match &vertex.progress_group {
                Some(group) if !group.id.is_empty() => {
                    let index = self.apply_group_member(vertex, &group.id, &group.name, group.weak);
                    if !touched_groups.contains(&index) {
                        touched_groups.push(index);
                    }
                }
                _ => {
                    if let Some(index) = self.apply_vertex(vertex) {
                        changes.push(Change::Vertex(index));
                    }
                }
            }
        }
        for index in touched_groups {
            if self.refresh_group(index) {
                changes.push(Change::Vertex(index));
            }
        }
        for s in &status.statuses {
            if let Some(change) = self.apply_status(s) {
                changes.push(change);
            }
        }
        for w in &status.warnings {
            if let Some(change) = self.apply_warning(w) {
                changes.push(change);
            }
        }
        for log in &status.logs {
            changes.extend(self.apply_log(log).into_iter().map(Change::Log));
        }
        changes
    }

    /// Returns the vertex's index when something people see changed.
    fn apply_vertex(&mut self, v: &Vertex) -> Option<usize> {
        let started = Ts::from_opt(v.started.as_ref());
        let completed = Ts::from_opt(v.completed.as_ref());
        self.see_start(started);
        self.see(completed);
        let index = match self.by_digest.get(&v.digest) {
            Some(&i) => i,
            None => {
                self.vertexes.push(VertexState::new(&v.digest, &v.name));
                let i = self.vertexes.len() - 1;
                self.by_digest.insert(v.digest.clone(), i);
                i
            }
        };
        let record =
            VertexRecord { name: v.name.clone(), started, completed, cached: v.cached, error: v.error.clone() };
        let state = &self.vertexes[index];
        let was_started = state.is_started();
        // Like buildctl, only a record with a start time counts as an event;
        // a finish time is news only when it is set.
        let changed = started.is_some()
            && match &state.prev {
                None => true,
                Some(prev) => {
                    prev.name != record.name
                        || prev.started != record.started
                        || (record.completed.is_some() && prev.completed != record.completed)
                        || prev.cached != record.cached
                        || prev.error != record.error
                }
            };
        if started.is_some() && !was_started {
            self.mark_started(index);
        }
        let state = &mut self.vertexes[index];
        // The daemon repeats a vertex without times when another job loads
        // it; that must not undo what a started vertex already reported.
        if !was_started || started.is_some() {
            state.name = v.name.clone();
            state.inputs = v.inputs.clone();
            state.cached = v.cached;
            state.error = v.error.clone();
        }
        if let Some(start) = started {
            state.intervals.insert(start, completed);
            state.merged = merge_intervals(&state.intervals);
            state.prev = Some(record);
        }
        changed.then_some(index)
    }

    fn apply_group_member(&mut self, v: &Vertex, id: &str, name: &str, weak: bool) -> usize {
        let started = Ts::from_opt(v.started.as_ref());
        let completed = Ts::from_opt(v.completed.as_ref());
        self.see_start(started);
        self.see(completed);
        let index = match self.groups.get(id) {
            Some(&i) => i,
            None => {
                let mut state = VertexState::new(id, name);
                state.hidden = true;
                state.members = Some(Vec::new());
                self.vertexes.push(state);
                let i = self.vertexes.len() - 1;
                self.groups.insert(id.to_string(), i);
                i
            }
        };
        self.by_digest.insert(v.digest.clone(), index);
        let member = GroupMember {
            digest: v.digest.clone(),
            started,
            completed,
            cached: v.cached,
            error: v.error.clone(),
            weak,
        };
        if let Some(members) = self.vertexes[index].members.as_mut() {
            match members.iter_mut().find(|m| m.digest == v.digest) {
                Some(existing) => *existing = member,
                None => members.push(member),
            }
        }
        index
    }

    /// Recomputes a group from its members; true when it visibly changed.
    fn refresh_group(&mut self, index: usize) -> bool {
        let state = &mut self.vertexes[index];
        let Some(members) = state.members.as_ref() else {
            return false;
        };
        let was_hidden = state.hidden;
        let old = (state.cached, state.error.clone(), state.merged.clone());
        let mut cached = true;
        let mut error = String::new();
        let mut hidden = state.hidden;
        let mut intervals = BTreeMap::new();
        for m in members {
            if let Some(start) = m.started {
                intervals.insert(start, m.completed);
                if !m.weak {
                    hidden = false;
                }
            }
            cached &= m.cached;
            if !m.error.is_empty() {
                // A failure must be seen even if only weak members ran.
                hidden = false;
                if error.is_empty() {
                    error = m.error.clone();
                }
            }
        }
        state.cached = cached;
        state.error = error;
        state.hidden = hidden;
        state.intervals = intervals;
        state.merged = merge_intervals(&state.intervals);
        let revealed = was_hidden && !hidden;
        let changed = revealed || old != (state.cached, state.error.clone(), state.merged.clone());
        if revealed {
            self.mark_started(index);
        }
        changed && !self.vertexes[index].hidden
    }

    fn apply_status(&mut self, s: &VertexStatus) -> Option<Change> {
        let index = self.vertex_index(&s.vertex)?;
        let timestamp = Ts::from_opt(s.timestamp.as_ref());
        let started = Ts::from_opt(s.started.as_ref());
        let completed = Ts::from_opt(s.completed.as_ref());
        self.see(timestamp);
        self.see(completed);
        let transfer = Transfer {
            id: s.id.clone(),
            current: s.current,
            total: s.total,
            timestamp: timestamp.unwrap_or(Ts(0)),
            started,
            completed,
        };
        let transfers = &mut self.vertexes[index].transfers;
        match transfers.iter_mut().find(|t| t.id == s.id) {
            Some(existing) => *existing = transfer,
            None => transfers.push(transfer),
        }
        Some(Change::Transfer { vertex: index, id: s.id.clone() })
    }

    fn apply_warning(&mut self, w: &VertexWarning) -> Option<Change> {
        let vertex = self.vertex_index(&w.vertex);
        let source = w.info.as_ref().map(|info| SourceSnippet::from_proto(info, &w.ranges));
        self.warnings.push(Warning {
            vertex,
            level: w.level,
            short: String::from_utf8_lossy(&w.short).into_owned(),
            detail: w.detail.iter().map(|d| String::from_utf8_lossy(d).into_owned()).collect(),
            url: w.url.clone(),
            source,
        });
        let warning = self.warnings.len() - 1;
        let vertex = vertex?;
        self.vertexes[vertex].warnings.push(warning);
        Some(Change::Warning { vertex, warning })
    }

    fn apply_log(&mut self, log: &VertexLog) -> Vec<LogPiece> {
        let Some(index) = self.vertex_index(&log.vertex) else {
            return Vec::new();
        };
        let timestamp = Ts::from_opt(log.timestamp.as_ref());
        self.see(timestamp);
        let state = &mut self.vertexes[index];
        let offset_nanos = match (timestamp, state.latest_start()) {
            (Some(t), Some(start)) => t.0.saturating_sub(start.0),
            _ => 0,
        };
        state.logs.bytes += log.msg.len() as u64;
        let mut pieces = Vec::new();
        let mut rest: &[u8] = &log.msg;
        while !rest.is_empty() {
            let (text, complete, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(n) => (&rest[..n], true, &rest[n + 1..]),
                None => (rest, false, &rest[rest.len()..]),
            };
            rest = next;
            let buffer = &mut state.logs;
            let mut line = match buffer.partial.take() {
                Some(mut line) => {
                    pieces.push(LogPiece {
                        vertex: index,
                        continues: true,
                        offset_nanos: line.offset_nanos,
                        text: text.to_vec(),
                        complete,
                    });
                    line.text.extend_from_slice(text);
                    line
                }
                None => {
                    let line = LogLine { seq: buffer.next_seq, offset_nanos, text: text.to_vec() };
                    buffer.next_seq += 1;
                    pieces.push(LogPiece {
                        vertex: index,
                        continues: false,
                        offset_nanos,
                        text: text.to_vec(),
                        complete,
                    });
                    line
                }
            };
            if complete {
                buffer.push_complete(line);
            } else {
                // Bound a line that never ends (a progress bar redrawn with \r).
                if line.text.len() > 64 * 1024 {
                    let cut = line.text.len() - 64 * 1024;
                    line.text.drain(..cut);
                }
                buffer.partial = Some(line);
            }
        }
        pieces
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::pb::ProgressGroup;

    /// A timestamp `ms` milliseconds after a fixed instant.
    pub(crate) fn ts(ms: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds: 1_700_000_000 + ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 })
    }

    /// A vertex started and completed at `ts(ms)` times.
    pub(crate) fn vertex(digest: &str, name: &str, started: Option<i64>, completed: Option<i64>) -> Vertex {
        Vertex {
            digest: digest.into(),
            name: name.into(),
            started: started.and_then(ts),
            completed: completed.and_then(ts),
            ..Default::default()
        }
    }

    pub(crate) fn with_vertexes(vertexes: Vec<Vertex>) -> StatusResponse {
        StatusResponse { vertexes, ..Default::default() }
    }

    /// A source range on one line, from character `from` to `to`.
    pub(crate) fn range(line: i32, from: i32, to: i32) -> crate::proto::pb::Range {
        use crate::proto::pb::{Position, Range};
        Range { start: Some(Position { line, character: from }), end: Some(Position { line, character: to }) }
    }

    #[test]
    fn numbers_vertexes_in_start_order_not_first_seen_order() {
        let mut m = Model::new();
        m.apply(&with_vertexes(vec![vertex("a", "A", None, None), vertex("b", "B", None, None)]));
        m.apply(&with_vertexes(vec![vertex("b", "B", Some(0), None)]));
        m.apply(&with_vertexes(vec![vertex("a", "A", Some(5), None)]));
        let shown: Vec<_> = m.shown().map(|(_, v)| (v.name.clone(), v.number)).collect();
        assert_eq!(shown, vec![("B".to_string(), Some(1)), ("A".to_string(), Some(2))]);
        assert_eq!(m.count_total(), 2);
        assert_eq!(m.count_completed(), 0);
    }

    #[test]
    fn record_without_times_does_not_reset_started_vertex() {
        let mut m = Model::new();
        m.apply(&with_vertexes(vec![vertex("a", "A", Some(0), Some(300))]));
        let changes = m.apply(&with_vertexes(vec![vertex("a", "A", None, None)]));
        assert!(changes.is_empty());
        let v = &m.vertexes[0];
        assert!(v.is_completed());
        assert_eq!(v.duration(Ts(0)), Duration::from_millis(300));
    }

    #[test]
    fn merges_repeated_runs() {
        let mut intervals = BTreeMap::new();
        intervals.insert(Ts(0), Some(Ts(10)));
        intervals.insert(Ts(5), Some(Ts(20)));
        intervals.insert(Ts(30), Some(Ts(40)));
        intervals.insert(Ts(35), Some(Ts(36)));
        let merged = merge_intervals(&intervals);
        assert_eq!(
            merged,
            vec![Interval { start: Ts(0), stop: Some(Ts(20)) }, Interval { start: Ts(30), stop: Some(Ts(40)) }]
        );
        intervals.insert(Ts(15), None);
        assert_eq!(merge_intervals(&intervals), vec![Interval { start: Ts(0), stop: None }]);
    }

    #[test]
    fn splits_logs_into_stamped_lines_and_joins_partial_ones() {
        let mut m = Model::new();
        m.apply(&with_vertexes(vec![vertex("a", "A", Some(0), None)]));
        let log = |ms: i64, msg: &str| StatusResponse {
            logs: vec![VertexLog {
                vertex: "a".into(),
                timestamp: ts(ms),
                stream: 1,
                msg: msg.as_bytes().to_vec().into(),
            }],
            ..Default::default()
        };
        let changes = m.apply(&log(47, "one\ntwo\npart"));
        assert_eq!(changes.len(), 3);
        m.apply(&log(1500, "ial\nnext\n"));
        let lines: Vec<String> = m.vertexes[0].logs.tail(10).iter().map(|l| l.render()).collect();
        assert_eq!(lines, vec!["0.047 one", "0.047 two", "0.047 partial", "1.500 next"]);
        assert_eq!(m.vertexes[0].logs.bytes, 21);
    }

    #[test]
    fn keeps_only_the_last_lines() {
        let mut m = Model::new();
        m.apply(&with_vertexes(vec![vertex("a", "A", Some(0), None)]));
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        m.apply(&StatusResponse {
            logs: vec![VertexLog { vertex: "a".into(), timestamp: ts(1), stream: 1, msg: text.into_bytes().into() }],
            ..Default::default()
        });
        let tail = m.vertexes[0].logs.tail(100);
        assert_eq!(tail.len(), LOG_LINES_KEPT);
        assert_eq!(tail[0].text, b"line 30");
        assert_eq!(tail[0].seq, 30);
    }

    #[test]
    fn progress_group_is_one_step_revealed_by_a_non_weak_member() {
        let mut m = Model::new();
        let member = |d: &str, weak: bool, s: Option<i64>, c: Option<i64>, cached: bool| Vertex {
            digest: d.into(),
            name: format!("member {d}"),
            started: s.and_then(ts),
            completed: c.and_then(ts),
            cached,
            progress_group: Some(ProgressGroup { id: "g1".into(), name: "COPY --link".into(), weak }),
            ..Default::default()
        };
        let changes = m.apply(&with_vertexes(vec![member("x", true, Some(0), Some(10), true)]));
        assert!(changes.is_empty(), "a weak member alone keeps the group hidden");
        assert_eq!(m.shown().count(), 0);
        let changes = m.apply(&with_vertexes(vec![member("y", false, Some(10), Some(30), true)]));
        assert_eq!(changes, vec![Change::Vertex(0)]);
        let (_, group) = m.shown().next().expect("group shown");
        assert_eq!(group.name, "COPY --link");
        assert!(group.cached && group.is_completed());
        assert_eq!(group.duration(Ts(0)), Duration::from_millis(30));
        assert_eq!(m.vertex_index("x"), Some(0));
    }

    #[test]
    fn transfers_and_warnings_attach_to_their_vertex() {
        let mut m = Model::new();
        m.apply(&with_vertexes(vec![vertex("a", "A", Some(0), None)]));
        let changes = m.apply(&StatusResponse {
            statuses: vec![VertexStatus {
                id: "sha256:abc".into(),
                vertex: "a".into(),
                current: 10,
                total: 100,
                timestamp: ts(20),
                started: ts(1),
                ..Default::default()
            }],
            warnings: vec![
                VertexWarning { vertex: "a".into(), short: b"careful".to_vec().into(), ..Default::default() },
                VertexWarning { vertex: "unknown".into(), short: b"orphan".to_vec().into(), ..Default::default() },
            ],
            ..Default::default()
        });
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(m.vertexes[0].transfers[0].total, 100);
        assert_eq!(m.vertexes[0].warnings, vec![0]);
        assert_eq!(m.warnings.len(), 2);
        assert_eq!(m.warnings[1].vertex, None);
        assert_eq!(m.latest(), Some(Ts::from_proto(&ts(20).unwrap())));
    }

    #[test]
    fn cancel_is_not_a_failure() {
        let mut m = Model::new();
        let mut v = vertex("a", "A", Some(0), Some(5));
        v.error = "failed: context canceled".into();
        m.apply(&with_vertexes(vec![v]));
        assert!(m.vertexes[0].is_canceled());
        assert!(!m.vertexes[0].has_failed());
    }

    #[test]
    fn log_offset_precision_shrinks_with_size() {
        assert_eq!(format_log_offset(47_000_000), "0.047");
        assert_eq!(format_log_offset(12_345_000_000), "12.35");
        assert_eq!(format_log_offset(123_456_000_000), "123.5");
    }
}
