//! Sizes as people write them in files and flags: `512`, `64K`, `256KiB`, `4MiB`, `2 GB`.

use crate::truncated;

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error(
        "invalid size `{}`: expected a number with an optional unit (B, K/KiB, M/MiB, G/GiB, \
         T/TiB), e.g. 512MiB",
        truncated(.0)
    )]
    Invalid(String),
    #[error("size `{}` is too large", truncated(.0))]
    TooLarge(String),
}

/// Parses a size in bytes: a whole number, then optionally a unit in powers of 1024 (`B`;
/// `K`, `KB`, `KiB`; `M`, ...; `G`; `T`; any case), with or without a space between.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (num, unit) = t.split_at(digits);
    let invalid = || SizeError::Invalid(text.to_string());
    let n: u64 = num.parse().map_err(|_| invalid())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(invalid()),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::TooLarge(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_every_spelling() {
        for (text, bytes) in [
            ("512", 512),
            ("0", 0),
            ("64K", 64 << 10),
            ("64k", 64 << 10),
            ("256KiB", 256 << 10),
            ("4MiB", 4 << 20),
            ("1M", 1 << 20),
            ("2 GB", 2 << 30),
            ("2GiB", 2 << 30),
            ("1T", 1 << 40),
            (" 7B ", 7),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn what_is_refused_and_why() {
        assert_eq!(
            parse_size("lots").unwrap_err().to_string(),
            "invalid size `lots`: expected a number with an optional unit (B, K/KiB, M/MiB, \
             G/GiB, T/TiB), e.g. 512MiB"
        );
        for bad in ["MiB", "1XB", "1.5M", "-1", ""] {
            assert_eq!(
                parse_size(bad),
                Err(SizeError::Invalid(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            parse_size("99999999999T"),
            Err(SizeError::TooLarge("99999999999T".into()))
        );
    }
}
