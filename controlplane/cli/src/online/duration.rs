//! Durations on the command line (`--timeout`, `--wait`) and in messages.

use std::time::Duration;

/// `30`, `30s`, `500ms` or `2m`: a whole number with an optional unit
/// (seconds when there is none); zero is refused.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000)
    } else {
        (t, 1000)
    };
    let n: u64 = digits.trim().parse().map_err(|_| {
        format!("{text:?} is not a duration (give seconds, e.g. 30, 30s, 500ms or 2m)")
    })?;
    let ms = n
        .checked_mul(unit_ms)
        .ok_or_else(|| format!("{text:?} is too long"))?;
    if ms == 0 {
        return Err(format!("{text:?}: the duration must be more than zero"));
    }
    Ok(Duration::from_millis(ms))
}

/// `30 s`, `1.5 s`, `500 ms`: how long, for a person.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 7 "), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn refusals_say_why() {
        for bad in ["", "s", "abc", "-3", "1.5", "3h", "10 sec"] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains("not a duration"), "{bad}: {e}");
        }
        assert!(parse_duration("0")
            .expect_err("zero")
            .contains("more than zero"));
        assert!(parse_duration("0ms").is_err());
        assert!(parse_duration(&format!("{}m", u64::MAX))
            .expect_err("overflow")
            .contains("too long"));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(30)), "30 s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human(Duration::from_millis(250)), "250 ms");
    }
}
