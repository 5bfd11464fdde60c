//! DynamoDB numbers: exact decimals of at most 38 significant digits whose magnitude lies in
//! 1E-130 ..= 9.9999999999999999999999999999999999999E+125 (or zero), with DynamoDB's errors
//! for everything else, a canonical text every client reads back exactly, and an
//! order-preserving byte encoding for keys.
//!
//! ```text
//! accepted:  "1.50" -> "1.5"   "1e2" -> "100"   "-0" -> "0"   "1E+125" -> "1E+125"
//! refused:   "1e126" (overflow)   "1e-131" (underflow)   39 significant digits (precision)
//!            "abc", "", "1e", "NaN", "Infinity" (not a number)
//! ```

use std::cmp::Ordering;

use bigdecimal::BigDecimal;
use bigdecimal::num_bigint::{BigInt, Sign};

use super::error::DynamoError;

/// Significant digits a number may have.
pub const MAX_DIGITS: usize = 38;
/// Largest decimal exponent of a number's leading digit (`9.99…E+125`).
pub const MAX_MAGNITUDE: i64 = 125;
/// Smallest decimal exponent of a number's leading digit (`1E-130`).
pub const MIN_MAGNITUDE: i64 = -130;

/// Integers up to this many digits are written out in full; larger ones in E notation, so no
/// client has to round the text to read it (boto3 traps any rounding at 38 digits).
const PLAIN_INTEGER_DIGITS: i64 = MAX_DIGITS as i64;
/// Fractions whose leading digit sits below this exponent are written in E notation.
const PLAIN_FRACTION_MAGNITUDE: i64 = -30;

pub(crate) const INVALID: &str = "The parameter cannot be converted to a numeric value";
pub(crate) const PRECISION: &str =
    "Attempting to store more than 38 significant digits in a Number";
pub(crate) const OVERFLOW: &str =
    "Number overflow. Attempting to store a number with magnitude larger than supported range";
pub(crate) const UNDERFLOW: &str =
    "Number underflow. Attempting to store a number with magnitude smaller than supported range";

/// A DynamoDB number, kept in canonical form: `digits × 10^exponent`, no trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    negative: bool,
    /// Significant digits as ASCII, first and last non-zero; empty for zero.
    digits: Vec<u8>,
    /// Power of ten of the last digit.
    exponent: i64,
}

/// Parsed but not yet range-checked.
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    /// Strips leading and trailing zeros; zero has no digits and no sign.
    fn canonical(mut self) -> Self {
        let leading = self.digits.iter().take_while(|d| **d == b'0').count();
        self.digits.drain(..leading);
        while self.digits.last() == Some(&b'0') {
            self.digits.pop();
            self.exponent = self.exponent.saturating_add(1);
        }
        if self.digits.is_empty() {
            self.negative = false;
            self.exponent = 0;
        }
        self
    }

    /// DynamoDB's limits, with its messages.
    fn checked(self) -> Result<Number, DynamoError> {
        let Decimal { negative, digits, exponent } = self.canonical();
        if !digits.is_empty() {
            // Range first: a sum past 9.99…E+125 is an overflow, whatever its digit count.
            let magnitude = exponent.saturating_add(digits.len() as i64 - 1);
            if magnitude > MAX_MAGNITUDE {
                return Err(DynamoError::validation(OVERFLOW));
            }
            if magnitude < MIN_MAGNITUDE {
                return Err(DynamoError::validation(UNDERFLOW));
            }
            if digits.len() > MAX_DIGITS {
                return Err(DynamoError::validation(PRECISION));
            }
        }
        Ok(Number { negative, digits, exponent })
    }
}

