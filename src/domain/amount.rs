//! Money: integer base units with the asset's decimals. Never a float; parsing a decimal
//! string with more fractional digits than the asset has is an error, not a rounding.

use alloy_primitives::U256;
use std::fmt;

/// An amount of one asset in base units (wei, lamports, token units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount {
    pub base_units: U256,
    pub decimals: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a plain decimal number (digits, at most one '.', no sign or exponent)")]
    Malformed(String),
    #[error("amount has {got} fractional digits but the asset has only {decimals} decimals")]
    TooPrecise { got: usize, decimals: u8 },
    #[error("amount is too large")]
    Overflow,
    #[error("asset decimals {0} out of range (max 77)")]
    BadDecimals(u8),
}

/// Largest decimals value for which 10^decimals fits in a U256.
const MAX_DECIMALS: u8 = 77;

impl Amount {
    pub fn new(base_units: U256, decimals: u8) -> Result<Self, AmountError> {
        if decimals > MAX_DECIMALS {
            return Err(AmountError::BadDecimals(decimals));
        }
        Ok(Self { base_units, decimals })
    }

    /// Parses a decimal string in whole units ("0.05") for an asset with `decimals`.
    pub fn parse_decimal(s: &str, decimals: u8) -> Result<Self, AmountError> {
        if decimals > MAX_DECIMALS {
            return Err(AmountError::BadDecimals(decimals));
        }
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        let malformed = || AmountError::Malformed(super::sanitize::for_message(s));
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty())
            || !digits_ok(int)
            || !digits_ok(frac)
            || (s.contains('.') && frac.is_empty())
        {
            return Err(malformed());
        }
        let frac_trimmed = frac.trim_end_matches('0');
        if frac_trimmed.len() > usize::from(decimals) {
            return Err(AmountError::TooPrecise {
                got: frac_trimmed.len(),
                decimals,
            });
        }
        let scale = U256::from(10u8).pow(U256::from(decimals));
        let int_units = if int.is_empty() { U256::ZERO } else { parse_u256(int)? };
        let mut frac_units = if frac_trimmed.is_empty() {
            U256::ZERO
        } else {
            parse_u256(frac_trimmed)?
        };
        let pad = usize::from(decimals) - frac_trimmed.len();
        frac_units = frac_units
            .checked_mul(U256::from(10u8).pow(U256::from(pad)))
            .ok_or(AmountError::Overflow)?;
        let base_units = int_units
            .checked_mul(scale)
            .and_then(|v| v.checked_add(frac_units))
            .ok_or(AmountError::Overflow)?;
        Ok(Self { base_units, decimals })
    }

    /// Parses an integer string of base units ("50000000000000000").
    pub fn parse_base_units(s: &str, decimals: u8) -> Result<Self, AmountError> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Malformed(super::sanitize::for_message(s)));
        }
        Self::new(parse_u256(s)?, decimals)
    }

    /// The human form: whole units, trailing fractional zeros removed ("0.05", "12").
    pub fn to_decimal_string(&self) -> String {
        let digits = self.base_units.to_string();
        let decimals = usize::from(self.decimals);
        if decimals == 0 {
            return digits;
        }
        let padded = if digits.len() <= decimals {
            format!("{}{}", "0".repeat(decimals + 1 - digits.len()), digits)
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - decimals);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        }
    }
}

fn parse_u256(digits: &str) -> Result<U256, AmountError> {
    // 78 digits always overflow a U256; refuse early instead of parsing megabytes.
    if digits.len() > 78 {
        return Err(AmountError::Overflow);
    }
    U256::from_str_radix(digits, 10).map_err(|_| AmountError::Overflow)
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, decimals: u8, expect: Result<&str, AmountError>) {
        let got = Amount::parse_decimal(input, decimals).map(|a| a.base_units.to_string());
        assert_eq!(
            got,
            expect.map(str::to_owned),
            "parse {input:?} with {decimals} decimals"
        );
    }

    #[test]
    fn decimal_parsing() {
        check("0.05", 18, Ok("50000000000000000"));
        check("1", 18, Ok("1000000000000000000"));
        check(".5", 6, Ok("500000"));
        check("1.50", 1, Ok("15"));
        check("0", 0, Ok("0"));
        check("007", 0, Ok("7"));
        check("1.000000000000000000000", 18, Ok("1000000000000000000"));
        check("0.1234567", 6, Err(AmountError::TooPrecise { got: 7, decimals: 6 }));
        check("1.5", 0, Err(AmountError::TooPrecise { got: 1, decimals: 0 }));
        check("", 18, Err(AmountError::Empty));
        for bad in ["-1", "+1", "1e18", "1.", ".", "1..2", " 1", "1,5", "0x10", "١"] {
            assert!(
                matches!(Amount::parse_decimal(bad, 18), Err(AmountError::Malformed(_))),
                "{bad:?}"
            );
        }
        let huge = "9".repeat(80);
        check(&huge, 0, Err(AmountError::Overflow));
        check(
            "115792089237316195423570985008687907853269984665640564039457584007913129639936",
            0,
            Err(AmountError::Overflow),
        );
        check(
            "115792089237316195423570985008687907853269984665640564039457584007913129639935",
            0,
            Ok("115792089237316195423570985008687907853269984665640564039457584007913129639935"),
        );
        check("1", 78, Err(AmountError::BadDecimals(78)));
        // 77 decimals is the most a U256 can hold one whole unit of: accepted.
        check("1", 77, Ok(&format!("1{}", "0".repeat(77))));
        assert!(Amount::new(U256::from(1), 77).is_ok());
        assert_eq!(Amount::new(U256::from(1), 78), Err(AmountError::BadDecimals(78)));
    }

    #[test]
    fn human_form() {
        let f = |units: u64, decimals: u8| Amount::new(U256::from(units), decimals).unwrap().to_decimal_string();
        assert_eq!(f(50_000_000_000_000_000, 18), "0.05");
        assert_eq!(f(1_000_000, 6), "1");
        assert_eq!(f(1_234_500, 6), "1.2345");
        assert_eq!(f(0, 18), "0");
        assert_eq!(f(7, 0), "7");
        assert_eq!(f(1, 9), "0.000000001");
        let amount = Amount::new(U256::from(1_234_500), 6).unwrap();
        assert_eq!(amount.to_string(), "1.2345", "Display is the human form");
    }

    #[test]
    fn base_units_parsing() {
        assert_eq!(Amount::parse_base_units("42", 6).unwrap().base_units, U256::from(42));
        assert!(Amount::parse_base_units("4.2", 6).is_err());
        assert!(Amount::parse_base_units("", 6).is_err());
        assert!(Amount::parse_base_units("-1", 6).is_err());
    }
}
