//! Record timestamps: epoch milliseconds, ISO 8601 text, or text in one of
//! eKuiper's `timestamp_format` patterns.
//!
//! eKuiper writes patterns the Java way (`YYYY-MM-dd HH:mm:ss`); they are
//! compiled once per stream into chrono parse items, so parsing a record
//! does not re-read the pattern.
//!
//! | token | meaning | example |
//! | --- | --- | --- |
//! | `YYYY`, `yyyy` | year | `2024` |
//! | `YY`, `yy` | year of the century | `24` |
//! | `MMMM`, `MMM` | month name, full or short | `January`, `Jan` |
//! | `MM`, `M` | month number | `01`, `1` |
//! | `dd`, `d` | day of the month | `02`, `2` |
//! | `EEEE`, `EEE` | weekday name, full or short | `Monday`, `Mon` |
//! | `HH`, `H` | hour, 0 to 23 | `15` |
//! | `hh`, `h` | hour, 1 to 12 (with `a`) | `03` |
//! | `a` | `AM` or `PM` | `PM` |
//! | `mm`, `m` | minute | `04` |
//! | `ss`, `s` | second | `05` |
//! | `SSS`, `SS`, `S` | fraction of a second (write the `.` before it) | `.123` |
//! | `Z`, `z` | UTC offset without colon | `+0800` |
//! | `X` | UTC offset with colon, or `Z` | `+08:00` |
//! | `'text'` | literal text | `'T'` |
//!
//! Any other character stands for itself. A time without an offset is UTC.

use chrono::format::{Fixed, Item, Numeric, Pad, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// How a stream's `timestamp_field` text is read.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeFormat {
    pattern: Option<String>,
    items: Vec<Item<'static>>,
}

impl Default for TimeFormat {
    fn default() -> Self {
        Self::iso8601()
    }
}

impl TimeFormat {
    /// ISO 8601: RFC 3339 (`2024-01-02T03:04:05.678+08:00`), or the same
    /// without an offset (UTC), or a date alone.
    pub fn iso8601() -> Self {
        Self {
            pattern: None,
            items: Vec::new(),
        }
    }