/// `[+-]digits[.digits][(e|E)[+-]digits]`, with at least one mantissa digit. The exponent
/// saturates, so a huge one is reported as an overflow or underflow, never wraps.
fn scan(text: &str) -> Option<Decimal> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            at = 1;
            true
        }
        Some(b'+') => {
            at = 1;
            false
        }
        _ => false,
    };
    let mut digits = Vec::new();
    let mut mantissa_digits = 0usize;
    let mut fraction_digits: i64 = 0;
    let mut seen_point = false;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'0'..=b'9' => {
                mantissa_digits += 1;
                // Leading zeros carry no information; skipping them keeps memory bounded.
                if !(digits.is_empty() && b == b'0') {
                    digits.push(b);
                }
                if seen_point {
                    fraction_digits = fraction_digits.saturating_add(1);
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        at += 1;
    }
    if mantissa_digits == 0 {
        return None;
    }
    let mut exponent: i64 = 0;
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        let sign = match bytes.get(at) {
            Some(b'-') => {
                at += 1;
                -1
            }
            Some(b'+') => {
                at += 1;
                1
            }
            _ => 1,
        };
        let start = at;
        while let Some(d @ b'0'..=b'9') = bytes.get(at) {
            exponent = exponent.saturating_mul(10).saturating_add(i64::from(d - b'0'));
            at += 1;
        }
        if at == start {
            return None;
        }
        exponent *= sign;
    }
    if at != bytes.len() {
        return None;
    }
    Some(Decimal { negative, digits, exponent: exponent.saturating_sub(fraction_digits) })
}

impl Number {
    /// A number as a client wrote it, with DynamoDB's validation errors.
    pub fn parse(text: &str) -> Result<Self, DynamoError> {
        let trimmed = text.trim();
        let Some(decimal) = scan(trimmed) else {
            return Err(DynamoError::validation(if trimmed.is_empty() {
                INVALID.to_owned()
            } else {
                format!("{INVALID}: {trimmed}")
            }));
        };
        decimal.checked()
    }

