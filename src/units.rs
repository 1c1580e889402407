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

/// docker/go-units' `RAMInBytes`, which Docker's tools use for memory and
/// `/dev/shm` sizes: a number, one optional space, then an optional binary
/// unit letter (`k` to `p`, any case), an optional `i` and an optional `b`:
/// `512`, `64m`, `1GiB`, `1.5 g`. `None` for anything else.
pub(crate) fn ram_in_bytes(value: &str) -> Option<i64> {
    let split = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    // Go's pattern wants digits on both sides of a point (`\d+(\.\d+)*`).
    if number.split('.').any(str::is_empty) {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let (exponent, rest) = match unit.chars().next().and_then(|c| "kmgtp".find(c)) {
        Some(index) => (index as i32 + 1, &unit[1..]),
        None => (0, unit.as_str()),
    };
    let rest = rest.strip_prefix('i').unwrap_or(rest);
    if !rest.strip_prefix('b').unwrap_or(rest).is_empty() {
        return None;
    }
    let bytes = number * 1024f64.powi(exponent);
    (bytes.is_finite() && bytes < i64::MAX as f64).then_some(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_sizes_read_as_go_units_reads_them() {
        for (text, bytes) in [("512", 512), ("64m", 64 << 20), ("1GiB", 1 << 30), ("1.5 g", 3 << 29), ("2KB", 2048)] {
            assert_eq!(ram_in_bytes(text), Some(bytes), "{text}");
        }
        // Go's pattern also takes a bare `i` or `b` after the number.
        assert_eq!(ram_in_bytes("10ib"), Some(10));
        for bad in ["", "lots", "1x", "1mx", ".5m", "5.m", "1  m", " 1m", "1m ", "1e3", "99999999p"] {
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
