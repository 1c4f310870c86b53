//! Diagnostics: positions, errors and warnings.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// A position in a configuration file (1-based line and column, columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Pos {
    /// The file name as given to the loader (or the resolved path of an included file).
    #[serde(serialize_with = "ser_arc_str")]
    pub file: Arc<str>,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column number, in characters.
    pub column: u32,
}

fn ser_arc_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

impl Pos {
    /// A position in `file` at `line`:`column`.
    pub fn new(file: &Arc<str>, line: u32, column: u32) -> Self {
        Self {
            file: Arc::clone(file),
            line,
            column,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One error or warning: where, which keyword, and what is wrong.
///
/// Displays as `file:line:column: keyword: message`. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Where the problem is.
    pub pos: Pos,
    /// The keyword (or value) the problem is about.
    pub keyword: String,
    /// A human readable explanation, possibly with a suggestion.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at `pos` about `keyword`.
    pub fn new(pos: &Pos, keyword: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pos: pos.clone(),
            keyword: keyword.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.pos, self.keyword, self.message)
    }
}

/// Every error found in a configuration (parsing keeps going after an error), plus the warnings
/// collected on the way.
///
/// `Display` prints one error per line in `file:line:column: keyword: message` form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ConfigErrors {
    /// The errors, in the order they were found (file order, then semantic checks).
    pub errors: Vec<Diagnostic>,
    /// Warnings found before giving up; they do not by themselves fail a load.
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors and warnings while parsing and validating.
#[derive(Debug, Default)]
pub(crate) struct Diags {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diags {
    pub(super) fn error(&mut self, pos: &Pos, keyword: &str, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(pos, keyword, message));
    }

    pub(super) fn warn(&mut self, pos: &Pos, keyword: &str, message: impl Into<String>) {
        self.warnings.push(Diagnostic::new(pos, keyword, message));
    }
}
