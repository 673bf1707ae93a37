//! Shell-style patterns (Python's `fnmatch`, case-sensitive) and choosing the executor's
//! configuration section for an image name.

/// One element of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A character that must be there.
    Literal(char),
    /// `?`: any one character.
    Any,
    /// `*`: any run of characters, including `/` and none at all.
    Star,
    /// `[…]` or `[!…]`: one character from (or not from) inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled `fnmatch` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles a pattern the way `fnmatch.translate` does: a `[` without a closing `]` is a
    /// literal `[`, and a `]` right after `[` or `[!` belongs to the set.
    fn new(pattern: &str) -> Self {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '[' => match parse_class(&chars, i + 1) {
                    Some((token, end)) => {
                        tokens.push(token);
                        i = end;
                    }
                    None => tokens.push(Token::Literal('[')),
                },
                c => tokens.push(Token::Literal(c)),
            }
            i += 1;
        }
        Self { tokens }
    }

    /// The number of literal characters: how specific the pattern is.
    fn literal_count(&self) -> usize {
        self.tokens
            .iter()
            .filter(|t| matches!(t, Token::Literal(_)))
            .count()
    }

    fn has_wildcards(&self) -> bool {
        self.tokens.iter().any(|t| !matches!(t, Token::Literal(_)))
    }

    fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        match_from(&self.tokens, &text)
    }
}

/// Parses the set of a `[…]` class whose first character after `[` is at `start`.
/// Returns the token and the index of the closing `]`, or `None` if there is none.
fn parse_class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start;
    let negated = chars.get(i) == Some(&'!');
    if negated {
        i += 1;
    }
    let first = i;
    let mut ranges = Vec::new();
    loop {
        let c = *chars.get(i)?;
        if c == ']' && i > first {
            return Some((Token::Class { negated, ranges }, i));
        }
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|end| *end != ']') {
            ranges.push((c, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
}

/// Whether `tokens` match all of `text` (backtracking only at `*`).
fn match_from(tokens: &[Token], text: &[char]) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match token {
        Token::Star => (0..=text.len()).any(|skip| match_from(rest, &text[skip..])),
        _ => text
            .split_first()
            .is_some_and(|(c, text)| token_matches(token, *c) && match_from(rest, text)),
    }
}

fn token_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::Any | Token::Star => true,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
    }
}

/// Whether `text` matches the shell pattern `pattern` (`*`, `?`, `[…]`, `[!…]`; case-sensitive;
/// `*` also matches `/`), like Python's `fnmatch.fnmatchcase`.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    Pattern::new(pattern).matches(text)
}

/// The best section for an image name: a section named exactly like the image, else the
/// matching pattern section with the most literal (non-wildcard) characters; ties go to the
/// earlier section. Sections are not merged.
pub fn best_matching_section<'a>(
    sections: impl Iterator<Item = &'a str>,
    image: &str,
) -> Option<&'a str> {
    let mut best: Option<(&'a str, usize)> = None;
    for section in sections {
        if section == image {
            return Some(section);
        }
        let pattern = Pattern::new(section);
        if !pattern.has_wildcards() || !pattern.matches(image) {
            continue;
        }
        let specificity = pattern.literal_count();
        if best.is_none_or(|(_, best_specificity)| specificity > best_specificity) {
            best = Some((section, specificity));
        }
    }
    best.map(|(section, _)| section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_basics() {
        assert!(fnmatch("*", ""));
        assert!(fnmatch("*", "registry.example/a/b:1"));
        assert!(fnmatch("registry.example/*", "registry.example/a/b"));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("*:latest", "x/y:latest"));
        assert!(!fnmatch("*:latest", "x/y:old"));
        assert!(fnmatch("a**b", "a/x/b"));
        assert!(!fnmatch("Debian*", "debian12"), "case-sensitive");
    }

    #[test]
    fn fnmatch_classes() {
        assert!(fnmatch("debian[0-9]", "debian7"));
        assert!(!fnmatch("debian[0-9]", "debianx"));
        assert!(fnmatch("debian[!0-9]", "debianx"));
        assert!(!fnmatch("debian[!0-9]", "debian7"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("[!]]", "a"));
        assert!(fnmatch("[a-]", "-"));
        assert!(fnmatch("x[", "x["), "an unclosed [ is literal");
        assert!(fnmatch("x[ab", "x[ab"));
    }

    #[test]
    fn exact_match_wins() {
        let sections = ["*", "reg/img:*", "reg/img:1"];
        assert_eq!(
            best_matching_section(sections.into_iter(), "reg/img:1"),
            Some("reg/img:1")
        );
    }

    #[test]
    fn most_specific_pattern_wins() {
        let sections = ["*", "reg/*", "reg/img:*", "*:1"];
        assert_eq!(
            best_matching_section(sections.into_iter(), "reg/img:1"),
            Some("reg/img:*")
        );
        assert_eq!(
            best_matching_section(sections.into_iter(), "reg/other:2"),
            Some("reg/*")
        );
        assert_eq!(
            best_matching_section(sections.into_iter(), "elsewhere:3"),
            Some("*")
        );
    }

    #[test]
    fn wildcards_do_not_count_as_specific() {
        // 0.4.2 compared name lengths, so "**********" would beat "reg/img:*".
        let sections = ["**********", "reg/img:*"];
        assert_eq!(
            best_matching_section(sections.into_iter(), "reg/img:1"),
            Some("reg/img:*")
        );
    }

    #[test]
    fn ties_go_to_the_earlier_section() {
        let sections = ["reg/*", "*/img"];
        assert_eq!(
            best_matching_section(sections.into_iter(), "reg/img"),
            Some("reg/*")
        );
        let sections = ["*/img", "reg/*"];
        assert_eq!(
            best_matching_section(sections.into_iter(), "reg/img"),
            Some("*/img")
        );
    }

    #[test]
    fn no_match() {
        let sections = ["other", "reg/*"];
        assert_eq!(
            best_matching_section(sections.into_iter(), "elsewhere/img"),
            None
        );
        assert_eq!(best_matching_section(std::iter::empty(), "img"), None);
    }
}
