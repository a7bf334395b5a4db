//! Money as integer nano-USD (1e-9 USD). Every amount the host stores, sums or compares is an
//! `i64` of nano-USD, so a sum of many small charges is exact and a limit check never rounds
//! the wrong way; floats appear only at the edges (a template's `cost-usd`, a price table, an
//! operator's `--usd 5`), converted once by [`from_usd`], and amounts are shown as exact
//! decimal strings by [`usd`].

/// Nano-USD in one USD.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// What "no limit" is in a headroom computation: far above any real amount, far below
/// `i64::MAX` so sums of it cannot overflow in SQL.
pub const UNLIMITED: i64 = 4_000_000_000_000_000_000;

/// A USD float from the edge (a template, a price, an operator) as nano-USD, rounded to the
/// nearest nano; `None` for a negative, non-finite or absurdly large amount.
pub fn from_usd(usd: f64) -> Option<i64> {
    let nanos = (usd * 1e9).round();
    (usd.is_finite() && usd >= 0.0 && nanos < UNLIMITED as f64).then_some(nanos as i64)
}

/// A cost the platform pays as nano-USD, rounded up (a fraction of a nano is still owed).
pub fn cost_from_usd(usd: f64) -> i64 {
    if !usd.is_finite() || usd <= 0.0 {
        return 0;
    }
    let nanos = (usd * 1e9).ceil();
    if nanos >= UNLIMITED as f64 { UNLIMITED } else { nanos as i64 }
}

/// The charge for `cost` at `margin` (a multiplier such as 2.0), rounded up to the nano.
/// The margin is taken to a millionth (integer arithmetic after that).
pub fn charge(cost: i64, margin: f64) -> i64 {
    let ppm = if margin.is_finite() && margin > 0.0 { (margin * 1e6).round() as i128 } else { 0 };
    let scaled = i128::from(cost.max(0)) * ppm;
    let charge = (scaled + 999_999) / 1_000_000;
    i64::try_from(charge.min(i128::from(UNLIMITED))).unwrap_or(UNLIMITED)
}

/// The largest cost whose charge at `margin` fits `budget` (the inverse of [`charge`]).
pub fn cost_within(budget: i64, margin: f64) -> i64 {
    let ppm = if margin.is_finite() && margin > 0.0 { (margin * 1e6).round() as i128 } else { return UNLIMITED };
    if ppm == 0 {
        return UNLIMITED;
    }
    let cost = i128::from(budget.max(0)) * 1_000_000 / ppm;
    i64::try_from(cost).unwrap_or(UNLIMITED)
}

/// An amount as an exact decimal USD string: `400000000` → `"0.4"`, `1` → `"0.000000001"`.
pub fn usd(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let (whole, frac) = (abs / NANOS_PER_USD as u64, abs % NANOS_PER_USD as u64);
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{frac:09}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// An amount for people: `$0.30`, with more digits when cents would hide it (`$0.000012`).
pub fn dollars(nanos: i64) -> String {
    if nanos != 0 && nanos.unsigned_abs() < 10_000_000 {
        format!("${}", usd(nanos))
    } else {
        format!("${:.2}", nanos as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly_and_print_as_decimals() {
        assert_eq!(from_usd(0.3), Some(300_000_000));
        assert_eq!(from_usd(-0.01), None);
        assert_eq!(from_usd(f64::NAN), None);
        assert_eq!(usd(400_000_000), "0.4");
        assert_eq!(usd(1), "0.000000001");
        assert_eq!(usd(5 * NANOS_PER_USD), "5");
        assert_eq!(usd(-1_500_000_000), "-1.5");
        assert_eq!(dollars(300_000_000), "$0.30");
        assert_eq!(dollars(12_000), "$0.000012");
    }

    #[test]
    fn ten_thousand_tiny_charges_sum_exactly() {
        let each = from_usd(0.000_000_1).expect("an amount");
        assert_eq!((0..10_000).map(|_| each).sum::<i64>(), from_usd(0.001).expect("an amount"));
    }

    #[test]
    fn charges_round_up_and_their_inverse_fits_the_budget() {
        assert_eq!(charge(3, 2.0), 6);
        assert_eq!(charge(1, 1.5), 2, "half a nano is still owed");
        for budget in [0, 1, 7, 999, 300_000_000] {
            for margin in [1.0, 1.3, 2.0, 3.7] {
                let cost = cost_within(budget, margin);
                assert!(charge(cost, margin) <= budget, "{cost} at {margin} within {budget}");
                assert!(charge(cost + 1, margin) > budget || cost >= UNLIMITED);
            }
        }
    }
}
