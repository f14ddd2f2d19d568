//! A small, conservative PKGBUILD lexer for the approval classifier ([`super::approval`]).
//!
//! A PKGBUILD is read line by line into [`Unit`]s: top-level assignments (outside functions,
//! tracked by brace depth) become [`Unit::Assign`], a multi-line array is one unit, and every
//! other line is a [`Unit::Line`] compared verbatim. Values are split into [`Word`]s the way
//! bash splits them for plain words (single quotes, double quotes with `\"`, `\\`, `\$`,
//! `` \` `` escapes, backslash escapes outside quotes, `#` comments at a word start; bash(1),
//! QUOTING). Anything this lexer does not understand (command substitution or any other
//! unquoted `;&|<>()`, line continuations, unterminated quotes, …) makes the assignment an
//! opaque line, so a misparse can only hold a change, never approve one.

/// One word of a shell assignment value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    /// The source text, quotes included.
    pub(super) raw: String,
    /// The value when the word has no expansion (`$`, backtick) at all.
    pub(super) literal: Option<String>,
}

/// A logical unit of a PKGBUILD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unit {
    /// `name=word` or `name=(words…)` at top level.
    Assign {
        name: String,
        array: bool,
        words: Vec<Word>,
        /// The source lines of the assignment.
        text: String,
    },
    /// Any other line, compared verbatim (trailing whitespace ignored).
    Line(String),
}

impl Unit {
    /// The unit's source text.
    pub(super) fn text(&self) -> &str {
        match self {
            Unit::Assign { text, .. } => text,
            Unit::Line(l) => l,
        }
    }
}

/// Split a PKGBUILD into units.
pub(super) fn units(text: &str) -> Vec<Unit> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut depth: i64 = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if depth == 0 {
            if let Some((name, rest)) = assignment_start(line) {
                if let Some(inner) = rest.strip_prefix('(') {
                    match array_unit(&lines, i, name, inner) {
                        Some((unit, next)) => {
                            out.push(unit);
                            i = next;
                            continue;
                        }
                        None => {
                            // Unterminated: every remaining line is opaque.
                            out.extend(lines[i..].iter().map(|l| Unit::Line(l.to_string())));
                            return out;
                        }
                    }
                }
                let words = split_words(rest).filter(|w| w.len() <= 1);
                out.push(match words {
                    Some(words) => Unit::Assign {
                        name: name.to_string(),
                        array: false,
                        words,
                        text: line.to_string(),
                    },
                    None => Unit::Line(line.to_string()),
                });
                i += 1;
                continue;
            }
        }
        depth = (depth + brace_delta(line)).max(0);
        out.push(Unit::Line(line.to_string()));
        i += 1;
    }
    out
}

/// The array assignment `name=(inner…` starting on line `first`, possibly over several lines:
/// the unit and the index of the line after it. `None` when the array never closes.
fn array_unit(lines: &[&str], first: usize, name: &str, inner: &str) -> Option<(Unit, usize)> {
    let mut body = inner.to_string();
    let mut last = first;
    loop {
        if let Some(end) = array_end(&body) {
            let parsed = only_comment(&body[end + 1..])
                .then(|| split_words(&body[..end]))
                .flatten();
            let text = lines[first..=last].join("\n");
            let unit = match parsed {
                Some(words) => Unit::Assign {
                    name: name.to_string(),
                    array: true,
                    words,
                    text,
                },
                None => Unit::Line(text),
            };
            return Some((unit, last + 1));
        }
        last += 1;
        body.push('\n');
        body.push_str(lines.get(last)?);
    }
}

/// The literal top-level `pkgver` of a PKGBUILD's units, if it has one.
pub(super) fn literal_pkgver(units: &[Unit]) -> Option<String> {
    units.iter().find_map(|u| match u {
        Unit::Assign {
            name,
            array: false,
            words,
            ..
        } if name == "pkgver" => words.first().and_then(|w| w.literal.clone()),
        _ => None,
    })
}

/// Split a value into words. `None` when it holds anything but plain words and comments:
/// unquoted `;&|<>()`, a line continuation, an unterminated quote.
fn split_words(text: &str) -> Option<Vec<Word>> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else {
            let (word, end) = read_word(&chars, i)?;
            words.push(word);
            i = end;
        }
    }
    Some(words)
}

/// The word starting at `start` (not whitespace) and the index after it.
fn read_word(chars: &[char], start: usize) -> Option<(Word, usize)> {
    let mut value = String::new();
    let mut literal = true;
    let mut i = start;
    while i < chars.len() && !chars[i].is_whitespace() {
        i = match chars[i] {
            '\'' => single_quoted(chars, i, &mut value)?,
            '"' => double_quoted(chars, i, &mut value, &mut literal)?,
            '\\' => escaped(chars, i, &mut value)?,
            ';' | '&' | '|' | '<' | '>' | '(' | ')' => return None,
            c => {
                literal &= !matches!(c, '$' | '`');
                value.push(c);
                i + 1
            }
        };
    }
    let word = Word {
        raw: chars[start..i].iter().collect(),
        literal: literal.then_some(value),
    };
    Some((word, i))
}

