//! POSIX shell quoting for building remote command lines (SSH runs commands through the
//! remote user's shell, so every argument must be quoted).

/// Quotes `s` so a POSIX shell reads it back as exactly one word with the same bytes.
///
/// Strings made only of characters no shell treats specially are returned unchanged; anything
/// else is wrapped in single quotes, with each `'` written as `'"'"'`. The empty string
/// becomes `''`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(is_safe) {
        return s.to_owned();
    }
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('\'');
    for c in s.chars() {
        if c == '\'' {
            quoted.push_str("'\"'\"'");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// Quotes each argument with [`shell_quote`] and joins them with spaces.
pub fn shell_join<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter()
        .map(|arg| shell_quote(arg.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_unquoted() {
        assert_eq!(shell_quote("ls"), "ls");
        assert_eq!(shell_quote("/usr/bin/env"), "/usr/bin/env");
        assert_eq!(shell_quote("a=b,c:d@e%f+g-h_i.j"), "a=b,c:d@e%f+g-h_i.j");
    }

    #[test]
    fn empty_string_is_two_quotes() {
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn special_characters_are_single_quoted() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("a;rm -rf /"), "'a;rm -rf /'");
        assert_eq!(shell_quote("*"), "'*'");
        assert_eq!(shell_quote("x\ny"), "'x\ny'");
        assert_eq!(shell_quote("é"), "'é'");
    }

    #[test]
    fn single_quotes_are_escaped() {
        assert_eq!(shell_quote("it's"), r#"'it'"'"'s'"#);
        assert_eq!(shell_quote("'"), r#"''"'"''"#);
    }

    #[test]
    fn join_quotes_each_argument() {
        assert_eq!(shell_join(["echo", "a b", "", "c"]), "echo 'a b' '' c");
        assert_eq!(shell_join(Vec::<String>::new()), "");
    }

    #[test]
    fn quoted_strings_survive_a_real_shell() {
        let nasty = [
            "plain",
            "",
            "a b",
            "it's",
            "\"double\"",
            "$(echo pwned)",
            "`x`",
            "back\\slash",
            "new\nline",
            "tab\there",
            "é✓",
            "-n",
        ];
        let script = format!("printf '%s\\0' {}", shell_join(nasty));
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let words: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
        let expected: Vec<&[u8]> = nasty
            .iter()
            .map(|s| s.as_bytes())
            .chain([&b""[..]])
            .collect();
        assert_eq!(words, expected);
    }
}