    /// Compiles an eKuiper `timestamp_format` pattern (see the module docs).
    ///
    /// # Errors
    /// A sentence naming what is wrong with the pattern.
    pub fn parse_pattern(pattern: &str) -> Result<Self, String> {
        let mut items = Vec::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            let run = chars
                .get(i..)
                .unwrap_or_default()
                .iter()
                .take_while(|&&x| x == c)
                .count();
            let numeric = |n: Numeric, len: usize| {
                let pad = if len >= 2 { Pad::Zero } else { Pad::None };
                Item::Numeric(n, pad)
            };
            let (item, used): (Vec<Item<'static>>, usize) = match (c, run) {
                ('Y' | 'y', 4..) => (vec![numeric(Numeric::Year, 4)], 4),
                ('Y' | 'y', 2 | 3) => (vec![numeric(Numeric::YearMod100, 2)], 2),
                ('M', 4..) => (vec![Item::Fixed(Fixed::LongMonthName)], 4),
                ('M', 3) => (vec![Item::Fixed(Fixed::ShortMonthName)], 3),
                ('M', n) => (vec![numeric(Numeric::Month, n)], n.min(2)),
                ('d', n) => (vec![numeric(Numeric::Day, n)], n.min(2)),
                ('E', 4..) => (vec![Item::Fixed(Fixed::LongWeekdayName)], 4),
                ('E', n) => (vec![Item::Fixed(Fixed::ShortWeekdayName)], n.min(3)),
                ('H', n) => (vec![numeric(Numeric::Hour, n)], n.min(2)),
                ('h', n) => (vec![numeric(Numeric::Hour12, n)], n.min(2)),
                ('m', n) => (vec![numeric(Numeric::Minute, n)], n.min(2)),
                ('s', n) => (vec![numeric(Numeric::Second, n)], n.min(2)),
                ('S', n) => {
                    let spec = match n {
                        1 => "%1f",
                        2 => "%2f",
                        3 => "%3f",
                        6 => "%6f",
                        9 => "%9f",
                        _ => {
                            return Err(format!(
                                "{pattern:?}: a fraction of a second is S, SS, SSS, SSSSSS or SSSSSSSSS, not {n} S"
                            ));
                        }
                    };
                    (StrftimeItems::new(spec).collect(), n)
                }
                ('a', _) => (vec![Item::Fixed(Fixed::UpperAmPm)], 1),
                ('Z' | 'z', _) => (vec![Item::Fixed(Fixed::TimezoneOffset)], 1),
                ('X', _) => (vec![Item::Fixed(Fixed::TimezoneOffsetColonZ)], 1),
                ('\'', _) => {
                    let rest = chars.get(i + 1..).unwrap_or_default();
                    let Some(end) = rest.iter().position(|&x| x == '\'') else {
                        return Err(format!("{pattern:?}: a quote ' is not closed"));
                    };
                    let text: String = rest.iter().take(end).collect();
                    let item = if text.is_empty() {
                        Item::OwnedLiteral("'".into())
                    } else {
                        Item::OwnedLiteral(text.into())
                    };
                    (vec![item], end + 2)
                }
                (c, _) if c.is_ascii_alphabetic() => {
                    return Err(format!(
                        "{pattern:?}: {c:?} is not a pattern letter; use YYYY, MM, dd, HH, hh, mm, ss, SSS, a, Z, X, EEE, MMM, or quote text as 'T'"
                    ));
                }
                (c, _) if c.is_whitespace() => (vec![Item::OwnedSpace(c.to_string().into())], 1),
                (c, _) => (vec![Item::OwnedLiteral(c.to_string().into())], 1),
            };
            items.extend(item);
            i += used;
        }
        if items.is_empty() {
            return Err("the timestamp format is empty".into());
        }
        Ok(Self {
            pattern: Some(pattern.to_owned()),
            items,
        })
    }

    /// Builds the format of a stream: its `timestamp_format`, else ISO 8601.
    ///
    /// # Errors
    /// As [`TimeFormat::parse_pattern`].
    pub fn from_option(pattern: Option<&str>) -> Result<Self, String> {
        match pattern {
            None => Ok(Self::iso8601()),
            Some(p) if p.eq_ignore_ascii_case("iso8601") || p.eq_ignore_ascii_case("rfc3339") => {
                Ok(Self::iso8601())
            }
            Some(p) => Self::parse_pattern(p),
        }
    }

    /// What the format accepts, for error messages.
    pub fn describe(&self) -> String {
        match &self.pattern {
            None => "RFC 3339 text".into(),
            Some(p) => format!("text in the format {p:?}"),
        }
    }

    /// Milliseconds since the epoch of `text`, or `None` when it does not
    /// match.
    pub fn parse(&self, text: &str) -> Option<i64> {
        if self.pattern.is_none() {
            return parse_iso8601(text);
        }
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, text, self.items.iter()).ok()?;
        if let Ok(t) = parsed.to_datetime() {
            return Some(t.timestamp_millis());
        }
        if parsed.minute().is_none() && parsed.hour_div_12().is_some() {
            parsed.set_minute(0).ok()?;
        }
        if parsed.hour_div_12().is_none() && parsed.hour_mod_12().is_none() {
            parsed.set_hour(0).ok()?;
            parsed.set_minute(0).ok()?;
        }
        let offset_ms = i64::from(parsed.offset().unwrap_or(0)) * 1000;
        let naive = parsed.to_naive_datetime_with_offset(0).ok()?;
        Some(naive.and_utc().timestamp_millis() - offset_ms)
    }

    /// Formats epoch milliseconds back into the format (for tests and
    /// generated data); ISO 8601 is RFC 3339 with milliseconds in UTC.
    pub fn format(&self, ms: i64) -> Option<String> {
        let t = DateTime::from_timestamp_millis(ms)?;
        if self.pattern.is_none() {
            return Some(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        Some(t.format_with_items(self.items.iter()).to_string())
    }
}

fn parse_iso8601(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    for pattern in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, pattern) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn iso8601_forms() {
        let f = TimeFormat::iso8601();
        assert_eq!(f.parse("2023-11-14T22:13:20.5Z"), Some(1_700_000_000_500));
        assert_eq!(
            f.parse("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000)
        );
        assert_eq!(f.parse("2023-11-14T22:13:20"), Some(1_700_000_000_000));
        assert_eq!(f.parse("2023-11-14 22:13:20.123"), Some(1_700_000_000_123));
        assert_eq!(f.parse("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(f.parse("yesterday"), None);
    }

    #[test]
    fn ekuiper_patterns() {
        let f = TimeFormat::parse_pattern("YYYY-MM-dd HH:mm:ss").unwrap();
        assert_eq!(f.parse("2023-11-14 22:13:20"), Some(1_700_000_000_000));
        assert_eq!(f.parse("2023-11-14T22:13:20"), None);
        let f = TimeFormat::parse_pattern("yyyy/MM/dd'T'HH:mm:ss.SSSZ").unwrap();
        assert_eq!(
            f.parse("2023/11/15T06:13:20.250+0800"),
            Some(1_700_000_000_250)
        );
        let f = TimeFormat::parse_pattern("dd MMM yyyy hh:mm a").unwrap();
        assert_eq!(f.parse("14 Nov 2023 10:13 PM"), Some(1_699_999_980_000));
        let f = TimeFormat::parse_pattern("YYYYMMdd").unwrap();
        assert_eq!(f.parse("20231114"), Some(1_699_920_000_000));
        for bad in ["", "YYYY-qq", "HH 'x", "ss.SSSS"] {
            assert!(TimeFormat::parse_pattern(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn patterns_round_trip(ms in 0i64..4_102_444_800_000) {
            let ms = ms - ms % 1000;
            for pattern in ["YYYY-MM-dd HH:mm:ss", "yyyy/MM/dd'T'HH:mm:ssZ", "dd MMM yyyy hh:mm:ss a", "yyyy-MM-dd HH:mm:ss.SSSX"] {
                let f = TimeFormat::parse_pattern(pattern).unwrap();
                let text = f.format(ms).unwrap();
                prop_assert_eq!(f.parse(&text), Some(ms), "{} {}", pattern, text);
            }
            let iso = TimeFormat::iso8601();
            prop_assert_eq!(iso.parse(&iso.format(ms).unwrap()), Some(ms));
        }

        #[test]
        fn parse_never_panics(pattern in ".{0,20}", text in ".{0,30}") {
            if let Ok(f) = TimeFormat::parse_pattern(&pattern) {
                let _ = f.parse(&text);
            }
        }
    }
}
