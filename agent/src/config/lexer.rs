//! Tokenizer for keepalived.conf text.
//!
//! Rules (keepalived 2.x compatible):
//! - `#` and `!` start a comment that runs to the end of the line when they begin a token
//!   (inside a word such as `pa#ss` or inside quotes they are literal).
//! - `{` and `}` are always tokens of their own, even when glued to a word (`VI_1{`).
//! - `"..."` is one token that may contain blanks; `\"` and `\\` are the only escapes. A quoted
//!   string must end on its line.
//! - Line ends are significant: a statement is one line (a block may open on it).

use std::sync::Arc;

use super::error::{Diags, Pos};

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bare word.
    Word,
    /// A double-quoted string (text without the quotes, escapes resolved).
    Quoted,
    /// `{`
    Open,
    /// `}`
    Close,
    /// End of a line.
    Newline,
}

/// A token with its text and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub text: String,
    pub pos: Pos,
}

/// Splits `text` (the contents of `file`) into tokens. Never fails: problems (an unterminated
/// quote) are reported to `diags` and the lexer carries on.
pub(crate) fn lex(file: &Arc<str>, text: &str, diags: &mut Diags) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line: u32 = 1;
    let mut col: u32 = 0;
    let mut chars = text.chars().peekable();
    // `pending` holds a word being built: (text, start column).
    let mut word: Option<(String, u32)> = None;

    fn flush(word: &mut Option<(String, u32)>, out: &mut Vec<Token>, file: &Arc<str>, line: u32) {
        if let Some((text, c)) = word.take() {
            out.push(Token {
                kind: Kind::Word,
                text,
                pos: Pos::new(file, line, c),
            });
        }
    }

    while let Some(ch) = chars.next() {
        col = col.saturating_add(1);
        match ch {
            '\n' => {
                flush(&mut word, &mut out, file, line);
                out.push(Token {
                    kind: Kind::Newline,
                    text: String::new(),
                    pos: Pos::new(file, line, col),
                });
                line = line.saturating_add(1);
                col = 0;
            }
            c if c.is_whitespace() => flush(&mut word, &mut out, file, line),
            '{' | '}' => {
                flush(&mut word, &mut out, file, line);
                out.push(Token {
                    kind: if ch == '{' { Kind::Open } else { Kind::Close },
                    text: ch.to_string(),
                    pos: Pos::new(file, line, col),
                });
            }
            '#' | '!' if word.is_none() => {
                // Comment to end of line; leave the newline for the main loop.
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                    col = col.saturating_add(1);
                }
            }
            '"' if word.is_none() => {
                let start = col;
                let mut s = String::new();
                let mut closed = false;
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                    col = col.saturating_add(1);
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.peek() {
                            Some(&n @ ('"' | '\\')) => {
                                chars.next();
                                col = col.saturating_add(1);
                                s.push(n);
                            }
                            _ => s.push('\\'),
                        },
                        _ => s.push(c),
                    }
                }
                let pos = Pos::new(file, line, start);
                if !closed {
                    diags.error(
                        &pos,
                        "\"",
                        "unterminated quoted string (a closing '\"' is required on the same line)",
                    );
                }
                out.push(Token {
                    kind: Kind::Quoted,
                    text: s,
                    pos,
                });
            }
            c => match &mut word {
                Some((w, _)) => w.push(c),
                None => word = Some((c.to_string(), col)),
            },
        }
    }
    flush(&mut word, &mut out, file, line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, String, u32, u32)> {
        let f: Arc<str> = Arc::from("t");
        let mut d = Diags::default();
        lex(&f, text, &mut d)
            .into_iter()
            .map(|t| (t.kind, t.text, t.pos.line, t.pos.column))
            .collect()
    }

    #[test]
    fn words_braces_comments_quotes() {
        let toks = kinds("a{ b\"x\" # c\n  \"q r\" ! z\nx#y}");
        assert_eq!(
            toks,
            vec![
                (Kind::Word, "a".into(), 1, 1),
                (Kind::Open, "{".into(), 1, 2),
                (Kind::Word, "b\"x\"".into(), 1, 4),
                (Kind::Newline, String::new(), 1, 12),
                (Kind::Quoted, "q r".into(), 2, 3),
                (Kind::Newline, String::new(), 2, 12),
                (Kind::Word, "x#y".into(), 3, 1),
                (Kind::Close, "}".into(), 3, 4),
            ]
        );
    }

    #[test]
    fn escapes_and_unterminated() {
        let f: Arc<str> = Arc::from("t");
        let mut d = Diags::default();
        let toks = lex(&f, "\"a\\\"b\\\\c\" \"open\n", &mut d);
        assert_eq!(toks[0].text, "a\"b\\c");
        assert_eq!(toks[1].text, "open");
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].pos.column, 11);
    }
}
