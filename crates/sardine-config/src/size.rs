//! Sizes such as `512M`, `1.5 GiB` or `4096`: parsing into bytes and formatting for humans.
//!
//! The accepted units are those of sardinecake 0.4.2 (`k m g t p e z y`, `kib mib …`,
//! `kibibyte …` in powers of 1024; `kb mb …`, `kilobyte …` in powers of 1000), matched
//! case-insensitively, plus `b`/`byte`/`bytes` and plural unit words. Unlike 0.4.2 (weakness W9)
//! the result is always a whole number of bytes: a size without a unit is bytes, and a fraction
//! is rounded down to a whole byte.

use crate::error::ValueError;

/// Binary prefixes, in order of increasing power of 1024 (`k` is 1024¹).
const BINARY: [(&str, &str, &str); 8] = [
    ("k", "kib", "kibibyte"),
    ("m", "mib", "mebibyte"),
    ("g", "gib", "gibibyte"),
    ("t", "tib", "tebibyte"),
    ("p", "pib", "pebibyte"),
    ("e", "eib", "exbibyte"),
    ("z", "zib", "zebibyte"),
    ("y", "yib", "yobibyte"),
];

/// Decimal prefixes, in order of increasing power of 1000 (`kb` is 1000¹).
const DECIMAL: [(&str, &str); 8] = [
    ("kb", "kilobyte"),
    ("mb", "megabyte"),
    ("gb", "gigabyte"),
    ("tb", "terabyte"),
    ("pb", "petabyte"),
    ("eb", "exabyte"),
    ("zb", "zettabyte"),
    ("yb", "yottabyte"),
];

/// Digits after the decimal point that are taken into account (more cannot change a u64 result
/// by a whole byte for any unit up to yobibytes, and keep the arithmetic within u128).
const MAX_FRACTION_DIGITS: usize = 12;

/// Parses a size into a number of bytes.
///
/// Whitespace anywhere is ignored and units are case-insensitive: `"256"` is 256 bytes,
/// `"1.5 GiB"` is 1610612736, `"2kb"` is 2000. Errors name the problem: an empty string, a bad
/// number, a negative number, an unknown unit, or a result above `u64::MAX`.
pub fn parse_size(s: &str) -> Result<u64, ValueError> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(ValueError::EmptySize);
    }
    if compact.starts_with('-') {
        return Err(ValueError::NegativeSize(s.to_owned()));
    }
    let split = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(compact.len());
    let (number, unit) = compact.split_at(split);
    let (mantissa, scale) = parse_decimal(number, s)?;
    let multiplier =
        unit_multiplier(&unit.to_ascii_lowercase()).ok_or_else(|| ValueError::SizeUnit {
            input: s.to_owned(),
            unit: unit.to_owned(),
        })?;
    let bytes = mantissa
        .checked_mul(multiplier)
        .map(|scaled| scaled / 10u128.pow(scale))
        .ok_or_else(|| ValueError::SizeOverflow(s.to_owned()))?;
    u64::try_from(bytes).map_err(|_| ValueError::SizeOverflow(s.to_owned()))
}

/// Splits a decimal number such as `1.25` into mantissa and scale (`125`, `2`); `input` is the
/// whole size string, for error messages.
///
/// The text must be digits with at most one `.` and at least one digit.
fn parse_decimal(number: &str, input: &str) -> Result<(u128, u32), ValueError> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return Err(ValueError::SizeNumber(input.to_owned()));
    }
    let fraction = fraction.trim_end_matches('0');
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    let digits = format!("0{whole}{fraction}");
    // Only digits are left, so the only possible failure is a number beyond u128.
    let mantissa = digits
        .parse::<u128>()
        .map_err(|_| ValueError::SizeOverflow(input.to_owned()))?;
    let scale =
        u32::try_from(fraction.len()).map_err(|_| ValueError::SizeOverflow(input.to_owned()))?;
    Ok((mantissa, scale))
}

/// The number of bytes one `unit` (already lowercased) stands for.
fn unit_multiplier(unit: &str) -> Option<u128> {
    if matches!(unit, "" | "b" | "byte" | "bytes") {
        return Some(1);
    }
    let singular = unit
        .strip_suffix('s')
        .filter(|s| s.ends_with("byte"))
        .unwrap_or(unit);
    let power = |index: usize| u32::try_from(index + 1).ok();
    if let Some(index) = BINARY
        .iter()
        .position(|(short, iec, word)| [*short, *iec, *word].contains(&singular))
    {
        return Some(1024u128.pow(power(index)?));
    }
    let index = DECIMAL
        .iter()
        .position(|(short, word)| [*short, *word].contains(&singular))?;
    Some(1000u128.pow(power(index)?))
}

/// Formats a number of bytes for humans in powers of 1024 with at most one decimal:
/// `512 B`, `1.5 GiB`, `2 TiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    // Tenths of the current unit, rounded to nearest; computed in integers to stay exact.
    let mut tenths = tenths_of(bytes, 1024);
    while tenths >= 10_240 && unit + 1 < UNITS.len() {
        unit += 1;
        tenths = tenths_of(
            bytes,
            1024u128.pow(u32::try_from(unit + 1).unwrap_or(u32::MAX)),
        );
    }
    if tenths.is_multiple_of(10) {
        format!("{} {}", tenths / 10, UNITS[unit])
    } else {
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
}

