//! The one place where sarde's settings are resolved: the command line wins, then the
//! subcommand's section of the configuration files, then their `[DEFAULT]` section, then the
//! built-in defaults of [`crate::cli`].
//!
//! Nothing here knows individual options. Every argument of the chosen subcommand that was not
//! given on the command line (or through its environment variable) is looked up in the
//! configuration under its long option name (`chunksize`, `print-uuid` = `print_uuid`, ...) or,
//! for optional positionals, its argument name (`container`). Found values are checked with the
//! argument's own value parser, then added to the command line and parsed once more, so config
//! values get exactly the validation and types command-line values get. Unlike sardinecake
//! 0.4.2 (weakness W1) a section applies to its subcommand only.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::builder::ValueRange;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches, ValueHint};
use sardine_config::{Config, ConfigError, DEFAULT_SECTION, Entry, normalize_key};

use crate::cli::Cli;

/// The resolved settings of one run of sarde.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The command line, completed from the configuration files.
    pub cli: Cli,
    /// The name of the subcommand (also its configuration section).
    pub subcommand: String,
    /// The configuration files that were read, in order.
    pub config_files: Vec<PathBuf>,
    /// The configuration values that were used.
    pub from_config: Vec<ConfigValue>,
    /// Configuration values that were not used, and why (for debug output).
    pub ignored: Vec<String>,
    /// Problems with the configuration that do not stop sarde (unknown sections and keys).
    pub warnings: Vec<String>,
}

impl Settings {
    /// `-v` count minus `-q` count: 0 is the default level, positive is more verbose.
    pub fn verbosity(&self) -> i16 {
        i16::from(self.cli.global.verbose) - i16::from(self.cli.global.quiet)
    }

    /// Logs where the settings came from at debug level, and the configuration warnings.
    pub fn log(&self) {
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
        if self.config_files.is_empty() {
            tracing::debug!("no configuration file found");
        }
        for file in &self.config_files {
            tracing::debug!("read configuration file {}", file.display());
        }
        for value in &self.from_config {
            tracing::debug!(
                "setting {} = {:?} from [{}] in {}:{}",
                value.key,
                value.shown(),
                value.section,
                value.origin,
                value.line
            );
        }
        for note in &self.ignored {
            tracing::debug!("{note}");
        }
        tracing::debug!("resolved settings: {:#?}", self.cli);
    }
}

/// A configuration value that was used for an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValue {
    /// The (normalised) key.
    pub key: String,
    /// The value as written.
    pub value: String,
    /// The section it was written in (the subcommand's or `DEFAULT`).
    pub section: String,
    /// The file it was read from.
    pub origin: String,
    /// The line of the key.
    pub line: usize,
}

impl ConfigValue {
    /// The value for messages: secrets (keys containing "password") are hidden.
    pub fn shown(&self) -> &str {
        if self.key.contains("password") {
            "<hidden>"
        } else {
            &self.value
        }
    }

    fn new(key: &str, entry: &Entry) -> Self {
        Self {
            key: key.to_owned(),
            value: entry.value().to_owned(),
            section: entry.section().to_owned(),
            origin: entry.origin().to_owned(),
            line: entry.line(),
        }
    }
}

/// Why the settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The command line is wrong, or asks for help or the version (clap prints these itself).
    #[error(transparent)]
    CommandLine(#[from] clap::Error),
    /// A configuration file cannot be read or parsed.
    #[error("cannot load the configuration")]
    Config(#[source] ConfigError),
    /// A configuration value is not valid for its option.
    #[error("{}:{}: invalid value {:?} for '{}' in section [{}]", .value.origin, .value.line, .value.shown(), .value.key, .value.section)]
    Value {
        /// The value.
        value: Box<ConfigValue>,
        /// What is wrong with it.
        #[source]
        source: InvalidSetting,
    },
    /// Two configuration values for the same subcommand contradict each other.
    #[error(
        "{}:{}: '{}' in section [{}] conflicts with '{}' ({}:{}, section [{}]); remove one of them",
        .first.origin, .first.line, .first.key, .first.section,
        .second.key, .second.origin, .second.line, .second.section
    )]
    Conflict {
        /// One of the values.
        first: Box<ConfigValue>,
        /// The other.
        second: Box<ConfigValue>,
    },
    /// The configuration values are valid one by one, but not together with the command line.
    #[error("the command line together with values from the configuration files is invalid")]
    Combined(#[source] clap::Error),
}