    /// The result of arithmetic: exact, or DynamoDB's error when it does not fit.
    pub fn from_decimal(value: BigDecimal) -> Result<Self, DynamoError> {
        let (int, scale) = value.as_bigint_and_exponent();
        let (sign, magnitude) = int.into_parts();
        Decimal {
            negative: sign == Sign::Minus,
            digits: magnitude.to_string().into_bytes(),
            exponent: -scale,
        }
        .checked()
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Significant digits (0 for zero).
    pub fn significant_digits(&self) -> usize {
        self.digits.len()
    }

    /// The exact value, for arithmetic.
    pub fn decimal(&self) -> BigDecimal {
        if self.is_zero() {
            return BigDecimal::from(0);
        }
        let sign = if self.negative { Sign::Minus } else { Sign::Plus };
        let int = BigInt::parse_bytes(&self.digits, 10).expect("digits are ASCII decimal");
        BigDecimal::new(if sign == Sign::Minus { -int } else { int }, -self.exponent)
    }

    /// The integer part of a non-negative number, when it fits in a `u64` (TTL seconds).
    pub fn to_u64(&self) -> Option<u64> {
        if self.negative {
            return None;
        }
        let kept = (self.digits.len() as i64 + self.exponent.min(0)).max(0) as usize;
        let integer = std::str::from_utf8(&self.digits[..kept]).expect("ASCII digits");
        let base: u64 = if integer.is_empty() { 0 } else { integer.parse().ok()? };
        base.checked_mul(10u64.checked_pow(u32::try_from(self.exponent.max(0)).ok()?)?)
    }

    /// Power of ten of the leading digit.
    fn magnitude(&self) -> i64 {
        self.exponent + self.digits.len() as i64 - 1
    }

    /// The canonical text: plain for integers up to 38 digits and for fractions not too
    /// small, E notation otherwise; always parses back to an equal number.
    pub fn to_text(&self) -> String {
        if self.is_zero() {
            return "0".to_owned();
        }
        let digits = std::str::from_utf8(&self.digits).expect("ASCII digits");
        let sign = if self.negative { "-" } else { "" };
        let magnitude = self.magnitude();
        if self.exponent >= 0 && magnitude < PLAIN_INTEGER_DIGITS {
            let zeros = "0".repeat(self.exponent as usize);
            return format!("{sign}{digits}{zeros}");
        }
        if self.exponent < 0 && magnitude >= PLAIN_FRACTION_MAGNITUDE {
            let point = magnitude + 1;
            return if point > 0 {
                let (int, frac) = digits.split_at(point as usize);
                format!("{sign}{int}.{frac}")
            } else {
                format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
            };
        }
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        format!("{sign}{first}{rest}E{magnitude:+}")
    }

    /// An order-preserving byte encoding: numbers compare as their encodings do.
    ///
    /// ```text
    /// zero:      0x80
    /// positive:  0xc0, (magnitude + 1000) as u16 BE, digits as ASCII, 0x00
    /// negative:  0x40, !(magnitude + 1000) as u16 BE, !digits, 0xff
    /// ```
    pub fn sort_key(&self) -> Vec<u8> {
        if self.is_zero() {
            return vec![0x80];
        }
        // One more than the magnitude, as the encoding has always used.
        let biased = (self.magnitude() + 1 + 1000) as u16;
        let mut out = Vec::with_capacity(self.digits.len() + 4);
        if self.negative {
            out.push(0x40);
            out.extend_from_slice(&(!biased).to_be_bytes());
            out.extend(self.digits.iter().map(|d| !d));
            out.push(0xff);
        } else {
            out.push(0xc0);
            out.extend_from_slice(&biased.to_be_bytes());
            out.extend_from_slice(&self.digits);
            out.push(0x00);
        }
        out
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Number {
    /// Numeric order, read off the canonical form without arithmetic.
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |n: &Number| match (n.is_zero(), n.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        };
        let by_sign = sign(self).cmp(&sign(other));
        if by_sign != Ordering::Equal || self.is_zero() {
            return by_sign;
        }
        // Same sign, both non-zero: compare magnitudes, then digits.
        let by_size =
            self.magnitude().cmp(&other.magnitude()).then_with(|| self.digits.cmp(&other.digits));
        if self.negative { by_size.reverse() } else { by_size }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> String {
        Number::parse(t).unwrap().to_text()
    }

    fn refused(t: &str) -> String {
        Number::parse(t).unwrap_err().message
    }

    #[test]
    fn limits_are_dynamodbs_with_its_messages() {
        let nines = format!("9.{}E+125", "9".repeat(37));
        assert_eq!(text(&nines), nines);
        assert_eq!(text("1E-130"), "1E-130");
        assert_eq!(text("-1E-130"), "-1E-130");
        assert_eq!(refused("1e126"), OVERFLOW);
        assert_eq!(refused("-10E+125"), OVERFLOW);
        assert_eq!(refused("1e-131"), UNDERFLOW);
        assert_eq!(refused("0.1e-130"), UNDERFLOW);
        assert_eq!(refused(&"1".repeat(39)), PRECISION);
        assert_eq!(refused(&format!("-1.{}", "2".repeat(38))), PRECISION);
        // Zeros around the digits are not significant.
        assert_eq!(text(&format!("000{}.000", "1".repeat(38))), "1".repeat(38));
        assert_eq!(
            text(&format!("000{}000", "1".repeat(38))),
            format!("1.{}E+40", "1".repeat(37)),
            "past 38 integer digits the text is E notation"
        );
        assert_eq!(text(&format!("0.{}1", "0".repeat(129))), "1E-130");
        assert_eq!(text("0e999999999999999999999999"), "0");
        assert_eq!(refused("1e999999999999999999999999"), OVERFLOW);
        assert_eq!(refused("1e-999999999999999999999999"), UNDERFLOW);
        for bad in ["abc", "1e", "1e+", ".", "-", "+.", "1.2.3", "NaN", "Infinity", "0x10", "1 2"] {
            assert_eq!(refused(bad), format!("{INVALID}: {bad}"), "{bad}");
        }
        assert_eq!(refused(""), INVALID);
    }

    #[test]
    fn canonical_text_is_plain_where_clients_read_it_exactly() {
        assert_eq!(text("1.50"), "1.5");
        assert_eq!(text("100"), "100");
        assert_eq!(text("1e2"), "100");
        assert_eq!(text("-0.000"), "0");
        assert_eq!(text(".5"), "0.5");
        assert_eq!(text("5."), "5");
        assert_eq!(text("+12.5e-1"), "1.25");
        assert_eq!(text("0.001"), "0.001");
        assert_eq!(text(&"9".repeat(38)), "9".repeat(38));
        assert_eq!(text("1e37"), format!("1{}", "0".repeat(37)));
        assert_eq!(text("1e38"), "1E+38");
        assert_eq!(text("1E+125"), "1E+125");
        assert_eq!(text("-12.5e100"), "-1.25E+101");
        assert_eq!(text("1e-30"), format!("0.{}1", "0".repeat(29)));
        assert_eq!(text("1.5e-31"), "1.5E-31");
    }

    #[test]
    fn numbers_are_canonical_and_sort_by_encoding() {
        let texts = [
            "-9.9999999999999999999999999999999999999E+125",
            "-1e10",
            "-12.5",
            "-1",
            "-0.001",
            "-1E-130",
            "0",
            "1E-130",
            "0.001",
            "0.0012",
            "1",
            "1.5",
            "10",
            "12.5",
            "1e10",
            "99999999999999999999999999999999999999",
            "9.9999999999999999999999999999999999999E+125",
        ];
        let numbers: Vec<Number> = texts.iter().map(|t| Number::parse(t).unwrap()).collect();
        for pair in numbers.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0].to_text(), pair[1].to_text());
            assert!(
                pair[0].sort_key() < pair[1].sort_key(),
                "encoding of {} < {}",
                pair[0].to_text(),
                pair[1].to_text()
            );
        }
        assert_eq!(
            Number::parse("1.0").unwrap().sort_key(),
            Number::parse("1").unwrap().sort_key()
        );
    }

