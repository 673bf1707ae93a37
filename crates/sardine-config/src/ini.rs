//! INI files as Python's `configparser` reads them, without interpolation.
//!
//! Differences from `configparser` are deliberate fixes of sardinecake 0.4.2's weaknesses:
//! `%` is an ordinary character (W24), and `-` and `_` in keys are the same (so both
//! `print-uuid` and `print_uuid` work; keys are stored with `-`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ConfigError, SyntaxProblem, ValueError};
use crate::{duration, files, size};

/// The name of the section whose values every other section inherits.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// One value of a configuration, with where it was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    value: String,
    section: String,
    origin: String,
    line: usize,
}

impl Entry {
    /// The value, with continuation lines joined by `\n`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The section the value was written in (`DEFAULT` when inherited).
    pub fn section(&self) -> &str {
        &self.section
    }

    /// The file (or other origin) the value was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The 1-based line of the key in [`Entry::origin`].
    pub fn line(&self) -> usize {
        self.line
    }
}

/// One `[section]` with its keys in the order they first appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    name: String,
    entries: Vec<(String, Entry)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, entry)| entry)
    }

    fn set(&mut self, key: String, entry: Entry) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => *old = entry,
            None => self.entries.push((key, entry)),
        }
    }
}

/// An INI configuration as Python's configparser reads it, minus interpolation.
///
/// * Section names are case-sensitive; keys are lowercased, and `-` and `_` in keys are the same.
/// * `[DEFAULT]` is inherited by every section, unless inheritance is switched off with
///   [`Config::with_default_inheritance`] (the executor treats `[DEFAULT]` as a plain section).
/// * `key = value` and `key: value`; indented lines continue the previous value; `#` and `;`
///   start comment lines (there are no inline comments); empty values are allowed.
/// * Within one file a section or key may appear only once; later files override earlier ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    sections: Vec<Section>,
    inherit_default: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sections: Vec::new(),
            inherit_default: true,
        }
    }
}

/// Normalises a key: lowercase, with `_` written as `-`.
pub fn normalize_key(key: &str) -> String {
    key.to_lowercase().replace('_', "-")
}

impl Config {
    /// Reads `files` in order, later ones overriding earlier ones; files that do not exist are
    /// skipped. Returns the configuration and the files that were actually read.
    pub fn load(files: &[PathBuf]) -> Result<(Config, Vec<PathBuf>), ConfigError> {
        let mut config = Config::default();
        let mut read = Vec::new();
        for path in files {
            let Some(text) = read_if_exists(path)? else {
                continue;
            };
            config.merge(Config::parse_str(&text, &path.display().to_string())?);
            read.push(path.clone());
        }
        Ok((config, read))
    }