/// What is wrong with a configuration value, as the option's parser said it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(String);

/// The clap command of sarde, built (global options propagated to every subcommand).
pub fn command() -> Command {
    let mut command = Cli::command().after_help(crate::cli::after_help());
    command.build();
    command
}

/// Parses the command line, reads the configuration files and resolves the settings.
pub fn load(argv: Vec<OsString>) -> Result<Settings, SettingsError> {
    let command = command();
    let matches = command.clone().try_get_matches_from(&argv)?;
    let (config, files) =
        Config::load(&sardine_config::sarde_config_files()).map_err(SettingsError::Config)?;
    resolve(&command, &argv, &matches, &config, files)
}

/// Resolves the settings of a parsed command line against a configuration.
pub fn resolve(
    command: &Command,
    argv: &[OsString],
    matches: &ArgMatches,
    config: &Config,
    config_files: Vec<PathBuf>,
) -> Result<Settings, SettingsError> {
    let Some((name, sub_matches)) = matches.subcommand() else {
        let mut command = command.clone();
        return Err(command
            .error(
                clap::error::ErrorKind::MissingSubcommand,
                "a subcommand is required",
            )
            .into());
    };
    let Some(subcommand) = command.find_subcommand(name) else {
        let mut command = command.clone();
        return Err(command
            .error(clap::error::ErrorKind::InvalidSubcommand, name)
            .into());
    };
    let mut ignored = Vec::new();
    let candidates = candidates(subcommand, sub_matches, config, &mut ignored);
    let candidates = drop_conflicts(subcommand, sub_matches, candidates, &mut ignored)?;
    let mut options = Vec::new();
    let mut positionals = Vec::new();
    let mut from_config = Vec::new();
    for candidate in &candidates {
        let tokens = candidate.tokens()?;
        if candidate.arg.is_positional() {
            positionals.extend(tokens);
        } else {
            options.extend(tokens);
        }
        from_config.push(candidate.value.clone());
    }
    let argv = normalize(command, argv, name, options, positionals);
    let matches = command.clone().try_get_matches_from(argv);
    let matches = match matches {
        Ok(matches) => matches,
        Err(error) if from_config.is_empty() => return Err(SettingsError::CommandLine(error)),
        Err(error) => return Err(SettingsError::Combined(error)),
    };
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(Settings {
        cli,
        subcommand: name.to_owned(),
        config_files,
        from_config,
        ignored,
        warnings: unknown_settings(command, config),
    })
}

/// A configuration value for an argument that the command line left unset.
struct Candidate<'a> {
    arg: &'a Arg,
    key: String,
    value: ConfigValue,
}

impl Candidate<'_> {
    /// Whether the value comes from the subcommand's own section rather than `[DEFAULT]`.
    fn is_specific(&self) -> bool {
        self.value.section != DEFAULT_SECTION
    }

    /// The command-line tokens that set this value, after checking it.
    fn tokens(&self) -> Result<Vec<OsString>, SettingsError> {
        let invalid = |problem: String| SettingsError::Value {
            value: Box::new(self.value.clone()),
            source: InvalidSetting(problem),
        };
        let text = self.value.value.trim();
        let flag = || OsString::from(format!("--{}", self.key));
        match self.arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                let on = sardine_config::parse_bool(text).map_err(|e| invalid(e.to_string()))?;
                let wanted = matches!(self.arg.get_action(), ArgAction::SetTrue);
                Ok(if on == wanted {
                    vec![flag()]
                } else {
                    Vec::new()
                })
            }
            ArgAction::Count => {
                let count: u8 = text
                    .parse()
                    .map_err(|_| invalid(format!("'{text}' is not a count (0, 1, 2, ...)")))?;
                Ok(vec![flag(); usize::from(count)])
            }
            ArgAction::Append => text
                .split_whitespace()
                .map(|value| self.value_token(value).map_err(invalid))
                .collect(),
            _ => Ok(vec![self.value_token(text).map_err(invalid)?]),
        }
    }

    /// One value as a token: `--key=VALUE` for options, `VALUE` for positionals. Paths get `~`
    /// expanded; the value is checked with the argument's value parser.
    fn value_token(&self, value: &str) -> Result<OsString, String> {
        let value = if is_path(self.arg) {
            sardine_config::expand_tilde(value).into_os_string()
        } else {
            OsString::from(value)
        };
        check_value(self.arg, &self.key, &value)?;
        if self.arg.is_positional() {
            return Ok(value);
        }
        let mut token = OsString::from(format!("--{}=", self.key));
        token.push(&value);
        Ok(token)
    }
}

