//! Durations written as text: `"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"1m30s"`.

use std::time::Duration;

use crate::truncated;

/// Why a text is not a duration. Displayed as a message suitable after a location; the text
/// is shown cut when long ([`truncated`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "invalid duration `{}`: expected a whole number followed by a unit \
         (`ms`, `s`, `m` or `h`), e.g. \"500ms\", \"30s\" or \"1m30s\"",
        truncated(.0)
    )]
    Invalid(String),
    #[error("duration `{}` is too large", truncated(.0))]
    TooLarge(String),
}

/// Parses a duration: one or more `<integer><unit>` groups, optionally separated by spaces,
/// added together. Units: `ms`, `s`, `m`, `h`. Examples: `"500ms"`, `"30s"`, `"1m 30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError::Invalid(text.to_string());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            _ => return Err(bad()),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| DurationError::TooLarge(text.to_string()))?;
    }
    Ok(total)
}

/// A hint for TOML's `invalid type: integer `10`, expected a string` at `offset` of `text`
/// when the key there is one of `keys` (the file's duration keys): `; a duration is a string
/// with its unit: timeout = "10s"`.
pub fn duration_hint(text: &str, offset: usize, message: &str, keys: &[&str]) -> Option<String> {
    let number = message
        .strip_prefix("invalid type: integer `")
        .or_else(|| message.strip_prefix("invalid type: floating point `"))?;
    let number = number.split('`').next()?;
    // The key this value is given to: the name just before the last `=` before it.
    let before = text.get(..offset)?;
    let key = before.rsplit_once('=')?.0.trim_end();
    let key = &key[key
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(0, |i| i + 1)..];
    if !keys.contains(&key) {
        return None;
    }
    let written = match number.parse::<u64>() {
        Ok(n) => format!("{n}s"),
        Err(_) => {
            let secs: f64 = number.parse().ok()?;
            if !(secs.is_finite() && secs >= 0.0) {
                return None;
            }
            format!("{}ms", (secs * 1000.0).round() as u64)
        }
    };
    Some(format!(
        "; a duration is a string with its unit: `{key} = \"{written}\"`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration(" 1m 30s 5ms "),
            Ok(Duration::from_millis(90_005))
        );
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn invalid() {
        for bad in ["", "30", "s", "1.5s", "10 s", "3d", "-1s", "1sec", "ms5"] {
            assert_eq!(
                parse_duration(bad),
                Err(DurationError::Invalid(bad.to_string()))
            );
        }
        assert_eq!(
            parse_duration("1x").unwrap_err().to_string(),
            "invalid duration `1x`: expected a whole number followed by a unit (`ms`, `s`, \
             `m` or `h`), e.g. \"500ms\", \"30s\" or \"1m30s\""
        );
        // Too many digits for a u64.
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Invalid("99999999999999999999h".into()))
        );
        assert_eq!(
            parse_duration("18446744073709551615h")
                .unwrap_err()
                .to_string(),
            "duration `18446744073709551615h` is too large"
        );
    }

    #[test]
    fn long_text_is_cut_in_the_message() {
        let text = "9".repeat(100_000) + "q";
        let message = parse_duration(&text).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("invalid duration `{}…`: ", "9".repeat(64))),
            "{message}"
        );
        assert!(message.len() < 300, "{}", message.len());
    }

    const KEYS: &[&str] = &["timeout", "ready_timeout"];

    #[test]
    fn numbers_given_to_duration_keys_get_the_string_to_write() {
        let t = "name = \"x\"\ntimeout = 10\n";
        let at = t.find("10").unwrap();
        assert_eq!(
            duration_hint(t, at, "invalid type: integer `10`, expected a string", KEYS),
            Some("; a duration is a string with its unit: `timeout = \"10s\"`".into())
        );
        let t = "ready = { tcp = \"x\" }\nready_timeout = 1.5\n";
        let at = t.find("1.5").unwrap();
        assert_eq!(
            duration_hint(
                t,
                at,
                "invalid type: floating point `1.5`, expected a string",
                KEYS
            ),
            Some("; a duration is a string with its unit: `ready_timeout = \"1500ms\"`".into())
        );
        // Inline tables too; other keys get nothing.
        let t = "[roles]\nleader = { command = [\"x\"], timeout = 2 }\n";
        let at = t.rfind('2').unwrap();
        assert!(
            duration_hint(t, at, "invalid type: integer `2`, expected a string", KEYS)
                .unwrap()
                .ends_with("`timeout = \"2s\"`")
        );
        let t = "name = 3\n";
        assert_eq!(
            duration_hint(t, 7, "invalid type: integer `3`, expected a string", KEYS),
            None
        );
    }
}
