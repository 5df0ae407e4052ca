//! Numbers that a `serde_json::Value` keeps exactly, and those it would
//! change: an integer beyond 64 bits becomes the nearest `f64`
//! (`123456789012345678901234567890` -> `1.2345678901234568e+29`), and a
//! decimal with more precision than an `f64` holds loses digits (or, below
//! about 1e-308, becomes 0). A store refuses such numbers rather than
//! change them silently.

/// The first number in the JSON text `text` (outside strings) that would
/// not be kept exactly, with what it would become; `None` if every number
/// is kept. `text` is assumed to be valid JSON.
pub(crate) fn first_inexact(text: &[u8]) -> Option<(String, String)> {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < text.len()
                    && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let literal = std::str::from_utf8(&text[start..i]).unwrap_or_default();
                if let Some(kept) = changed(literal) {
                    return Some((literal.to_string(), kept));
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// What `serde_json` would keep of the number `literal`, if that is not
/// the same number.
fn changed(literal: &str) -> Option<String> {
    let integer = !literal.contains(['.', 'e', 'E']);
    if integer {
        // A `Value` reads `-0` as the float -0.0, and an integer beyond 64
        // bits as a float even when the float is exact (`2e20`): a reader
        // would get a float where an integer was written.
        if literal == "-0" {
            return Some("-0.0".into());
        }
        if literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok() {
            return None;
        }
        let float: f64 = literal.parse().ok()?;
        return Some(
            serde_json::Number::from_f64(float).map_or_else(|| "a float".into(), |n| n.to_string()),
        );
    }
    let float: f64 = literal.parse().ok()?;
    let kept = serde_json::Number::from_f64(float)?.to_string();
    (decimal(literal) != decimal(&kept)).then_some(kept)
}

/// The exact value of a decimal literal as (negative, digits without
/// leading or trailing zeros, power of ten); zero is `(false, "", 0)`.
fn decimal(literal: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let mut power = exponent.checked_sub(i64::try_from(frac.len()).ok()?)?;
    let trimmed = all.trim_start_matches('0');
    let digits = trimmed.trim_end_matches('0');
    power = power.checked_add(i64::try_from(trimmed.len() - digits.len()).ok()?)?;
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((negative, digits.to_string(), power))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_kept_exactly_pass() {
        for text in [
            "0",
            "-0.0",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "0.1",
            "1.50",
            "1e3",
            "2.5E-3",
            "0.30000000000000004",
            "1.7976931348623157e308",
            r#"{"a":[1,2.5,"12345678901234567890123"]}"#,
        ] {
            assert_eq!(first_inexact(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn numbers_that_would_change_are_found() {
        let cases = [
            ("123456789012345678901234567890", "1.2345678901234568e+29"),
            ("18446744073709551616", "1.8446744073709552e+19"),
            ("-9223372036854775809", "-9.223372036854776e+18"),
            ("0.3000000000000000444", "0.30000000000000004"),
            ("1e-400", "0.0"),
            ("200000000000000000000", "2e+20"),
            ("-0", "-0.0"),
        ];
        for (text, kept) in cases {
            let wrapped = format!(r#"{{"s":"1e-400","n":[{text}]}}"#);
            assert_eq!(
                first_inexact(wrapped.as_bytes()),
                Some((text.to_string(), kept.to_string())),
                "{text}"
            );
        }
    }
}