/// `bytes / divisor` in tenths, rounded half up.
fn tenths_of(bytes: u64, divisor: u128) -> u128 {
    (u128::from(bytes) * 10 + divisor / 2) / divisor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_units_are_accepted() {
        let table: &[(&str, u64)] = &[
            ("1k", 1 << 10),
            ("1K", 1 << 10),
            ("2m", 2 << 20),
            ("3g", 3 << 30),
            ("1t", 1 << 40),
            ("1p", 1 << 50),
            ("1e", 1 << 60),
            ("1kib", 1 << 10),
            ("1MiB", 1 << 20),
            ("1 GiB", 1 << 30),
            ("1TIB", 1 << 40),
            ("1pib", 1 << 50),
            ("1eib", 1 << 60),
            ("1kibibyte", 1 << 10),
            ("1mebibyte", 1 << 20),
            ("1gibibyte", 1 << 30),
            ("1tebibyte", 1 << 40),
            ("1pebibyte", 1 << 50),
            ("1exbibyte", 1 << 60),
            ("1kb", 1_000),
            ("1MB", 1_000_000),
            ("1gb", 1_000_000_000),
            ("1tb", 1_000_000_000_000),
            ("1pb", 1_000_000_000_000_000),
            ("1eb", 1_000_000_000_000_000_000),
            ("1kilobyte", 1_000),
            ("1megabyte", 1_000_000),
            ("1gigabyte", 1_000_000_000),
            ("1terabyte", 1_000_000_000_000),
            ("1petabyte", 1_000_000_000_000_000),
            ("1exabyte", 1_000_000_000_000_000_000),
        ];
        for (input, expected) in table {
            assert_eq!(parse_size(input).ok(), Some(*expected), "{input}");
        }
    }

    #[test]
    fn sizes_are_always_whole_bytes_w9() {
        assert_eq!(parse_size("256").ok(), Some(256));
        assert_eq!(parse_size("1.5 GiB").ok(), Some(1_610_612_736));
        assert_eq!(parse_size("0.5k").ok(), Some(512));
        assert_eq!(
            parse_size("0.1k").ok(),
            Some(102),
            "fractions of a byte are rounded down"
        );
        assert_eq!(parse_size(".5 MiB").ok(), Some(512 * 1024));
        assert_eq!(parse_size("5.").ok(), Some(5));
        assert_eq!(parse_size("1.000000000000000000001g").ok(), Some(1 << 30));
    }

    #[test]
    fn bytes_units_and_plurals_and_whitespace_are_accepted() {
        assert_eq!(parse_size("100b").ok(), Some(100));
        assert_eq!(parse_size("100 Bytes").ok(), Some(100));
        assert_eq!(parse_size("1 byte").ok(), Some(1));
        assert_eq!(parse_size("2 gibibytes").ok(), Some(2 << 30));
        assert_eq!(parse_size("2 kilobytes").ok(), Some(2000));
        assert_eq!(parse_size(" 1 2 m ").ok(), Some(12 << 20));
        assert_eq!(parse_size("0").ok(), Some(0));
        assert_eq!(parse_size("18446744073709551615").ok(), Some(u64::MAX));
    }

    #[test]
    fn invalid_sizes_are_errors() {
        assert!(matches!(parse_size(""), Err(ValueError::EmptySize)));
        assert!(matches!(parse_size("   "), Err(ValueError::EmptySize)));
        assert!(matches!(
            parse_size("-1k"),
            Err(ValueError::NegativeSize(_))
        ));
        assert!(matches!(parse_size("k"), Err(ValueError::SizeNumber(_))));
        assert!(matches!(parse_size("."), Err(ValueError::SizeNumber(_))));
        assert!(matches!(
            parse_size("1.2.3m"),
            Err(ValueError::SizeNumber(_))
        ));
        assert!(matches!(parse_size("+1"), Err(ValueError::SizeNumber(_))));
        assert!(matches!(
            parse_size("1e3"),
            Err(ValueError::SizeUnit { .. })
        ));
        assert!(matches!(
            parse_size("12 parsecs"),
            Err(ValueError::SizeUnit { .. })
        ));
        assert!(matches!(
            parse_size("1ks"),
            Err(ValueError::SizeUnit { .. })
        ));
        assert!(matches!(
            parse_size("16e"),
            Err(ValueError::SizeOverflow(_))
        ));
        assert!(matches!(
            parse_size("1 ZiB"),
            Err(ValueError::SizeOverflow(_))
        ));
        assert!(matches!(
            parse_size("1 yottabyte"),
            Err(ValueError::SizeOverflow(_))
        ));
        assert!(matches!(
            parse_size("18446744073709551616"),
            Err(ValueError::SizeOverflow(_))
        ));
        assert!(matches!(
            parse_size("99999999999999999999999999999999999999999"),
            Err(ValueError::SizeOverflow(_))
        ));
    }

    #[test]
    fn unit_error_names_the_unit() {
        let message = parse_size("3 furlongs").map_err(|e| e.to_string());
        assert!(message.is_err_and(|m| m.contains("'furlongs'") && m.contains("'3 furlongs'")));
    }

    #[test]
    fn format_size_is_readable() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1024), "1 KiB");
        assert_eq!(format_size(1_610_612_736), "1.5 GiB");
        assert_eq!(format_size(2 << 40), "2 TiB");
        assert_eq!(format_size(1024 * 1024 - 1), "1 MiB");
        assert_eq!(format_size(u64::MAX), "16 EiB");
    }

    #[test]
    fn format_and_parse_round_trip_for_exact_values() {
        for bytes in [1u64, 1024, 1536, 1 << 30, 3 << 40] {
            assert_eq!(parse_size(&format_size(bytes)).ok(), Some(bytes));
        }
    }
}
