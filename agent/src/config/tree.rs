//! Builds a generic statement tree from tokens and expands `include`.
//!
//! A statement is a line: a keyword, its arguments, and optionally a block. A block may open on
//! the same line (`vrrp_instance VI_1 {`), on the next line (`{` alone), and may close on the
//! same line (`unicast_peer { 10.0.0.1 }`). After `{` on a line, the rest of that line is the
//! first statement of the block.
//!
//! `include PATTERN` may appear at any level; the statements of the matching files (sorted by
//! path) take its place. A relative pattern is resolved against the directory of the file that
//! contains the `include` (keepalived 2.x does the same). A pattern with glob characters that
//! matches nothing is a warning; a plain path that does not exist is an error. Include loops and
//! nesting deeper than [`MAX_INCLUDE_DEPTH`] are errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{Diags, Pos};
use super::lexer::{lex, Kind, Token};

/// Deepest include nesting accepted.
pub(crate) const MAX_INCLUDE_DEPTH: usize = 32;

/// Deepest `{ }` nesting accepted (keepalived's deepest real block is 3 levels).
pub(crate) const MAX_BLOCK_DEPTH: usize = 16;

/// One statement: `keyword args... [{ block }]`.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub kw: Token,
    pub args: Vec<Token>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    /// The keyword text.
    pub(super) fn name(&self) -> &str {
        &self.kw.text
    }

    /// The keyword position.
    pub(super) fn pos(&self) -> &Pos {
        &self.kw.pos
    }
}

/// Reads files for includes; the root text is passed in directly.
pub(crate) struct TreeBuilder<'d> {
    pub diags: &'d mut Diags,
    /// Canonical paths of the files being read, outermost first (for loop detection).
    stack: Vec<PathBuf>,
    /// Current `{ }` nesting depth.
    depth: usize,
}

impl<'d> TreeBuilder<'d> {
    pub(super) fn new(diags: &'d mut Diags) -> Self {
        Self {
            diags,
            stack: Vec::new(),
            depth: 0,
        }
    }

    /// Parses `text`, the contents of `name` whose includes resolve against `base_dir`.
    /// `canonical` is the file's canonical path, when it is a real file (for loop detection).
    pub(super) fn parse_file(
        &mut self,
        name: &str,
        text: &str,
        base_dir: &Path,
        canonical: Option<PathBuf>,
    ) -> Vec<Stmt> {
        let file: Arc<str> = Arc::from(name);
        let toks = lex(&file, text, self.diags);
        let pushed = canonical.is_some();
        if let Some(c) = canonical {
            self.stack.push(c);
        }
        let mut i = 0;
        let out = self.seq(&toks, &mut i, None, base_dir);
        if pushed {
            self.stack.pop();
        }
        out
    }

    /// Parses statements until EOF (`open` is None) or the `}` closing the block opened at `open`.
    fn seq(&mut self, toks: &[Token], i: &mut usize, open: Option<&Pos>, base: &Path) -> Vec<Stmt> {
        let mut out = Vec::new();
        loop {
            while toks.get(*i).is_some_and(|t| t.kind == Kind::Newline) {
                *i += 1;
            }
            let Some(t) = toks.get(*i) else {
                if let Some(p) = open {
                    self.diags
                        .error(p, "{", "block is never closed (missing '}')");
                }
                return out;
            };
            match t.kind {
                Kind::Close => {
                    *i += 1;
                    if open.is_some() {
                        return out;
                    }
                    self.diags
                        .error(&t.pos, "}", "unexpected '}' with no open block");
                }
                Kind::Open => {
                    *i += 1;
                    self.diags
                        .error(&t.pos, "{", "unexpected '{' without a keyword before it");
                    let pos = t.pos.clone();
                    let _ = self.nested(toks, i, &pos, base);
                }
                Kind::Newline => {}
                Kind::Word | Kind::Quoted => {
                    let kw = t.clone();
                    *i += 1;
                    let mut args = Vec::new();
                    while let Some(a) = toks.get(*i) {
                        match a.kind {
                            Kind::Word | Kind::Quoted => {
                                args.push(a.clone());
                                *i += 1;
                            }
                            _ => break,
                        }
                    }
                    let mut block = None;
                    match toks.get(*i).map(|t| &t.kind) {
                        Some(Kind::Open) => {
                            let p = toks[*i].pos.clone();
                            *i += 1;
                            block = Some(self.nested(toks, i, &p, base));
                        }
                        Some(Kind::Newline) => {
                            // A block may open on the next line.
                            let mut j = *i;
                            while toks.get(j).is_some_and(|t| t.kind == Kind::Newline) {
                                j += 1;
                            }
                            if let Some(o) = toks.get(j).filter(|t| t.kind == Kind::Open) {
                                let p = o.pos.clone();
                                *i = j + 1;
                                block = Some(self.nested(toks, i, &p, base));
                            }
                        }
                        _ => {}
                    }
                    let stmt = Stmt { kw, args, block };
                    if stmt.kw.kind == Kind::Word && stmt.name() == "include" {
                        self.include(&stmt, base, &mut out);
                    } else {
                        out.push(stmt);
                    }
                }
            }
        }
    }

