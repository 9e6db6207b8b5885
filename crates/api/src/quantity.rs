//! Resource quantities (`500m`, `1.5Gi`, `2e3`): parsed exactly and rounded up the way
//! upstream's `resource.Quantity` rounds `Value()` and `MilliValue()`.

use thiserror::Error;

/// A quantity string that is not a Kubernetes quantity.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}")]
pub struct InvalidQuantity(pub String);

/// A parsed quantity: `mantissa * 10^exp10 * 2^exp2`, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

fn parse(s: &str) -> Result<Parsed, InvalidQuantity> {
    let bad = || InvalidQuantity(s.to_owned());
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(bad());
    }
    let mut mantissa: u128 = 0;
    let mut exp10: i32 = 0;
    let mut after_point = false;
    for c in number.chars() {
        if c == '.' {
            after_point = true;
            continue;
        }
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(c as u8 - b'0')))
            .ok_or_else(bad)?;
        if after_point {
            exp10 -= 1;
        }
    }
    let (add10, exp2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(bad)?;
            let digits = exp.trim_start_matches(['+', '-']);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            (exp.parse::<i32>().map_err(|_| bad())?, 0)
        }
    };
    Ok(Parsed {
        negative,
        mantissa,
        exp10: exp10 + add10,
        exp2,
    })
}

/// `value * 10^scale`, rounded up (away from zero for positives), saturating.
fn scaled(p: Parsed, scale: i32) -> i64 {
    let mut num = p.mantissa;
    let mut den: u128 = 1;
    let e = p.exp10 + scale;
    for _ in 0..e.max(0) {
        num = num.saturating_mul(10);
    }
    for _ in 0..(-e).clamp(0, 38) {
        den *= 10;
    }
    num = num.saturating_mul(1u128 << p.exp2.min(100));
    let value = num.div_ceil(den).min(i64::MAX as u128) as i64;
    if p.negative {
        // Upstream rounds toward +infinity: -1.5 -> -1.
        -((num / den).min(i64::MAX as u128) as i64)
    } else {
        value
    }
}

/// The quantity in whole units, rounded up (`1.5` → 2, `100Mi` → 104857600).
pub fn value(s: &str) -> Result<i64, InvalidQuantity> {
    parse(s).map(|p| scaled(p, 0))
}

/// The quantity in thousandths, rounded up (`500m` → 500, `2` → 2000, `0.1` → 100).
pub fn milli_value(s: &str) -> Result<i64, InvalidQuantity> {
    parse(s).map(|p| scaled(p, 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_milli_values() {
        let cases: &[(&str, i64, i64)] = &[
            ("0", 0, 0),
            ("1", 1, 1000),
            ("500m", 1, 500),
            ("100m", 1, 100),
            ("1.5", 2, 1500),
            ("0.1", 1, 100),
            ("250u", 1, 1),
            ("1k", 1000, 1_000_000),
            ("1Ki", 1024, 1_024_000),
            ("100Mi", 104_857_600, 104_857_600_000),
            ("1Gi", 1_073_741_824, 1_073_741_824_000),
            ("1.5Gi", 1_610_612_736, 1_610_612_736_000),
            ("128974848", 128_974_848, 128_974_848_000),
            ("129e6", 129_000_000, 129_000_000_000),
            ("123M", 123_000_000, 123_000_000_000),
            ("2G", 2_000_000_000, 2_000_000_000_000),
            ("6.25", 7, 6250),
            ("7153864704", 7_153_864_704, 7_153_864_704_000),
            ("1E", 1_000_000_000_000_000_000, i64::MAX),
            ("+3", 3, 3000),
            ("1e-3", 1, 1),
        ];
        for (s, v, m) in cases {
            assert_eq!(value(s), Ok(*v), "value({s})");
            assert_eq!(milli_value(s), Ok(*m), "milli_value({s})");
        }
    }

    #[test]
    fn rejects_what_is_not_a_quantity() {
        for s in ["", "m", "1.2.3", "1x", "1Kii", "abc", "1e", "--1", "."] {
            assert!(value(s).is_err(), "{s:?} should be rejected");
        }
    }
}