    /// Parses the text of one INI file; `origin` (usually the file name) appears in errors.
    pub fn parse_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut parser = Parser::new(origin);
        for (index, line) in text.lines().enumerate() {
            parser.line(index + 1, line)?;
        }
        Ok(parser.finish())
    }

    /// Switches inheritance from `[DEFAULT]` on (the default) or off.
    #[must_use]
    pub fn with_default_inheritance(mut self, inherit: bool) -> Self {
        self.inherit_default = inherit;
        self
    }

    /// Whether sections inherit the values of `[DEFAULT]`.
    pub fn inherits_default(&self) -> bool {
        self.inherit_default
    }

    /// Adds the sections and values of `later`, which override values of `self`.
    pub fn merge(&mut self, later: Config) {
        for section in later.sections {
            let target = self.section_mut(&section.name);
            for (key, entry) in section.entries {
                target.set(key, entry);
            }
        }
    }

    /// The value of `key` in `section`, else (when inheriting) in `[DEFAULT]`.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.entry(section, key).map(Entry::value)
    }

    /// Like [`Config::get`], with where the value was defined.
    pub fn entry(&self, section: &str, key: &str) -> Option<&Entry> {
        let key = normalize_key(key);
        let own = self.section(section).and_then(|s| s.get(&key));
        if own.is_some() || !self.inherit_default {
            return own;
        }
        self.section(DEFAULT_SECTION).and_then(|s| s.get(&key))
    }

    /// The sections, in order of first appearance, without `[DEFAULT]`.
    pub fn sections(&self) -> impl Iterator<Item = &str> {
        self.sections
            .iter()
            .map(|s| s.name.as_str())
            .filter(|name| *name != DEFAULT_SECTION)
    }

    /// Whether `section` (which may be `DEFAULT`) appears in the configuration.
    pub fn has_section(&self, section: &str) -> bool {
        self.section(section).is_some()
    }

    /// The keys written in `section` itself (not inherited ones), normalised.
    pub fn keys(&self, section: &str) -> impl Iterator<Item = &str> {
        self.section(section)
            .into_iter()
            .flat_map(|s| s.entries.iter().map(|(key, _)| key.as_str()))
    }

    /// A boolean: `yes`/`no`, `true`/`false`, `on`/`off`, `1`/`0` (case-insensitive).
    /// Absent or empty values are `None`.
    pub fn get_bool(&self, section: &str, key: &str) -> Result<Option<bool>, ConfigError> {
        self.convert(section, key, parse_bool)
    }

    /// A path, with a leading `~` expanded to `$HOME`. Absent or empty values are `None`.
    pub fn get_path(&self, section: &str, key: &str) -> Option<PathBuf> {
        self.get(section, key)
            .filter(|value| !value.is_empty())
            .map(files::expand_tilde)
    }

    /// A size in bytes (see [`crate::parse_size`]). Absent or empty values are `None`.
    pub fn get_size(&self, section: &str, key: &str) -> Result<Option<u64>, ConfigError> {
        self.convert(section, key, size::parse_size)
    }

    /// A non-negative integer. Absent or empty values are `None`.
    pub fn get_u64(&self, section: &str, key: &str) -> Result<Option<u64>, ConfigError> {
        self.convert(section, key, |value| {
            value.parse().map_err(|source| ValueError::Integer {
                input: value.to_owned(),
                source,
            })
        })
    }

    /// A floating-point number. Absent or empty values are `None`.
    pub fn get_f64(&self, section: &str, key: &str) -> Result<Option<f64>, ConfigError> {
        self.convert(section, key, |value| {
            value.parse().map_err(|source| ValueError::Float {
                input: value.to_owned(),
                source,
            })
        })
    }

    /// A duration (see [`crate::parse_duration`]). Absent or empty values are `None`.
    pub fn get_duration(&self, section: &str, key: &str) -> Result<Option<Duration>, ConfigError> {
        self.convert(section, key, duration::parse_duration)
    }

    /// Converts a present, non-empty value, naming file, line, section and key on failure.
    fn convert<T>(
        &self,
        section: &str,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(entry) = self
            .entry(section, key)
            .filter(|e| !e.value.trim().is_empty())
        else {
            return Ok(None);
        };
        parse(entry.value.trim())
            .map(Some)
            .map_err(|source| ConfigError::InvalidValue {
                origin: entry.origin.clone(),
                line: entry.line,
                section: section.to_owned(),
                key: normalize_key(key),
                source: Box::new(source),
            })
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    fn section_mut(&mut self, name: &str) -> &mut Section {
        let index = match self.sections.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                self.sections.push(Section {
                    name: name.to_owned(),
                    entries: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        &mut self.sections[index]
    }
}

/// Parses a configparser boolean.
pub fn parse_bool(value: &str) -> Result<bool, ValueError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(ValueError::Bool(value.to_owned())),
    }
}

/// Reads a file; `Ok(None)` if it does not exist.
fn read_if_exists(path: &Path) -> Result<Option<String>, ConfigError> {
    match fs_err::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ConfigError::Read {
            path: path.to_owned(),
            source: error,
        }),
    }
}

/// The key whose value continuation lines extend.
struct OpenValue {
    key: String,
    /// Indentation of the key's line; deeper-indented lines continue the value.
    indent: usize,
    /// Lines of the value; empty lines are kept, trailing ones dropped at the end.
    lines: Vec<String>,
    line: usize,
}