    /// Parses a block whose `{` (at `open`) was just consumed, refusing absurd nesting.
    fn nested(&mut self, toks: &[Token], i: &mut usize, open: &Pos, base: &Path) -> Vec<Stmt> {
        if self.depth >= MAX_BLOCK_DEPTH {
            self.diags.error(
                open,
                "{",
                format!("blocks nested deeper than {MAX_BLOCK_DEPTH} levels; skipping this block"),
            );
            // Skip to the matching '}' without recursing.
            let mut level = 1usize;
            while let Some(t) = toks.get(*i) {
                *i += 1;
                match t.kind {
                    Kind::Open => level += 1,
                    Kind::Close => {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            return Vec::new();
        }
        self.depth += 1;
        let out = self.seq(toks, i, Some(open), base);
        self.depth -= 1;
        out
    }

    fn include(&mut self, stmt: &Stmt, base: &Path, out: &mut Vec<Stmt>) {
        let pos = stmt.pos();
        if stmt.block.is_some() {
            self.diags
                .error(pos, "include", "'include' does not take a block");
        }
        let [pattern] = stmt.args.as_slice() else {
            self.diags.error(
                pos,
                "include",
                "expects exactly one file name or glob pattern",
            );
            return;
        };
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                &pattern.pos,
                "include",
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels"),
            );
            return;
        }
        let full = if Path::new(&pattern.text).is_absolute() {
            PathBuf::from(&pattern.text)
        } else {
            base.join(&pattern.text)
        };
        let full_s = full.to_string_lossy().into_owned();
        let is_glob = pattern.text.contains(['*', '?', '[']);
        let mut files: Vec<PathBuf> = if is_glob {
            match glob::glob(&full_s) {
                Ok(paths) => paths
                    .filter_map(Result::ok)
                    .filter(|p| p.is_file())
                    .collect(),
                Err(e) => {
                    self.diags.error(
                        &pattern.pos,
                        "include",
                        format!("bad glob pattern '{}': {}", pattern.text, e.msg),
                    );
                    return;
                }
            }
        } else {
            vec![full.clone()]
        };
        files.sort();
        if files.is_empty() {
            self.diags.warn(
                &pattern.pos,
                "include",
                format!("pattern '{full_s}' matches no files"),
            );
        }
        for f in files {
            let canon = match std::fs::canonicalize(&f) {
                Ok(c) => c,
                Err(e) => {
                    self.diags.error(
                        &pattern.pos,
                        "include",
                        format!("cannot read '{}': {e}", f.display()),
                    );
                    continue;
                }
            };
            if let Some(idx) = self.stack.iter().position(|p| *p == canon) {
                let chain: Vec<String> = self.stack[idx..]
                    .iter()
                    .chain(std::iter::once(&canon))
                    .map(|p| p.display().to_string())
                    .collect();
                self.diags.error(
                    &pattern.pos,
                    "include",
                    format!("include loop: {}", chain.join(" -> ")),
                );
                continue;
            }
            let text = match std::fs::read(&f) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => {
                    self.diags.error(
                        &pattern.pos,
                        "include",
                        format!("cannot read '{}': {e}", f.display()),
                    );
                    continue;
                }
            };
            let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
            let name = f.to_string_lossy().into_owned();
            out.extend(self.parse_file(&name, &text, &dir, Some(canon)));
        }
    }
}
