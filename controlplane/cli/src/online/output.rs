//! How online answers are printed: UTC times, aligned tables, diagnostics,
//! and JSON values built from the proto messages.

use std::io::Write;

use bulkhead_proto::v1;
use serde_json::{json, Value};

/// `2024-05-01T12:00:00Z` (with `.mmm` when `millis`) for milliseconds since
/// the Unix epoch: RFC 3339 in UTC.
pub(crate) fn utc(ms: u64, millis: bool) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if millis {
        format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z",
            ms % 1000
        )
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(0),
        u32::try_from(d).unwrap_or(0),
    )
}

/// Columns aligned under their headers, two spaces apart, no trailing spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            } else {
                widths.push(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// `warning`, `error`.
fn severity(d: &v1::Diagnostic) -> &'static str {
    match d.severity() {
        v1::Severity::Error => "error",
        v1::Severity::Warning => "warning",
        v1::Severity::Unspecified => "note",
    }
}

/// `warning: rule "x" (line 3:5): message`, as the offline tools print them.
pub(crate) fn diagnostic_text(d: &v1::Diagnostic) -> String {
    let mut s = format!("{}: ", severity(d));
    if !d.object.is_empty() {
        s.push_str(&d.object);
        s.push(' ');
    }
    if d.line > 0 {
        s.push_str(&format!("(line {}:{}) ", d.line, d.column));
    }
    s.push_str(&d.message);
    s
}

pub(crate) fn diagnostic_json(d: &v1::Diagnostic) -> Value {
    json!({
        "severity": severity(d),
        "object": d.object,
        "line": d.line,
        "column": d.column,
        "message": d.message,
    })
}

/// Print to stdout; a closed stdout (`| head`) is not an error here.
pub(crate) fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
}

/// Print one JSON value on one line.
pub(crate) fn print_json(v: &Value) {
    print(&v.to_string());
}

/// Print a note on stderr.
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(utc(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_714_564_800_123, true), "2024-05-01T12:00:00.123Z");
        assert_eq!(utc(951_782_400_000, false), "2000-02-29T00:00:00Z");
        assert_eq!(utc(4_102_444_799_000, false), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn tables_align_and_do_not_trail() {
        let t = table(
            &["NAME", "ADDRESS", "VOTER"],
            &[
                vec!["gw-1".into(), "10.0.0.11:7444".into(), "yes".into()],
                vec!["gw-10".into(), "10.0.0.2:7444".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME   ADDRESS         VOTER\n\
             gw-1   10.0.0.11:7444  yes\n\
             gw-10  10.0.0.2:7444\n"
        );
        assert_eq!(table(&["A"], &[]), "A\n");
    }

    #[test]
    fn diagnostics_read_like_the_offline_ones() {
        let d = v1::Diagnostic {
            severity: v1::Severity::Warning as i32,
            object: "rule \"web-to-db\"".into(),
            line: 12,
            column: 5,
            message: "shadowed by rule \"any\"".into(),
        };
        assert_eq!(
            diagnostic_text(&d),
            "warning: rule \"web-to-db\" (line 12:5) shadowed by rule \"any\""
        );
        assert_eq!(
            diagnostic_json(&d),
            json!({"severity": "warning", "object": "rule \"web-to-db\"", "line": 12, "column": 5, "message": "shadowed by rule \"any\""})
        );
    }
}
