//! Sizes, durations and times written the way BuildKit's Go tools write them.
//!
//! fbuild's cache commands print numbers people compare with `buildctl`'s, so
//! this module reproduces the Go formatting they use: tonistiigi/units for
//! byte sizes (decimal units, `1.23MB`), Go's `time.Duration` text (`48h0m0s`),
//! go-units' "about an hour" durations and RFC 3339 timestamps with trimmed
//! nanoseconds (what Go's JSON encoder writes). It also parses the size
//! arguments of `fbuild prune`.

use std::time::Duration;

/// Decimal unit names, as tonistiigi/units spells them (lower-case `k`).
const DECIMAL_UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];

/// `value` divided down to the largest decimal unit it reaches, or `None`
/// below 1000 bytes (which Go prints as whole bytes).
fn scaled(bytes: i64) -> Option<(f64, &'static str)> {
    let magnitude = bytes.unsigned_abs();
    let mut unit = 0;
    let mut base: u64 = 1;
    while unit + 1 < DECIMAL_UNITS.len() && magnitude >= base * 1000 {
        base *= 1000;
        unit += 1;
    }
    // Precision loss is fine: the value is shown with at most a few digits.
    (unit > 0).then(|| (bytes as f64 / base as f64, DECIMAL_UNITS[unit]))
}

/// A byte count with two decimals in decimal units: `4.10kB`, `5.10MB`,
/// `512B`. Identical to buildctl's `fmt.Sprintf("%.2f", units.Bytes(n))`,
/// which `buildctl du` and `buildctl prune` print.
pub fn human_size(bytes: i64) -> String {
    match scaled(bytes) {
        Some((value, unit)) => format!("{value:.2}{unit}"),
        None => format!("{bytes}B"),
    }
}

/// A byte count in its shortest exact form: `512MB`, `51GB`, `1.5kB`, `12B`.
/// Identical to Go's `%g` of `units.Bytes` (buildctl's GC policy lines).
pub fn human_size_short(bytes: i64) -> String {
    match scaled(bytes) {
        // Rust's `{}` for f64, like Go's shortest `%g`, prints the shortest
        // decimal that reads back as the same float.
        Some((value, unit)) => format!("{value}{unit}"),
        None => format!("{bytes}B"),
    }
}

/// A size argument that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid size {input:?}: expected a number of megabytes (like buildctl) or a number with a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)")]
pub struct SizeError {
    input: String,
}

/// Reads a size for `--keep-storage` and friends.
///
/// A bare number is megabytes (10^6 bytes), as in `buildctl prune
/// --keep-storage 512`. A suffix picks the unit: `B`, `k`/`kB`, `M`/`MB`,
/// `G`/`GB`, `T`/`TB` are powers of 1000 like every size fbuild prints;
/// `KiB`, `MiB`, `GiB`, `TiB` are powers of 1024. Letters are
/// case-insensitive, fractions are allowed (`1.5GB`).
pub fn parse_size(input: &str) -> Result<i64, SizeError> {
    let error = || SizeError { input: input.to_owned() };
    let text = input.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| error())?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => 1e6,
        "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(error()),
    };
    let bytes = (number * multiplier).round();
    // `as` saturates; reject instead of silently clamping absurd sizes.
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(error());
    }
    Ok(bytes as i64)
}