/// Whether an argument names a file or directory.
fn is_path(arg: &Arg) -> bool {
    matches!(
        arg.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath | ValueHint::ExecutablePath
    )
}

/// Checks one value with the argument's value parser, in a command of its own, and returns
/// clap's explanation if it is invalid.
fn check_value(arg: &Arg, key: &str, value: &OsStr) -> Result<(), String> {
    let mut probe = Arg::new("value")
        .long(key.to_owned())
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone())
        .ignore_case(arg.is_ignore_case_set())
        .allow_hyphen_values(true);
    if let Some(names) = arg.get_value_names() {
        probe = probe.value_name(names[0].clone());
    }
    let mut token = OsString::from(format!("--{key}="));
    token.push(value);
    Command::new("sarde")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([token])
        .map(drop)
        .map_err(|error| clap_message(&error))
}

/// The essential part of a clap error message: without `error: ` and the usage tail.
fn clap_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let message = rendered.split("\n\n").next().unwrap_or(&rendered);
    message.trim().trim_start_matches("error: ").to_owned()
}

/// The configuration key of an argument: its long name, or the name of a single-valued
/// positional. Help, version and multi-valued positionals have none.
fn config_key(arg: &Arg) -> Option<String> {
    if matches!(
        arg.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    ) {
        return None;
    }
    if let Some(long) = arg.get_long() {
        return Some(normalize_key(long));
    }
    let single = arg
        .get_num_args()
        .is_none_or(|range: ValueRange| range.max_values() <= 1);
    (arg.is_positional() && single && !arg.is_last_set() && !arg.is_trailing_var_arg_set())
        .then(|| normalize_key(arg.get_id().as_str()))
}

/// Whether the command line (or an environment variable) set the argument.
fn given(matches: &ArgMatches, arg: &Arg) -> bool {
    matches!(
        matches.value_source(arg.get_id().as_str()),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The configuration values for the arguments of `subcommand` that the command line did not set.
fn candidates<'a>(
    subcommand: &'a Command,
    matches: &ArgMatches,
    config: &Config,
    ignored: &mut Vec<String>,
) -> Vec<Candidate<'a>> {
    let mut result: Vec<Candidate<'a>> = Vec::new();
    for arg in subcommand.get_arguments() {
        let Some(key) = config_key(arg) else { continue };
        let Some(entry) = config.entry(subcommand.get_name(), &key) else {
            continue;
        };
        let value = ConfigValue::new(&key, entry);
        if given(matches, arg) {
            ignored.push(format!(
                "ignoring {key} = {:?} from {}:{}: given on the command line",
                value.shown(),
                value.origin,
                value.line
            ));
        } else if value.value.trim().is_empty() {
            ignored.push(format!(
                "ignoring empty {key} from {}:{}",
                value.origin, value.line
            ));
        } else {
            result.push(Candidate { arg, key, value });
        }
    }
    positional_prefix_only(subcommand, matches, result, ignored)
}

/// Keeps configuration values for positionals only if every earlier positional has a value, so
/// that they land in the right place.
fn positional_prefix_only<'a>(
    subcommand: &Command,
    matches: &ArgMatches,
    candidates: Vec<Candidate<'a>>,
    ignored: &mut Vec<String>,
) -> Vec<Candidate<'a>> {
    let mut filled: Vec<&str> = subcommand
        .get_positionals()
        .filter(|arg| given(matches, arg))
        .map(|arg| arg.get_id().as_str())
        .collect();
    let mut result = Vec::new();
    for candidate in candidates {
        if candidate.arg.is_positional() {
            let earlier_missing = subcommand
                .get_positionals()
                .take_while(|arg| arg.get_id() != candidate.arg.get_id())
                .any(|arg| !filled.contains(&arg.get_id().as_str()));
            if earlier_missing {
                ignored.push(format!(
                    "ignoring {} from {}:{}: an earlier argument is missing",
                    candidate.key, candidate.value.origin, candidate.value.line
                ));
                continue;
            }
            filled.push(candidate.arg.get_id().as_str());
        }
        result.push(candidate);
    }
    result
}

