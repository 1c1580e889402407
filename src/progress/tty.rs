//! The live terminal view, drawn in place like buildx's:
//!
//! ```text
//! [+] Building 12.3s (7/9)
//!  => [internal] load build definition from Dockerfile            0.0s
//!  => CACHED [2/4] RUN echo "step one" > /one.txt                  0.0s
//!  => [4/4] RUN make                                               3.1s
//!  => => # compiling foo.c
//!  => => sha256:1f2e… 1.20MB / 3.40MB                              0.5s
//! ```
//!
//! A frame is computed from the model as plain lines ([`frame`]), then
//! [`TtyDisplay`] paints it over the previous one with ANSI cursor moves
//! (up, clear to end of line, clear below). Finished steps take one line
//! with their duration (blue), failed ones red, cancelled ones and warnings
//! yellow; running steps show their last log lines, dimmed. Colours follow
//! progressui's defaults and are off with `NO_COLOR`. Lines are cut to the
//! terminal width so the cursor arithmetic stays right, and a live frame is
//! cut to the terminal height, running steps kept first.

use std::io::{self, Write};

use super::model::{Model, Ts};
use crate::units::human_size as format_bytes;

/// Log lines shown under a running step (`BUILDKIT_TTY_LOG_LINES` overrides).
pub(crate) const DEFAULT_LOG_LINES: usize = 6;

/// How a line is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Normal,
    Done,
    Error,
    Canceled,
    Warning,
    Faint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) text: String,
    pub(crate) tone: Tone,
}

/// What [`frame`] draws into.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameSize {
    pub(crate) width: usize,
    /// `None` draws everything (the final frame).
    pub(crate) height: Option<usize>,
    pub(crate) log_lines: usize,
}

/// One step's lines; `running` steps are kept when the frame must shrink.
struct Block {
    lines: Vec<Line>,
    logs: Vec<Line>,
    running: bool,
}

/// Lays out the view of `model` at daemon time `now`. `finished` marks the
/// last frame of the build.
pub(crate) fn frame(model: &Model, now: Ts, size: FrameSize, finished: bool) -> Vec<Line> {
    let width = size.width.max(20);
    let elapsed = model.first_start().map(|start| now.since(start).as_secs_f64()).unwrap_or(0.0);
    let (done, total) = (model.count_completed(), model.count_total());
    let mut header = format!("[+] Building {elapsed:.1}s ({done}/{total})");
    if finished && done > 0 && done == total {
        header.push_str(" FINISHED");
    }
    let mut blocks = Vec::new();
    for (_, v) in model.shown() {
        let mut name = v.name.replace('\t', " ");
        if v.is_canceled() {
            name = format!("CANCELED {name}");
        } else if !v.error.is_empty() {
            name = format!("ERROR {name}");
        }
        if v.cached {
            name = format!("CACHED {name}");
        }
        let tone = if !v.is_completed() {
            Tone::Normal
        } else if v.is_canceled() {
            Tone::Canceled
        } else if !v.error.is_empty() {
            Tone::Error
        } else {
            Tone::Done
        };
        let mut lines = Vec::new();
        lines.extend(
            job_line(" => ", &name, "", Some(v.duration(now).as_secs_f64()), width).map(|text| Line { text, tone }),
        );
        for t in v.transfers.iter().filter(|t| t.started.is_some()) {
            let status = if t.total != 0 {
                format!("{} / {}", format_bytes(t.current), format_bytes(t.total))
            } else if t.current != 0 {
                format_bytes(t.current)
            } else {
                String::new()
            };
            let secs = t.started.map(|s| t.completed.unwrap_or(now).since(s).as_secs_f64());
            let tone = if t.completed.is_some() { Tone::Done } else { Tone::Normal };
            lines.extend(job_line(" => => ", &t.id, &status, secs, width).map(|text| Line { text, tone }));
        }
        for &w in &v.warnings {
            let text = format!("WARN: {}", model.warnings[w].short);
            lines.extend(job_line(" => ", &text, "", None, width).map(|text| Line { text, tone: Tone::Warning }));
        }
        let running = v.is_started() && !v.is_completed();
        let logs = if running {
            v.logs
                .tail(size.log_lines)
                .iter()
                .map(|l| Line {
                    text: cut(&format!(" => => # {}", clean_log_text(&l.text)), width - 1),
                    tone: Tone::Faint,
                })
                .collect()
        } else {
            Vec::new()
        };
        blocks.push(Block { lines, logs, running });
    }
    let mut out = vec![Line { text: cut(&header, width - 1), tone: Tone::Normal }];
    match size.height {
        None => {
            for block in blocks {
                out.extend(block.lines);
                out.extend(block.logs);
            }
        }
        Some(height) => out.extend(fit(blocks, height.saturating_sub(2).max(1))),
    }
    out
}