/// `'…'` at `open`: its text, verbatim; the index after the closing quote.
fn single_quoted(chars: &[char], open: usize, value: &mut String) -> Option<usize> {
    let close = chars[open + 1..].iter().position(|&c| c == '\'')? + open + 1;
    value.extend(&chars[open + 1..close]);
    Some(close + 1)
}

/// `"…"` at `open`: `\` escapes `"`, `\`, `$` and backtick (before anything else it stays);
/// `$` or backtick make the word non-literal. The index after the closing quote; `None` when
/// unterminated or holding a line continuation.
fn double_quoted(
    chars: &[char],
    open: usize,
    value: &mut String,
    literal: &mut bool,
) -> Option<usize> {
    let mut i = open + 1;
    loop {
        match *chars.get(i)? {
            '"' => return Some(i + 1),
            '\\' => {
                let next = *chars.get(i + 1)?;
                if next == '\n' {
                    return None;
                }
                if !"\"\\$`".contains(next) {
                    value.push('\\');
                }
                value.push(next);
                i += 2;
            }
            c => {
                *literal &= !matches!(c, '$' | '`');
                value.push(c);
                i += 1;
            }
        }
    }
}

/// `\x` outside quotes at `at`: the character `x`; `None` for a line continuation or a
/// trailing backslash.
fn escaped(chars: &[char], at: usize, value: &mut String) -> Option<usize> {
    let next = *chars.get(at + 1)?;
    if next == '\n' {
        return None;
    }
    value.push(next);
    Some(at + 2)
}

/// `NAME=` at the start of `line` (after indentation): the name and the rest.
fn assignment_start(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim_start();
    let eq = trimmed.find('=')?;
    let name = &trimmed[..eq];
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then(|| (name, &trimmed[eq + 1..]))
}

/// Index of the `)` closing an array whose text starts after `(`, skipping quoted text and
/// comments; `None` when it is not in `text`.
fn array_end(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    let mut word_start = true;
    for (i, c) in text.char_indices() {
        if comment {
            comment = c != '\n';
            word_start = true;
            continue;
        }
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\\') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if word_start => comment = true,
            (None, ')') => return Some(i),
            _ => {}
        }
        word_start = c.is_whitespace();
    }
    None
}

/// Net `{` minus `}` of a line outside quotes and comments.
fn brace_delta(line: &str) -> i64 {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut delta = 0;
    let mut word_start = true;
    for c in line.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (Some(_), '\\') | (None, '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if word_start => break,
            (None, '{') => delta += 1,
            (None, '}') => delta -= 1,
            _ => {}
        }
        word_start = c.is_whitespace();
    }
    delta
}

/// Is `rest` (after an array's `)` or a scalar word) empty or a comment?
fn only_comment(rest: &str) -> bool {
    let r = rest.trim();
    r.is_empty() || r.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(words: &[Word]) -> Vec<Option<&str>> {
        words.iter().map(|w| w.literal.as_deref()).collect()
    }

    #[test]
    fn word_splitting() {
        let w = split_words("'a b' \"c$d\" e\\ f # comment\n g").expect("words");
        assert_eq!(
            literals(&w),
            vec![Some("a b"), None, Some("e f"), Some("g")]
        );
        assert_eq!(w[1].raw, "\"c$d\"");
        let w = split_words(r#""a\"b\x" x#y 'it''s'"#).expect("words");
        assert_eq!(
            literals(&w),
            vec![Some("a\"b\\x"), Some("x#y"), Some("its")]
        );
        assert!(split_words("a;b").is_none());
        assert!(split_words("'open").is_none());
        assert!(split_words("\"open").is_none());
        assert!(split_words("a\\\nb").is_none());
        assert!(split_words("\"a\\\nb\"").is_none());
        assert!(split_words("trailing\\").is_none());
        assert_eq!(literals(&split_words("`id`").expect("words")), vec![None]);
    }

    #[test]
    fn units_of_a_pkgbuild() {
        let text = "pkgver=1.2 # v\narch=('x86_64'\n  'aarch64') # two\nbuild() {\n  x=1\n  if true; then { :; }; fi\n}\ny=$(id)\nz=(a\n";
        let u = units(text);
        let texts: Vec<&str> = u.iter().map(Unit::text).collect();
        assert_eq!(
            texts,
            vec![
                "pkgver=1.2 # v",
                "arch=('x86_64'\n  'aarch64') # two",
                "build() {",
                "  x=1",
                "  if true; then { :; }; fi",
                "}",
                "y=$(id)",
                "z=(a",
            ]
        );
        assert!(matches!(&u[0], Unit::Assign { name, array: false, .. } if name == "pkgver"));
        assert!(
            matches!(&u[1], Unit::Assign { name, array: true, words, .. }
            if name == "arch" && words.len() == 2)
        );
        // Inside a function, and anything not understood: plain lines.
        assert!(matches!(&u[3], Unit::Line(_)));
        assert!(matches!(&u[6], Unit::Line(_)));
        assert!(matches!(&u[7], Unit::Line(_)));
        assert_eq!(literal_pkgver(&u).as_deref(), Some("1.2"));
        assert_eq!(literal_pkgver(&units("pkgver=$v\n")), None);
    }
}