/// Whether `subcommand` forbids using `a` and `b` together.
fn conflicting(subcommand: &Command, a: &Arg, b: &Arg) -> bool {
    let forbids = |x: &Arg, y: &Arg| {
        subcommand
            .get_arg_conflicts_with(x)
            .iter()
            .any(|c| c.get_id() == y.get_id())
    };
    forbids(a, b) || forbids(b, a)
}

/// Drops configuration values that conflict with the command line; of two conflicting
/// configuration values the one from the subcommand's section wins over `[DEFAULT]`.
fn drop_conflicts<'a>(
    subcommand: &'a Command,
    matches: &ArgMatches,
    candidates: Vec<Candidate<'a>>,
    ignored: &mut Vec<String>,
) -> Result<Vec<Candidate<'a>>, SettingsError> {
    let given_args: Vec<&Arg> = subcommand
        .get_arguments()
        .filter(|arg| given(matches, arg))
        .collect();
    let mut kept: Vec<Candidate<'a>> = Vec::new();
    for candidate in candidates {
        if let Some(arg) = given_args
            .iter()
            .find(|arg| conflicting(subcommand, candidate.arg, arg))
        {
            ignored.push(format!(
                "ignoring {} from {}:{}: the command line gives --{}",
                candidate.key,
                candidate.value.origin,
                candidate.value.line,
                arg.get_long().unwrap_or(arg.get_id().as_str())
            ));
            continue;
        }
        let Some(index) = kept
            .iter()
            .position(|k| conflicting(subcommand, candidate.arg, k.arg))
        else {
            kept.push(candidate);
            continue;
        };
        let other = &kept[index];
        if other.is_specific() == candidate.is_specific() {
            return Err(SettingsError::Conflict {
                first: Box::new(other.value.clone()),
                second: Box::new(candidate.value),
            });
        }
        let loser = if candidate.is_specific() {
            std::mem::replace(&mut kept[index], candidate)
        } else {
            candidate
        };
        ignored.push(format!(
            "ignoring {} from [DEFAULT] ({}:{}): conflicts with the subcommand's section",
            loser.key, loser.value.origin, loser.value.line
        ));
    }
    Ok(kept)
}

/// The command line rewritten for the final parse: the subcommand first, then the global
/// options given before it, then `options` from the configuration, then the rest, then
/// `positionals` from the configuration after a `--`.
///
/// Moving the global options behind the subcommand makes clap count `-v`/`-q` on both sides of
/// it together (`sarde -v list -v` is `-vv`) and check their conflicts with the subcommand's
/// options (`sarde -d DIR getconfig --raw` is an error), which it does not do across levels.
fn normalize(
    command: &Command,
    argv: &[OsString],
    subcommand: &str,
    options: Vec<OsString>,
    positionals: Vec<OsString>,
) -> Vec<OsString> {
    let mut result: Vec<OsString> = argv.iter().take(1).cloned().collect();
    let rest = match subcommand_position(command, argv, subcommand) {
        Some(position) => {
            result.push(argv[position - 1].clone());
            result.extend_from_slice(&argv[1..position - 1]);
            result.extend(options);
            &argv[position..]
        }
        None => {
            result.extend(options);
            argv.get(1..).unwrap_or_default()
        }
    };
    result.extend_from_slice(rest);
    if !positionals.is_empty() {
        if !rest.iter().any(|token| token == "--") {
            result.push(OsString::from("--"));
        }
        result.extend(positionals);
    }
    result
}