/// Shrinks the blocks to `limit` lines: first finished steps go (oldest
/// first), then log tails, then whatever is oldest.
fn fit(mut blocks: Vec<Block>, limit: usize) -> Vec<Line> {
    // One pass per rule with a running count: a long build has hundreds of
    // finished steps and this runs ten times a second.
    let size = |b: &Block| b.lines.len() + b.logs.len();
    let mut count: usize = blocks.iter().map(size).sum();
    blocks.retain(|b| {
        if count <= limit || b.running {
            return true;
        }
        count -= size(b);
        false
    });
    for block in &mut blocks {
        if count <= limit {
            break;
        }
        let cut = (count - limit).min(block.logs.len());
        block.logs.drain(..cut);
        count -= cut;
    }
    let mut lines: Vec<Line> = blocks.into_iter().flat_map(|b| b.lines.into_iter().chain(b.logs)).collect();
    if lines.len() > limit {
        lines.drain(..lines.len() - limit);
    }
    lines
}

/// A job line: prefix and name on the left, status after the name, the
/// timer flush right; `None` when the terminal is too narrow to say anything.
fn job_line(prefix: &str, name: &str, status: &str, secs: Option<f64>, width: usize) -> Option<String> {
    let timer = match secs {
        Some(secs) => format!(" {:.1}s", if secs < 0.05 { 0.0 } else { secs }),
        None => String::new(),
    };
    let status_len = status.chars().count();
    let mut left = width.checked_sub(prefix.len() + timer.len() + 2)?;
    let show_status = status_len > 0 && left + status_len > 20;
    if show_status {
        left = left.checked_sub(status_len + 1)?;
    }
    if left < 12 {
        return None;
    }
    let mut text = format!("{prefix}{}", cut(name, left));
    if show_status {
        text.push(' ');
        text.push_str(status);
    }
    if timer.is_empty() {
        return Some(text);
    }
    let pad = (width - timer.len() - 2).saturating_sub(text.chars().count());
    Some(format!("{text}{} {timer}", " ".repeat(pad)))
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// What a terminal would show of one output line: the text after the last
/// carriage return, without escape sequences or other control characters.
fn clean_log_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches('\r');
    let text = text.rsplit('\r').next().unwrap_or("");
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI sequences end at a letter; other escapes take one character.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() || c == '~' {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Paints frames over each other.
#[derive(Debug)]
pub(crate) struct TtyDisplay {
    color: bool,
    /// Lines of the frame on screen, which the next frame overwrites.
    drawn: usize,
}

impl TtyDisplay {
    pub(crate) fn new(color: bool) -> Self {
        TtyDisplay { color, drawn: 0 }
    }

    pub(crate) fn draw(&mut self, out: &mut dyn Write, lines: &[Line]) -> io::Result<()> {
        let mut buf = String::from("\x1b[?25l");
        if self.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A", self.drawn));
        }
        buf.push('\r');
        for line in lines {
            buf.push_str(&styled(line, self.color));
            buf.push_str("\x1b[K\n");
        }
        // A shorter frame must not leave the old frame's tail behind.
        buf.push_str("\x1b[J\x1b[?25h");
        self.drawn = lines.len();
        out.write_all(buf.as_bytes())?;
        out.flush()
    }
}

fn styled(line: &Line, color: bool) -> String {
    let code = match line.tone {
        _ if !color => return line.text.clone(),
        Tone::Normal => return line.text.clone(),
        Tone::Done => "34",
        Tone::Error => "31",
        Tone::Canceled | Tone::Warning => "33",
        Tone::Faint => "2",
    };
    format!("\x1b[{code}m{}\x1b[0m", line.text)
}

/// The lines as text, without colour or trailing blanks.
#[cfg(test)]
pub(crate) fn plain_text(lines: &[Line]) -> String {
    lines.iter().map(|l| format!("{}\n", l.text.trim_end())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_line_puts_the_timer_flush_right() {
        let line = job_line(" => ", "[1/2] FROM busybox", "", Some(1.234), 40).unwrap();
        assert_eq!(line, " => [1/2] FROM busybox             1.2s");
        assert_eq!(line.chars().count(), 39);
        let short = job_line(" => ", "a very long step name that will not fit", "", Some(0.01), 40).unwrap();
        assert_eq!(short, " => a very long step name that wi  0.0s");
        assert_eq!(job_line(" => ", "x", "", Some(1.0), 15), None);
    }

    #[test]
    fn status_goes_after_the_name() {
        let line = job_line(" => => ", "sha256:abc", "1.20MB / 3.40MB", Some(0.5), 60).unwrap();
        assert_eq!(line, " => => sha256:abc 1.20MB / 3.40MB                      0.5s");
        assert_eq!(line.chars().count(), 59);
    }

    #[test]
    fn log_text_is_what_a_terminal_would_show() {
        assert_eq!(clean_log_text(b"10%\r50%\r100%"), "100%");
        assert_eq!(clean_log_text(b"\x1b[31mred\x1b[0m\tok\r"), "red    ok");
    }

    #[test]
    fn fit_drops_finished_steps_then_oldest_log_lines() {
        let line = |t: &str| Line { text: t.into(), tone: Tone::Normal };
        let block = |name: &str, logs: &[&str], running| Block {
            lines: vec![line(name)],
            logs: logs.iter().map(|l| line(l)).collect(),
            running,
        };
        let blocks = || {
            vec![
                block("done1", &[], false),
                block("run1", &["a1", "a2"], true),
                block("done2", &[], false),
                block("run2", &["b1", "b2"], true),
            ]
        };
        let texts = |lines: Vec<Line>| lines.into_iter().map(|l| l.text).collect::<Vec<_>>();
        assert_eq!(texts(fit(blocks(), 7)), ["run1", "a1", "a2", "done2", "run2", "b1", "b2"]);
        assert_eq!(texts(fit(blocks(), 5)), ["run1", "a2", "run2", "b1", "b2"]);
        assert_eq!(texts(fit(blocks(), 2)), ["run1", "run2"]);
        assert_eq!(texts(fit(blocks(), 1)), ["run2"]);
    }

    #[test]
    fn draw_overwrites_the_previous_frame() {
        let mut display = TtyDisplay::new(true);
        let mut out = Vec::new();
        let lines = vec![Line { text: "a".into(), tone: Tone::Normal }, Line { text: "b".into(), tone: Tone::Done }];
        display.draw(&mut out, &lines).unwrap();
        display.draw(&mut out, &lines[..1]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "\x1b[?25l\ra\x1b[K\n\x1b[34mb\x1b[0m\x1b[K\n\x1b[J\x1b[?25h\x1b[?25l\x1b[2A\ra\x1b[K\n\x1b[J\x1b[?25h"
        );
    }
}