/// State of parsing one file, line by line (the algorithm of `configparser.RawConfigParser._read`).
struct Parser<'a> {
    origin: &'a str,
    config: Config,
    /// The current section and the line of its header.
    section: Option<(String, usize)>,
    open: Option<OpenValue>,
    /// `(section, key, line)` of every key seen in this file, for duplicate detection.
    seen_keys: Vec<(String, String, usize)>,
    /// `(section, line)` of every header seen in this file.
    seen_sections: Vec<(String, usize)>,
}

impl<'a> Parser<'a> {
    fn new(origin: &'a str) -> Self {
        Self {
            origin,
            config: Config::default(),
            section: None,
            open: None,
            seen_keys: Vec::new(),
            seen_sections: Vec::new(),
        }
    }

    fn error(&self, line: usize, problem: SyntaxProblem) -> ConfigError {
        ConfigError::Syntax {
            origin: self.origin.to_owned(),
            line,
            problem,
        }
    }

    fn line(&mut self, number: usize, raw: &str) -> Result<(), ConfigError> {
        let text = raw.trim();
        if text.starts_with('#') || text.starts_with(';') {
            return Ok(());
        }
        if text.is_empty() {
            if let Some(open) = &mut self.open {
                open.lines.push(String::new());
            }
            return Ok(());
        }
        let indent = raw.len() - raw.trim_start().len();
        if let Some(open) = self.open.as_mut().filter(|open| indent > open.indent) {
            open.lines.push(text.to_owned());
            return Ok(());
        }
        self.close_value();
        if let Some(rest) = text.strip_prefix('[').filter(|rest| rest.contains(']')) {
            return self.header(number, rest);
        }
        self.key_value(number, indent, text)
    }

    /// A `[name]` line; `rest` is the text after `[`. Text after the last `]` is ignored, as
    /// configparser does.
    fn header(&mut self, number: usize, rest: &str) -> Result<(), ConfigError> {
        let name = rest.rfind(']').map_or(rest, |end| &rest[..end]).trim();
        if name.is_empty() {
            return Err(self.error(number, SyntaxProblem::EmptySection));
        }
        let earlier = self.seen_sections.iter().find(|(s, _)| s == name);
        if let Some((_, first_line)) = earlier.filter(|_| name != DEFAULT_SECTION) {
            let problem = SyntaxProblem::DuplicateSection {
                section: name.to_owned(),
                first_line: *first_line,
            };
            return Err(self.error(number, problem));
        }
        self.seen_sections.push((name.to_owned(), number));
        self.config.section_mut(name);
        self.section = Some((name.to_owned(), number));
        Ok(())
    }

    fn key_value(&mut self, number: usize, indent: usize, text: &str) -> Result<(), ConfigError> {
        let Some(section) = self.section.as_ref().map(|(name, _)| name.clone()) else {
            return Err(self.error(number, SyntaxProblem::MissingSectionHeader(text.to_owned())));
        };
        let Some(split) = text.find(['=', ':']) else {
            return Err(self.error(number, SyntaxProblem::Unparsable(text.to_owned())));
        };
        let key = normalize_key(text[..split].trim());
        if key.is_empty() {
            return Err(self.error(number, SyntaxProblem::EmptyKey(text.to_owned())));
        }
        if let Some((_, _, first_line)) = self
            .seen_keys
            .iter()
            .find(|(s, k, _)| *s == section && *k == key)
        {
            let problem = SyntaxProblem::DuplicateKey {
                section,
                key,
                first_line: *first_line,
            };
            return Err(self.error(number, problem));
        }
        self.seen_keys.push((section, key.clone(), number));
        self.open = Some(OpenValue {
            key,
            indent,
            lines: vec![text[split + 1..].trim().to_owned()],
            line: number,
        });
        Ok(())
    }

