//! Text from outside (a child's stderr, a client's tool name) made safe to log.
//!
//! On stderr the hub writes one event per line, so a raw `\n` in such text
//! would forge whole log lines, a `\r` would overwrite one on a terminal, and
//! an ANSI escape would colour or hide one. [`Escaped`] writes every control
//! character (C0, DEL, C1) as `\n`, `\r`, `\t` or `\u{1b}`, and does the same
//! for the Unicode line and paragraph separators and the bidirectional
//! overrides, which can reorder what a reader sees. Everything else, the
//! replacement character of a lossy decode included, is written as it is, so
//! ordinary lines read unchanged. Backslashes are not doubled: escaping exists
//! to stop forged lines, and a literal `\n` typed by a child forges nothing.

use std::fmt;

/// Displays its text with control characters escaped (see the module doc).
pub struct Escaped<'a>(pub &'a str);

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}'
                | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(needs_escape) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c => write!(f, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// The escaped text as a `String`.
pub fn escape(text: &str) -> String {
    Escaped(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("plain line: ok"), "plain line: ok");
        assert_eq!(escape("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(escape("\x1b[31mred\x1b[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(
            escape("nul\0 del\x7f c1\u{85}"),
            "nul\\u{0} del\\u{7f} c1\\u{85}"
        );
        assert_eq!(escape("ls\u{2028}rlo\u{202e}"), "ls\\u{2028}rlo\\u{202e}");
        assert_eq!(escape("é 日本 \u{fffd} C:\\dir"), "é 日本 \u{fffd} C:\\dir");
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_has_no_control_characters(s in proptest::prelude::any::<String>()) {
            let e = escape(&s);
            proptest::prop_assert!(!e.chars().any(needs_escape), "{e:?}");
            if !s.chars().any(needs_escape) {
                proptest::prop_assert_eq!(e, s);
            }
        }
    }
}
