//! Diagnostics: every problem found in a policy, with where and what.

use std::fmt;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The policy is refused.
    Error,
    /// Lint or advisory; the policy is accepted (lint `--strict` refuses it).
    Warning,
}

/// One problem found in a policy document.
///
/// Displays as `origin:line:column: object: message` (warnings add
/// `warning: ` after the position; unknown positions are left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Where the document came from (a file name, `-` or `<stdin>`).
    pub origin: String,
    /// The object concerned, e.g. `rule "web-to-app"`, `segment "db"`;
    /// `None` for the document as a whole.
    pub object: Option<String>,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub column: u32,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.origin)?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if self.severity == Severity::Warning {
            write!(f, " warning:")?;
        }
        if let Some(o) = &self.object {
            write!(f, " {o}:")?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for Diagnostic {}