    #[test]
    fn arithmetic_results_are_exact_or_refused() {
        let n = |t: &str| Number::parse(t).unwrap();
        let sum = |a: &str, b: &str| Number::from_decimal(n(a).decimal() + n(b).decimal());
        assert_eq!(sum("0.1", "0.2").unwrap().to_text(), "0.3");
        assert_eq!(sum("1E+125", "-1E+125").unwrap().to_text(), "0");
        assert_eq!(
            sum("9.9999999999999999999999999999999999999E+125", "1E+89").unwrap_err().message,
            OVERFLOW
        );
        assert_eq!(sum(&"9".repeat(38), "0.1").unwrap_err().message, PRECISION);
        assert_eq!(sum("1E-130", "-1E-130").unwrap().to_text(), "0");
    }

    #[test]
    fn whole_seconds_read_exactly() {
        let n = |t: &str| Number::parse(t).unwrap();
        assert_eq!(n("1700000000").to_u64(), Some(1_700_000_000));
        assert_eq!(n("0").to_u64(), Some(0));
        assert_eq!(n("1.5").to_u64(), Some(1));
        assert_eq!(n("0.5").to_u64(), Some(0));
        assert_eq!(n("1.5e3").to_u64(), Some(1500));
        assert_eq!(n("-1").to_u64(), None);
        assert_eq!(n("1E+30").to_u64(), None);
    }

    proptest::proptest! {
        /// Every accepted number reads back from its canonical text as the same number, with
        /// the same encoding, and the encoding orders as the numbers do.
        #[test]
        fn canonical_text_round_trips_over_the_whole_range(
            a in arbitrary_number(), b in arbitrary_number()
        ) {
            for n in [&a, &b] {
                let back = Number::parse(&n.to_text()).unwrap();
                proptest::prop_assert_eq!(&back, n);
                proptest::prop_assert_eq!(back.decimal(), n.decimal());
                proptest::prop_assert_eq!(Number::from_decimal(n.decimal()).unwrap(), n.clone());
            }
            proptest::prop_assert_eq!(a.cmp(&b), a.decimal().cmp(&b.decimal()));
            proptest::prop_assert_eq!(a.cmp(&b), a.sort_key().cmp(&b.sort_key()));
        }
    }

    /// Any valid number: 1 to 38 digits, any magnitude in range, either sign, or zero.
    pub(crate) fn arbitrary_number() -> impl proptest::strategy::Strategy<Value = Number> {
        use proptest::prelude::*;
        prop_oneof![
            1 => Just(Number::parse("0").unwrap()),
            20 => (any::<bool>(), "[1-9][0-9]{0,37}", MIN_MAGNITUDE..=MAX_MAGNITUDE).prop_map(
                |(negative, digits, magnitude)| {
                    let exponent = magnitude - (digits.len() as i64 - 1);
                    let sign = if negative { "-" } else { "" };
                    Number::parse(&format!("{sign}{digits}E{exponent}")).unwrap()
                }
            ),
        ]
    }
}