    /// Stores the value being read, if any.
    fn close_value(&mut self) {
        let (Some(open), Some((section, _))) = (self.open.take(), self.section.as_ref()) else {
            return;
        };
        let entry = Entry {
            value: open.lines.join("\n").trim_end().to_owned(),
            section: section.clone(),
            origin: self.origin.to_owned(),
            line: open.line,
        };
        let section = section.clone();
        self.config.section_mut(&section).set(open.key, entry);
    }

    fn finish(mut self) -> Config {
        self.close_value();
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        match Config::parse_str(text, "test.ini") {
            Ok(config) => config,
            Err(error) => panic!("{error}"),
        }
    }

    fn syntax_error(text: &str) -> (usize, SyntaxProblem) {
        match Config::parse_str(text, "test.ini") {
            Err(ConfigError::Syntax {
                origin,
                line,
                problem,
            }) => {
                assert_eq!(origin, "test.ini");
                (line, problem)
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn basic_keys_and_delimiters() {
        let config =
            parse("[export]\nchunksize = 1G\nvmconfig: /a b.json\nempty =\nKey_With-Case = x\n");
        assert_eq!(config.get("export", "chunksize"), Some("1G"));
        assert_eq!(config.get("export", "vmconfig"), Some("/a b.json"));
        assert_eq!(config.get("export", "empty"), Some(""));
        assert_eq!(config.get("export", "key-with-case"), Some("x"));
        assert_eq!(config.get("export", "KEY_WITH_CASE"), Some("x"));
        assert_eq!(config.get("export", "missing"), None);
        assert_eq!(config.get("import", "chunksize"), None);
    }

    #[test]
    fn the_first_delimiter_splits_key_and_value() {
        let config = parse("[s]\nurl = qemu:///system\nconnect: a=b\n");
        assert_eq!(config.get("s", "url"), Some("qemu:///system"));
        assert_eq!(config.get("s", "connect"), Some("a=b"));
    }

    #[test]
    fn dash_and_underscore_are_the_same_key() {
        let config = parse("[import]\nprint_uuid = yes\n");
        assert_eq!(config.get("import", "print-uuid"), Some("yes"));
        assert_eq!(config.get("import", "print_uuid"), Some("yes"));
        assert_eq!(config.keys("import").collect::<Vec<_>>(), ["print-uuid"]);
    }

    #[test]
    fn percent_is_kept_literally_w24() {
        let config = parse("[DEFAULT]\npassword = 100%sure%%\n[x]\ny = %(password)s\n");
        assert_eq!(config.get("x", "password"), Some("100%sure%%"));
        assert_eq!(config.get("x", "y"), Some("%(password)s"));
    }

    #[test]
    fn default_is_inherited_and_overridden() {
        let config = parse("[DEFAULT]\nocidir = /d\nvmdir = /v\n[import]\nocidir = /i\n");
        assert_eq!(config.get("import", "ocidir"), Some("/i"));
        assert_eq!(config.get("import", "vmdir"), Some("/v"));
        assert_eq!(
            config.get("clone", "vmdir"),
            Some("/v"),
            "also for sections that do not exist"
        );
        assert_eq!(
            config.entry("import", "vmdir").map(Entry::section),
            Some("DEFAULT")
        );
        assert_eq!(config.sections().collect::<Vec<_>>(), ["import"]);
        assert!(config.has_section("DEFAULT"));
    }

    #[test]
    fn default_inheritance_can_be_switched_off_for_the_executor() {
        let config =
            parse("[DEFAULT]\nocidir = /d\n[img]\nvmdir = /v\n").with_default_inheritance(false);
        assert!(!config.inherits_default());
        assert_eq!(config.get("img", "ocidir"), None);
        assert_eq!(config.get("DEFAULT", "ocidir"), Some("/d"));
    }

    #[test]
    fn section_keys_do_not_leak_into_other_sections_w1() {
        let config = parse(
            "[fetch]\nsource = registry.example/x\nocidir = /fetch\n[push]\ntarget = t\n[export]\nchunksize = 1G\n",
        );
        assert_eq!(config.get("push", "source"), None);
        assert_eq!(config.get("push", "ocidir"), None);
        assert_eq!(config.get("list", "ocidir"), None);
        assert_eq!(config.get("import", "chunksize"), None);
        assert_eq!(config.get("clone", "chunksize"), None);
        assert_eq!(config.get("fetch", "target"), None);
    }

    #[test]
    fn comments_and_blank_lines() {
        let config = parse(
            "# top\n; also\n[s]\n# comment\na = 1 # not a comment\n\n  ; indented comment\nb = 2\n",
        );
        assert_eq!(config.get("s", "a"), Some("1 # not a comment"));
        assert_eq!(config.get("s", "b"), Some("2"));
    }

    #[test]
    fn continuation_lines_like_configparser() {
        let config =
            parse("[push]\ntarget = a\n  b\n\n  c\n\n# comment\nother = x\n    y\n\n\n[next]\n");
        assert_eq!(config.get("push", "target"), Some("a\nb\n\nc"));
        assert_eq!(config.get("push", "other"), Some("x\ny"));
    }

    #[test]
    fn indented_key_lines_are_not_continuations_of_deeper_values() {
        let config = parse("[s]\n  a = 1\n  b = 2\n    more\n");
        assert_eq!(config.get("s", "a"), Some("1"));
        assert_eq!(config.get("s", "b"), Some("2\nmore"));
    }

    #[test]
    fn section_headers() {
        let config = parse("[ spaced ]\na=1\n[with]bracket]\nb=2\n[x] trailing\nc=3\n");
        assert_eq!(config.get("spaced", "a"), Some("1"));
        assert_eq!(config.get("with]bracket", "b"), Some("2"));
        assert_eq!(config.get("x", "c"), Some("3"));
        assert_eq!(
            config.get("X", "c"),
            None,
            "section names are case-sensitive"
        );
    }

    #[test]
    fn crlf_line_endings() {
        let config = parse("[s]\r\na = 1\r\n");
        assert_eq!(config.get("s", "a"), Some("1"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert!(matches!(
            syntax_error("a = 1\n"),
            (1, SyntaxProblem::MissingSectionHeader(_))
        ));
        assert!(matches!(
            syntax_error("[s]\n\njust words\n"),
            (3, SyntaxProblem::Unparsable(_))
        ));
        assert!(matches!(
            syntax_error("[s]\n= value\n"),
            (2, SyntaxProblem::EmptyKey(_))
        ));
        assert!(matches!(
            syntax_error("[]\n"),
            (1, SyntaxProblem::EmptySection)
        ));
        assert!(matches!(
            syntax_error("[s]\n[t]\n[s]\n"),
            (3, SyntaxProblem::DuplicateSection { first_line: 1, .. })
        ));
        assert!(matches!(
            syntax_error("[s]\nprint-uuid = 1\nprint_uuid = 0\n"),
            (3, SyntaxProblem::DuplicateKey { first_line: 2, .. })
        ));
        let message = Config::parse_str("[s]\nnope\n", "/etc/x.ini").map_err(|e| e.to_string());
        assert!(message.is_err_and(|m| m.starts_with("/etc/x.ini:2: ")));
    }

    #[test]
    fn default_may_repeat_in_one_file() {
        let config = parse("[DEFAULT]\na = 1\n[s]\n[DEFAULT]\nb = 2\n");
        assert_eq!(config.get("s", "a"), Some("1"));
        assert_eq!(config.get("s", "b"), Some("2"));
    }

    #[test]
    fn later_files_override_earlier_ones() {
        let mut config =
            parse("[DEFAULT]\nocidir = /sys\nvmdir = /sysvm\n[export]\nchunksize = 1G\n");
        config.merge(parse("[DEFAULT]\nocidir = /user\n[export]\nraw = yes\n"));
        assert_eq!(config.get("export", "ocidir"), Some("/user"));
        assert_eq!(config.get("export", "vmdir"), Some("/sysvm"));
        assert_eq!(config.get("export", "chunksize"), Some("1G"));
        assert_eq!(config.get("export", "raw"), Some("yes"));
    }

    #[test]
    fn booleans_are_parsed_not_truthy_strings() {
        let config = parse(
            "[s]\nraw = no\nyes = YES\non = on\noff = Off\none = 1\nzero = 0\nempty =\nbad = maybe\n",
        );
        assert_eq!(config.get_bool("s", "raw").ok(), Some(Some(false)));
        assert_eq!(config.get_bool("s", "yes").ok(), Some(Some(true)));
        assert_eq!(config.get_bool("s", "on").ok(), Some(Some(true)));
        assert_eq!(config.get_bool("s", "off").ok(), Some(Some(false)));
        assert_eq!(config.get_bool("s", "one").ok(), Some(Some(true)));
        assert_eq!(config.get_bool("s", "zero").ok(), Some(Some(false)));
        assert_eq!(config.get_bool("s", "empty").ok(), Some(None));
        assert_eq!(config.get_bool("s", "missing").ok(), Some(None));
        let error = config.get_bool("s", "bad").map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err("test.ini:9: invalid value for 'bad' in section [s]".to_owned())
        );
    }

    #[test]
    fn typed_getters() {
        let config = parse(
            "[DEFAULT]\nchunksize = 1.5 GiB\n[s]\nn = 42\nf = 2.5\nt = 5m\nbadn = -1\nbadsize = 3 parsecs\nbadt = soon\nocidir = ~/oci\n",
        );
        assert_eq!(
            config.get_size("s", "chunksize").ok(),
            Some(Some(1_610_612_736))
        );
        assert_eq!(config.get_u64("s", "n").ok(), Some(Some(42)));
        assert_eq!(config.get_f64("s", "f").ok(), Some(Some(2.5)));
        assert_eq!(
            config.get_duration("s", "t").ok(),
            Some(Some(Duration::from_secs(300)))
        );
        assert!(matches!(
            config.get_u64("s", "badn"),
            Err(ConfigError::InvalidValue { line: 7, source, .. })
                if matches!(*source, ValueError::Integer { .. })
        ));
        assert!(matches!(
            config.get_size("s", "badsize"),
            Err(ConfigError::InvalidValue { source, .. }) if matches!(*source, ValueError::SizeUnit { .. })
        ));
        assert!(matches!(
            config.get_duration("s", "badt"),
            Err(ConfigError::InvalidValue { source, .. }) if matches!(*source, ValueError::Duration(_))
        ));
        assert_eq!(config.get_size("s", "missing").ok(), Some(None));
        let expected = crate::expand_tilde("~/oci");
        assert_eq!(config.get_path("s", "ocidir"), Some(expected));
    }

    #[test]
    fn load_skips_missing_files_and_reports_the_ones_read() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let first = dir.path().join("first.ini");
        let second = dir.path().join("second.ini");
        fs_err::write(&first, "[DEFAULT]\nocidir = /first\nvmdir = /vm\n")?;
        fs_err::write(&second, "[DEFAULT]\nocidir = /second\n")?;
        let missing = dir.path().join("missing.ini");
        let (config, read) = Config::load(&[first.clone(), missing, second.clone()])?;
        assert_eq!(read, [first, second.clone()]);
        assert_eq!(config.get("list", "ocidir"), Some("/second"));
        assert_eq!(config.get("list", "vmdir"), Some("/vm"));
        assert_eq!(
            config.entry("list", "ocidir").map(Entry::origin),
            Some(second.display().to_string().as_str())
        );
        Ok(())
    }

    #[test]
    fn load_fails_on_unreadable_and_malformed_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let directory = dir.path().to_owned();
        assert!(matches!(
            Config::load(&[directory]),
            Err(ConfigError::Read { .. })
        ));
        let bad = dir.path().join("bad.ini");
        fs_err::write(&bad, "[s]\nnot a pair\n")?;
        let error = Config::load(std::slice::from_ref(&bad)).map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err(format!(
                "{}:2: cannot parse 'not a pair': expected '[section]', 'key = value', 'key: value' or a '#'/';' comment",
                bad.display()
            ))
        );
        Ok(())
    }
}