/// The index just after the subcommand name in `argv`, skipping the top-level options before
/// it (and their values).
fn subcommand_position(command: &Command, argv: &[OsString], subcommand: &str) -> Option<usize> {
    let mut index = 1;
    while let Some(token) = argv.get(index) {
        let text = token.to_string_lossy();
        if text == "--" {
            return None;
        }
        if let Some(long) = text.strip_prefix("--") {
            if !long.contains('=')
                && takes_value(command.get_arguments().find(|a| a.get_long() == Some(long)))
            {
                index += 1;
            }
        } else if let Some(shorts) = text.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (offset, short) in shorts.char_indices() {
                if takes_value(
                    command
                        .get_arguments()
                        .find(|a| a.get_short() == Some(short)),
                ) {
                    if offset + short.len_utf8() == shorts.len() {
                        index += 1;
                    }
                    break;
                }
            }
        } else if text == subcommand {
            return Some(index + 1);
        }
        index += 1;
    }
    None
}

fn takes_value(arg: Option<&Arg>) -> bool {
    arg.is_some_and(|arg| arg.get_action().takes_values())
}

/// Warnings about configuration sections and keys that no subcommand uses.
fn unknown_settings(command: &Command, config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut all_keys: Vec<String> = Vec::new();
    for section in config.sections() {
        let Some(subcommand) = command.find_subcommand(section) else {
            warnings.push(format!(
                "ignoring configuration section [{section}]: there is no subcommand '{section}'"
            ));
            continue;
        };
        let keys: Vec<String> = subcommand.get_arguments().filter_map(config_key).collect();
        for key in config.keys(section) {
            if !keys.iter().any(|k| k == key) {
                warnings.push(unknown_key_warning(
                    config,
                    section,
                    key,
                    &format!("`sarde {section} --help`"),
                ));
            }
        }
    }
    for subcommand in command.get_subcommands() {
        all_keys.extend(subcommand.get_arguments().filter_map(config_key));
    }
    for key in config.keys(DEFAULT_SECTION) {
        if !all_keys.iter().any(|k| k == key) {
            warnings.push(unknown_key_warning(
                config,
                DEFAULT_SECTION,
                key,
                "`sarde <subcommand> --help`",
            ));
        }
    }
    warnings
}

