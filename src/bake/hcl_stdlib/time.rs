//! Times: go-cty's `formatdate` and `timeadd`, buildx's `timestamp`,
//! `formattimestamp` and `unixtimestampparse`. Timestamps are RFC 3339 and
//! keep their offset, as Go's `time.Time` does.

use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, Timelike};
use hcl::eval::FuncDef;
use hcl::Value;

use super::{fixed, sorted_object, string, Result};

fn parse(text: &str) -> Result<DateTime<FixedOffset>> {
    // RFC 3339 as Go's strict parser: a `T` and an offset are required.
    if text.len() < 20 || text.as_bytes().get(10) != Some(&b'T') {
        return Err(format!("not a valid RFC3339 timestamp: {text:?}"));
    }
    DateTime::parse_from_rfc3339(text).map_err(|e| format!("not a valid RFC3339 timestamp: {text:?}: {e}"))
}

fn rfc3339(time: &DateTime<FixedOffset>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn timestamp() -> FuncDef {
    fixed(0, |_| Ok(Value::from(chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true))))
}

pub(super) fn formatdate() -> FuncDef {
    fixed(2, |a| Ok(Value::from(format_date(&string(&a, 0)?, &parse(&string(&a, 1)?)?)?)))
}

/// `formattimestamp(format, time)`: an RFC 3339 string or a unix time in
/// seconds; the format `X` gives the unix time.
pub(super) fn formattimestamp() -> FuncDef {
    fixed(2, |a| {
        let format = string(&a, 0)?;
        let time = match &a[1] {
            Value::String(text) => {
                parse(text).map_err(|_| "argument 2: timestamp string must be RFC3339".to_string())?
            }
            Value::Number(_) => unix(&a[1])?,
            _ => return Err("argument 2: must be a string timestamp or a unix timestamp number".into()),
        };
        if format == "X" {
            return Ok(Value::from(time.timestamp().to_string()));
        }
        Ok(Value::from(format_date(&format, &time)?))
    })
}

fn unix(value: &Value) -> Result<DateTime<FixedOffset>> {
    let seconds = super::to_integer(value).map_err(|_| "unix timestamp must be an integer".to_string())?;
    DateTime::from_timestamp(seconds, 0)
        .map(|t| t.fixed_offset())
        .ok_or_else(|| format!("unix timestamp {seconds} is out of range"))
}

/// `unixtimestampparse(seconds)`: the parts of that UTC time.
pub(super) fn unixtimestampparse() -> FuncDef {
    fixed(1, |a| {
        let time = unix(&a[0])?;
        let week = time.iso_week();
        let int = |n: u32| Value::from(n as i64);
        Ok(sorted_object([
            ("year".to_string(), Value::from(time.year() as i64)),
            ("year_day".to_string(), int(time.ordinal())),
            ("day".to_string(), int(time.day())),
            ("month".to_string(), int(time.month())),
            ("month_name".to_string(), Value::from(month_name(time.month()))),
            ("weekday".to_string(), int(time.weekday().num_days_from_sunday())),
            ("weekday_name".to_string(), Value::from(weekday_name(time.weekday().num_days_from_sunday()))),
            ("hour".to_string(), int(time.hour())),
            ("minute".to_string(), int(time.minute())),
            ("second".to_string(), int(time.second())),
            ("rfc3339".to_string(), Value::from(rfc3339(&time))),
            ("iso_year".to_string(), Value::from(week.year() as i64)),
            ("iso_week".to_string(), int(week.week())),
        ]))
    })
}

/// `timeadd(timestamp, duration)`, the duration in Go's syntax (`1h30m`).
pub(super) fn timeadd() -> FuncDef {
    fixed(2, |a| {
        let time = parse(&string(&a, 0)?)?;
        let nanos = crate::dockerfile::compile::image::parse_go_duration(&string(&a, 1)?).map_err(|e| e.to_string())?;
        let added = time
            .checked_add_signed(chrono::Duration::nanoseconds(nanos))
            .ok_or_else(|| "the result is out of range".to_string())?;
        Ok(Value::from(rfc3339(&added)))
    })
}

