//! Errors of this crate: reading and parsing configuration files, and converting values.

use std::num::{ParseFloatError, ParseIntError};
use std::path::PathBuf;

/// Something went wrong while reading a configuration file or interpreting one of its values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file exists but could not be read.
    #[error("cannot read configuration file '{}'", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A line of a configuration file is not valid INI syntax.
    #[error("{origin}:{line}: {problem}")]
    Syntax {
        /// The file name (or another description of where the text came from).
        origin: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line, and how to fix it.
        problem: SyntaxProblem,
    },
    /// A value in a configuration file cannot be converted to the type its key needs.
    #[error("{origin}:{line}: invalid value for '{key}' in section [{section}]")]
    InvalidValue {
        /// The file the value came from.
        origin: String,
        /// The 1-based line number of the key.
        line: usize,
        /// The section the value was looked up in (the value itself may come from `[DEFAULT]`).
        section: String,
        /// The (normalised) key.
        key: String,
        /// What is wrong with the value.
        #[source]
        source: Box<ValueError>,
    },
    /// A string (from the command line or elsewhere) is not a valid value.
    #[error(transparent)]
    Value(#[from] ValueError),
}

/// What is wrong with a line of an INI file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxProblem {
    /// A `key = value` line appears before the first `[section]` header.
    #[error(
        "'{0}' appears before the first [section] header; put it under [DEFAULT] or a [command] section"
    )]
    MissingSectionHeader(String),
    /// A line is neither a header, nor a comment, nor `key = value`.
    #[error(
        "cannot parse '{0}': expected '[section]', 'key = value', 'key: value' or a '#'/';' comment"
    )]
    Unparsable(String),
    /// A `= value` line without a key.
    #[error("'{0}' has no key before the '=' or ':'")]
    EmptyKey(String),
    /// A `[]` header.
    #[error("empty section name '[]'")]
    EmptySection,
    /// The same section appears twice in one file.
    #[error("section [{section}] already appeared on line {first_line}; merge the two sections")]
    DuplicateSection {
        /// The section name.
        section: String,
        /// Where it appeared first.
        first_line: usize,
    },
    /// The same key appears twice in one section of one file (`print-uuid` and `print_uuid` are the same key).
    #[error(
        "key '{key}' in section [{section}] already appeared on line {first_line}; remove one of them"
    )]
    DuplicateKey {
        /// The section name.
        section: String,
        /// The normalised key.
        key: String,
        /// Where it appeared first.
        first_line: usize,
    },
}

/// A value that cannot be converted to the type it should have.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// An empty size.
    #[error("empty size; write a number with an optional unit, like '512M' or '2 GiB'")]
    EmptySize,
    /// A size whose number part is not a number.
    #[error(
        "invalid number in size '{0}'; write a number with an optional unit, like '512M' or '1.5 GiB'"
    )]
    SizeNumber(String),
    /// A size with a minus sign.
    #[error("negative size '{0}'; sizes must be zero or more")]
    NegativeSize(String),
    /// A size with an unknown unit.
    #[error(
        "unknown unit '{unit}' in size '{input}'; use B, K/KiB, M/MiB, G/GiB, T/TiB (powers of 1024) or kB, MB, GB, TB (powers of 1000)"
    )]
    SizeUnit {
        /// The whole size string.
        input: String,
        /// The part that is not a known unit.
        unit: String,
    },
    /// A size that does not fit in 64 bits.
    #[error("size '{0}' is too large (more than 16 EiB)")]
    SizeOverflow(String),
    /// Not a boolean.
    #[error("'{0}' is not a boolean; use yes/no, true/false, on/off or 1/0")]
    Bool(String),
    /// Not a non-negative integer.
    #[error("'{input}' is not a non-negative integer")]
    Integer {
        /// The text.
        input: String,
        /// Why it is not one.
        #[source]
        source: ParseIntError,
    },
    /// Not a number.
    #[error("'{input}' is not a number")]
    Float {
        /// The text.
        input: String,
        /// Why it is not one.
        #[source]
        source: ParseFloatError,
    },
    /// Not a duration.
    #[error(
        "'{0}' is not a duration; write seconds ('30'), or a number with a unit: '30s', '5m', '1h', '2d', '1w'"
    )]
    Duration(String),
}