fn unknown_key_warning(config: &Config, section: &str, key: &str, help: &str) -> String {
    let place = config
        .entry(section, key)
        .map(|entry| format!(" ({}:{})", entry.origin(), entry.line()))
        .unwrap_or_default();
    format!("ignoring unknown setting '{key}' in [{section}]{place}; {help} lists the options")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command as Sub, DiskFormat, OutputFormat};

    fn resolve_with(args: &[&str], ini: &str) -> Result<Settings, SettingsError> {
        let config = match Config::parse_str(ini, "test.ini") {
            Ok(config) => config,
            Err(error) => panic!("{error}"),
        };
        let argv: Vec<OsString> = std::iter::once("sarde")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let command = command();
        let matches = command.clone().try_get_matches_from(&argv)?;
        resolve(&command, &argv, &matches, &config, Vec::new())
    }

    fn settings(args: &[&str], ini: &str) -> Settings {
        match resolve_with(args, ini) {
            Ok(settings) => settings,
            Err(error) => panic!("{error:?}"),
        }
    }

    const EXPORT_INI: &str = "\
[DEFAULT]
ocidir = /default-oci
chunksize = 1k
[export]
chunksize = 2M
legacy = yes
container = from-config
[fetch]
ocidir = /fetch-oci
source = registry.example/fetched
";

    #[test]
    fn subcommand_section_beats_default_which_beats_builtin() {
        let s = settings(&["export", "vm"], EXPORT_INI);
        assert_eq!(s.cli.global.ocidir, PathBuf::from("/default-oci"));
        let Sub::Export(export) = &s.cli.command else {
            panic!("not export");
        };
        assert_eq!(export.chunksize, Some(2 << 20));
        assert_eq!(export.disk_format(), DiskFormat::Legacy);
        assert_eq!(export.container(), "from-config");
        assert_eq!(s.from_config.len(), 4);
    }

    #[test]
    fn command_line_beats_configuration() {
        let s = settings(
            &["-d", "/cli", "export", "vm", "img", "--chunksize", "3k"],
            EXPORT_INI,
        );
        assert_eq!(s.cli.global.ocidir, PathBuf::from("/cli"));
        let Sub::Export(export) = &s.cli.command else {
            panic!("not export");
        };
        assert_eq!(export.chunksize, Some(3 << 10));
        assert_eq!(export.container(), "img");
        let s = settings(&["export", "vm", "--ocidir", "/cli2"], EXPORT_INI);
        assert_eq!(s.cli.global.ocidir, PathBuf::from("/cli2"));
    }

    #[test]
    fn sections_do_not_leak_into_other_subcommands_w1() {
        let s = settings(&["push", "img"], EXPORT_INI);
        assert_eq!(
            s.cli.global.ocidir,
            PathBuf::from("/default-oci"),
            "not [fetch]'s ocidir"
        );
        let s = settings(&["import", "img"], EXPORT_INI);
        let Sub::Import(import) = &s.cli.command else {
            panic!("not import");
        };
        assert_eq!(import.container, "img");
        let s = settings(&["fetch", "img"], EXPORT_INI);
        assert_eq!(s.cli.global.ocidir, PathBuf::from("/fetch-oci"));
    }

    #[test]
    fn booleans_are_parsed_raw_no_is_false() {
        let s = settings(&["import", "x"], "[import]\nraw = no\nprint_uuid = yes\n");
        let Sub::Import(import) = &s.cli.command else {
            panic!("not import");
        };
        assert!(!import.raw.raw);
        assert!(import.import.print_uuid);
        let error = resolve_with(&["import", "x"], "[import]\nraw = maybe\n");
        assert!(matches!(error, Err(SettingsError::Value { .. })));
    }

    #[test]
    fn no_auto_prune_on_the_command_line_beats_the_configuration() {
        let ini = "[DEFAULT]\nauto-prune = yes\nkeep-free = 5GiB\n";
        let Sub::Pull(pull) = settings(&["pull", "x"], ini).cli.command else {
            panic!("not pull")
        };
        assert_eq!(pull.fetch.auto_prune.keep_free_if_on(), Some(5 << 30));
        let s = settings(&["fetch", "x", "--no-auto-prune"], ini);
        let Sub::Fetch(fetch) = &s.cli.command else {
            panic!("not fetch")
        };
        assert_eq!(fetch.fetch.auto_prune.keep_free_if_on(), None);
        assert!(
            s.ignored
                .iter()
                .any(|note| note.contains("auto_prune") || note.contains("auto-prune")),
            "{:?}",
            s.ignored
        );
        let Sub::Import(import) = settings(&["import", "x"], "").cli.command else {
            panic!("not import")
        };
        assert_eq!(import.auto_prune.keep_free_if_on(), None, "off by default");
    }

    #[test]
    fn invalid_values_name_file_line_and_key() {
        let error =
            resolve_with(&["export", "vm"], "[export]\n\nchunksize = 12 parsecs\n").map(drop);
        let Err(error @ SettingsError::Value { .. }) = error else {
            panic!("expected a value error, got {error:?}");
        };
        assert_eq!(
            error.to_string(),
            "test.ini:3: invalid value \"12 parsecs\" for 'chunksize' in section [export]"
        );
        let cause = std::error::Error::source(&error)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(cause.contains("parsecs"), "{cause}");
        let error = resolve_with(&["list"], "[list]\nformat = xml\n");
        assert!(matches!(error, Err(SettingsError::Value { .. })));
    }

    #[test]
    fn enums_counts_and_lists() {
        let ini = "[DEFAULT]\nverbose = 2\n[list]\nformat = JSON\n[push]\ntarget = a\n  b c\n";
        let s = settings(&["list"], ini);
        assert_eq!(s.verbosity(), 2);
        let Sub::List(list) = &s.cli.command else {
            panic!("not list");
        };
        assert_eq!(list.format, OutputFormat::Json);
        let s = settings(&["-q", "push", "x"], ini);
        assert_eq!(
            s.verbosity(),
            1,
            "-q from the command line, verbose from the file"
        );
        let Sub::Push(push) = &s.cli.command else {
            panic!("not push");
        };
        assert_eq!(push.target, ["a", "b", "c"]);
    }

    #[test]
    fn command_line_conflicts_silence_configuration() {
        let s = settings(&["getconfig", "--raw", "dir"], "[DEFAULT]\nocidir = /oci\n");
        let Sub::Getconfig(getconfig) = &s.cli.command else {
            panic!("not getconfig");
        };
        assert!(getconfig.raw.raw);
        assert_eq!(s.ignored.len(), 1);
        let s = settings(
            &["export", "vm", "--disk-format", "chunked"],
            "[export]\nlegacy = yes\n",
        );
        let Sub::Export(export) = &s.cli.command else {
            panic!("not export");
        };
        assert_eq!(export.disk_format(), DiskFormat::Chunked);
    }

    #[test]
    fn section_beats_default_in_conflicts() {
        let s = settings(
            &["getconfig", "x"],
            "[DEFAULT]\nocidir = /oci\n[getconfig]\nraw = yes\n",
        );
        let Sub::Getconfig(getconfig) = &s.cli.command else {
            panic!("not getconfig");
        };
        assert!(getconfig.raw.raw);
        let error = resolve_with(
            &["getconfig", "x"],
            "[getconfig]\nocidir = /oci\nraw = yes\n",
        );
        assert!(matches!(error, Err(SettingsError::Conflict { .. })));
    }

    #[test]
    fn paths_from_configuration_expand_tilde() {
        let s = settings(&["list"], "[DEFAULT]\nocidir = ~/oci\n");
        assert_eq!(s.cli.global.ocidir, sardine_config::expand_tilde("~/oci"));
    }

    #[test]
    fn empty_values_mean_unset() {
        let s = settings(
            &["export", "vm"],
            "[DEFAULT]\nchunksize = 1G\n[export]\nchunksize =\n",
        );
        let Sub::Export(export) = &s.cli.command else {
            panic!("not export");
        };
        assert_eq!(export.chunksize, None);
    }

    #[test]
    fn values_starting_with_a_dash_are_values() {
        let s = settings(&["export", "vm"], "[export]\ncontainer = -odd\n");
        let Sub::Export(export) = &s.cli.command else {
            panic!("not export");
        };
        assert_eq!(export.container(), "-odd");
    }

    #[test]
    fn options_from_configuration_go_before_trailing_arguments() {
        let s = settings(&["ssh", "vm", "--", "ls", "-l"], "[ssh]\nuser = root\n");
        let Sub::Ssh(ssh) = &s.cli.command else {
            panic!("not ssh");
        };
        assert_eq!(ssh.user.as_deref(), Some("root"));
        assert_eq!(ssh.command, ["ls", "-l"]);
    }

    #[test]
    fn unknown_sections_and_keys_are_warned_about() {
        let s = settings(
            &["list"],
            "[DEFAULT]\nocidir = /o\nchunksize = 1\nbogus = 1\n[exprot]\na = 1\n[list]\nvmdir = /v\n",
        );
        assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
        assert!(s.warnings.iter().any(|w| w.contains("[exprot]")));
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("'bogus'") && w.contains("test.ini:4"))
        );
        assert!(s.warnings.iter().any(|w| w.contains("'vmdir' in [list]")));
    }

    #[test]
    fn verbosity_counts_on_both_sides_of_the_subcommand() {
        let s = settings(&["-v", "list", "-vq"], "");
        assert_eq!(s.cli.global.verbose, 2);
        assert_eq!(s.cli.global.quiet, 1);
        let s = settings(&["-d", "list", "--connect", "c", "list", "-v"], "");
        assert_eq!(s.cli.global.ocidir, PathBuf::from("list"));
        assert_eq!(s.cli.global.connect.as_deref(), Some("c"));
    }

    #[test]
    fn global_options_before_the_subcommand_are_checked_for_conflicts() {
        let error = resolve_with(&["-d", "/o", "getconfig", "--raw", "x"], "");
        assert!(matches!(error, Err(SettingsError::CommandLine(_))));
        let error = resolve_with(&["import", "--raw", "-d", "/o", "x"], "");
        assert!(matches!(error, Err(SettingsError::CommandLine(_))));
    }

    #[test]
    fn subcommand_position_skips_global_option_values() {
        let command = command();
        let argv: Vec<OsString> = [
            "sarde",
            "-d",
            "list",
            "--connect",
            "x",
            "-vd",
            "y",
            "--ocidir=z",
            "list",
            "a",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        assert_eq!(subcommand_position(&command, &argv, "list"), Some(9));
    }
}