fn month_name(month: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES[(month as usize + 11) % 12]
}

fn weekday_name(from_sunday: u32) -> &'static str {
    const NAMES: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    NAMES[from_sunday as usize % 7]
}

/// go-cty's `formatdate`: runs of one letter are verbs (`YYYY`, `MMM`,
/// `EEEE`, `hh`, `ZZZZZ`, ...), `'...'` is literal text (`''` a quote).
fn format_date(format: &str, time: &DateTime<FixedOffset>) -> Result<String> {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return Err("unterminated literal '".into()),
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        out.push('\'');
                        j += 2;
                    }
                    Some('\'') => break,
                    Some(&other) => {
                        out.push(other);
                        j += 1;
                    }
                }
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let token: String = chars[i..i + run].iter().collect();
        i += run;
        let bad = |what: &str| Err(format!("invalid date format verb {token:?}: {what}"));
        let two = |n: u32| format!("{n:02}");
        let hour12 = match time.hour() % 12 {
            0 => 12,
            h => h,
        };
        let text = match (c, run) {
            ('Y', 2) => format!("{:02}", time.year().rem_euclid(100)),
            ('Y', 4) => format!("{:04}", time.year()),
            ('Y', _) => return bad("year must either be \"YY\" or \"YYYY\""),
            ('M', 1) => time.month().to_string(),
            ('M', 2) => two(time.month()),
            ('M', 3) => month_name(time.month())[..3].to_string(),
            ('M', 4) => month_name(time.month()).to_string(),
            ('M', _) => return bad("month must be \"M\", \"MM\", \"MMM\", or \"MMMM\""),
            ('D', 1) => time.day().to_string(),
            ('D', 2) => two(time.day()),
            ('D', _) => return bad("day of month must either be \"D\" or \"DD\""),
            ('E', 3) => weekday_name(time.weekday().num_days_from_sunday())[..3].to_string(),
            ('E', 4) => weekday_name(time.weekday().num_days_from_sunday()).to_string(),
            ('E', _) => return bad("day of week must either be \"EEE\" or \"EEEE\""),
            ('h', 1) => time.hour().to_string(),
            ('h', 2) => two(time.hour()),
            ('h', _) => return bad("24-hour must either be \"h\" or \"hh\""),
            ('H', 1) => hour12.to_string(),
            ('H', 2) => two(hour12),
            ('H', _) => return bad("12-hour must either be \"H\" or \"HH\""),
            ('A' | 'a', 2) => {
                let pm = time.hour() >= 12;
                match (c, pm) {
                    ('A', false) => "AM".into(),
                    ('A', true) => "PM".into(),
                    (_, false) => "am".into(),
                    (_, true) => "pm".into(),
                }
            }
            ('A' | 'a', _) => return bad(&format!("must be \"{c}{c}\"")),
            ('m', 1) => time.minute().to_string(),
            ('m', 2) => two(time.minute()),
            ('m', _) => return bad("minute must either be \"m\" or \"mm\""),
            ('s', 1) => time.second().to_string(),
            ('s', 2) => two(time.second()),
            ('s', _) => return bad("second must either be \"s\" or \"ss\""),
            ('Z', 1) if time.offset().local_minus_utc() == 0 => "Z".into(),
            ('Z', 1) | ('Z', 5) => time.format("%:z").to_string(),
            ('Z', 3) if time.offset().local_minus_utc() == 0 => "UTC".into(),
            ('Z', 3) | ('Z', 4) => time.format("%z").to_string(),
            ('Z', _) => return bad("timezone must be Z, ZZZZ, or ZZZZZ"),
            _ => return Err(format!("invalid date format verb {token:?}")),
        };
        out.push_str(&text);
    }
    Ok(out)
}
