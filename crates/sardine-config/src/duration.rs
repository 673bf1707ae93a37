//! Durations such as `30`, `30s`, `5m`, `1.5h` or `2 days`.

use std::time::Duration;

use crate::error::ValueError;

/// Units and their length in seconds; a number without a unit is seconds.
const UNITS: [(&[&str], u64); 5] = [
    (&["s", "sec", "secs", "second", "seconds"], 1),
    (&["m", "min", "mins", "minute", "minutes"], 60),
    (&["h", "hr", "hrs", "hour", "hours"], 60 * 60),
    (&["d", "day", "days"], 24 * 60 * 60),
    (&["w", "week", "weeks"], 7 * 24 * 60 * 60),
];

/// Parses a duration: a non-negative number, optionally fractional, with an optional unit
/// (`s`, `m`, `h`, `d`, `w` or their words, case-insensitive; whitespace ignored).
///
/// `"30"` and `"30s"` are 30 seconds, `"5m"` 300 seconds, `"1.5h"` 5400 seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let compact: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let split = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(compact.len());
    let (number, unit) = compact.split_at(split);
    let invalid = || ValueError::Duration(s.to_owned());
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(invalid());
    }
    let seconds_per_unit = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(names, _)| names.contains(&unit))
            .map(|(_, seconds)| *seconds)
            .ok_or_else(invalid)?
    };
    let amount: f64 = number.parse().map_err(|_| invalid())?;
    // u64 to f64 is exact for all unit lengths above.
    #[allow(clippy::cast_precision_loss)]
    let seconds = amount * seconds_per_unit as f64;
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_seconds() {
        assert_eq!(parse_duration("30").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("0").ok(), Some(Duration::ZERO));
        assert_eq!(parse_duration("0.5").ok(), Some(Duration::from_millis(500)));
    }

    #[test]
    fn units_are_understood() {
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m").ok(), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h").ok(), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_duration("1.5 H").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("2 days").ok(),
            Some(Duration::from_secs(2 * 86_400))
        );
        assert_eq!(
            parse_duration("1w").ok(),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            parse_duration(" 10 minutes ").ok(),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn invalid_durations_are_errors() {
        for input in ["", "s", "-5s", "5x", "1.2.3", ".", "5 fortnights", "1e400"] {
            assert!(
                matches!(parse_duration(input), Err(ValueError::Duration(_))),
                "{input}"
            );
        }
    }
}