/// A duration as Go's `time.Duration.String()` writes it: `48h0m0s`,
/// `1m30s`, `1.5s`, `250ms`, `0s`.
pub fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        // Below a second Go switches to the largest unit that fits.
        let (scale, unit) = match nanos {
            n if n < 1_000 => (1, "ns"),
            n if n < 1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let total_secs = duration.as_secs();
    let (hours, minutes) = (total_secs / 3600, total_secs / 60 % 60);
    let seconds =
        decimal(u128::from(total_secs % 60) * 1_000_000_000 + u128::from(duration.subsec_nanos()), 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / scale` with the fraction's trailing zeros dropped (`1.5`, `2`).
fn decimal(value: u128, scale: u128) -> String {
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// How long ago, in words, like docker's `units.HumanDuration`:
/// `Less than a second`, `About a minute`, `3 hours`, `2 weeks`.
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let minutes = seconds / 60;
    // go-units rounds hours to the nearest, everything else down.
    let hours = (duration.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".to_owned(),
        _ if seconds == 1 => "1 second".to_owned(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".to_owned(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// A protobuf timestamp as Go's JSON encoder writes a UTC `time.Time`
/// (RFC 3339 with nanoseconds, trailing zeros trimmed): what buildctl's
/// `--format '{{json .}}'` prints.
pub fn rfc3339_nano(timestamp: &prost_types::Timestamp) -> String {
    let nanos = u32::try_from(timestamp.nanos).unwrap_or(0);
    let Some(time) = chrono::DateTime::from_timestamp(timestamp.seconds, nanos) else {
        return format!("{}s", timestamp.seconds);
    };
    let mut text = time.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos > 0 {
        text.push('.');
        text.push_str(format!("{nanos:09}").trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// docker/go-units' `RAMInBytes` (v0.5.0), which Docker's tools and the
/// Dockerfile frontend use for memory, `/dev/shm` and tmpfs sizes: a number
/// as Go's `strconv.ParseFloat` reads it (`512`, `1.5`, `1e6`, `1_000`), one
/// optional space, then an optional binary unit letter (`k` to `p`, any
/// case) with an optional `b` or `ib`, or a lone `b`: `64m`, `1GiB`,
/// `1.5 g`. `None` for anything else, negative sizes included.
pub(crate) fn ram_in_bytes(value: &str) -> Option<i64> {
    // The number ends at the last digit, point or space, as go-units cuts it.
    let sep = value.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')?;
    let (number, suffix) = if value.as_bytes()[sep] == b' ' {
        (&value[..sep], &value[sep + 1..])
    } else {
        (&value[..=sep], &value[sep + 1..])
    };
    let size = go_parse_float(number)?;
    if size < 0.0 {
        return None;
    }
    let suffix = suffix.to_ascii_lowercase();
    let multiplier: f64 = match suffix.as_bytes() {
        [] | [b'b'] => 1.0,
        [unit, rest @ ..] => {
            let exponent = b"kmgtp".iter().position(|u| u == unit)? as i32 + 1;
            if !matches!(rest, [] | [b'b'] | [b'i', b'b']) {
                return None;
            }
            1024f64.powi(exponent)
        }
    };
    Some(go_int64(size * multiplier))
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal numbers: Rust's parser
/// after Go's underscore rule (underscores only between digits), and no
/// overflow to infinity (Go reports a range error). Hexadecimal floats,
/// which no one writes for a size, are refused.
fn go_parse_float(number: &str) -> Option<f64> {
    let unsigned = number.trim_start_matches(['+', '-']);
    if number.len() - unsigned.len() > 1 || unsigned.starts_with("0x") || unsigned.starts_with("0X") {
        return None;
    }
    let mut digits = String::with_capacity(number.len());
    let mut previous = '^';
    for c in number.chars() {
        if c == '_' {
            if !previous.is_ascii_digit() {
                return None;
            }
        } else {
            if previous == '_' && !c.is_ascii_digit() {
                return None;
            }
            digits.push(c);
        }
        previous = c;
    }
    if previous == '_' {
        return None;
    }
    let parsed: f64 = digits.parse().ok()?;
    // "inf" and "nan" never reach here (the number ends in a digit or a
    // point); a finite text that overflows is Go's range error.
    parsed.is_finite().then_some(parsed)
}

/// Go's `int64(f)` on amd64: out of range (or NaN) is the smallest int64.
fn go_int64(value: f64) -> i64 {
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&value) {
        i64::MIN
    } else {
        value as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_sizes_read_as_go_units_reads_them() {
        // Expected values: go-units v0.5.0 (scripts/ram_in_bytes_reference).
        for (text, bytes) in [
            ("512", 512),
            ("64m", 64 << 20),
            ("1GiB", 1 << 30),
            ("1.5 g", 3 << 29),
            ("2KB", 2048),
            ("1e6", 1_000_000),
            ("1_000", 1000),
            ("1_000k", 1_024_000),
            ("5b", 5),
            (".5k", 512),
            (".5m", 524288),
            ("5.m", 5242880),
            ("1e3", 1000),
            ("99999999p", i64::MIN),
        ] {
            assert_eq!(ram_in_bytes(text), Some(bytes), "{text}");
        }
        for bad in ["10ib", "", "lots", "1x", "1mx", "1  m", " 1m", "1m ", "1__0", "_1", "1_", "-1", "1e400"] {
            assert_eq!(ram_in_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes_match_buildctl() {
        // Values and expectations from `buildctl du` on a real daemon and
        // from tonistiigi/units' own tests.
        let cases = [
            (0, "0B"),
            (999, "999B"),
            (1000, "1.00kB"),
            (1234, "1.23kB"),
            (4096, "4.10kB"),
            (8192, "8.19kB"),
            (2_011_136, "2.01MB"),
            (3_075_665, "3.08MB"),
            (5_098_897, "5.10MB"),
            // An exact tie rounds to even, as Go's big.Float does.
            (1125, "1.12kB"),
            (999_995, "1000.00kB"),
            (10_000_000_000, "10.00GB"),
            (-2048, "-2.05kB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(human_size(bytes), expected, "{bytes} bytes");
        }
    }

    #[test]
    fn short_sizes_match_buildctl_gc_policy_lines() {
        assert_eq!(human_size_short(512_000_000), "512MB");
        assert_eq!(human_size_short(51_000_000_000), "51GB");
        assert_eq!(human_size_short(10_000_000_000), "10GB");
        assert_eq!(human_size_short(1500), "1.5kB");
        assert_eq!(human_size_short(12), "12B");
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("512").unwrap(), 512_000_000);
        assert_eq!(parse_size("0.5").unwrap(), 500_000);
        assert_eq!(parse_size("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("10gb").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("1.5G").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("100 kB").unwrap(), 100_000);
        assert_eq!(parse_size("2KiB").unwrap(), 2048);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("7B").unwrap(), 7);
        for bad in ["", "GB", "ten", "10XB", "-5", "1e99TB", "1.2.3"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_read_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(48 * 3600), "48h0m0s"),
            (Duration::from_secs(1440 * 3600), "1440h0m0s"),
            (Duration::from_secs(3600 + 2), "1h0m2s"),
        ];
        for (duration, expected) in cases {
            assert_eq!(go_duration(duration), expected);
        }
    }

    #[test]
    fn human_durations_read_like_docker() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (59 * 60, "59 minutes"),
            (3600, "About an hour"),
            (5400, "2 hours"),
            (47 * 3600, "47 hours"),
            (3 * 86400, "3 days"),
            (15 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(Duration::from_secs(seconds)), expected, "{seconds}s");
        }
    }

    #[test]
    fn timestamps_read_like_go_json() {
        let at = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
        assert_eq!(rfc3339_nano(&at(1_795_556_924, 264_159_257)), "2026-11-24T21:48:44.264159257Z");
        assert_eq!(rfc3339_nano(&at(1_795_556_924, 481_240_000)), "2026-11-24T21:48:44.48124Z");
        assert_eq!(rfc3339_nano(&at(0, 0)), "1970-01-01T00:00:00Z");
    }
}
