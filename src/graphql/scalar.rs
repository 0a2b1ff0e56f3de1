//! Scalars and small helpers the GraphQL types share.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, TimeZone, Utc};

/// An instant in time, serialized as an RFC 3339 string in UTC with millisecond
/// precision, e.g. `2019-02-02T07:35:47.256Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<Utc>);

impl DateTime {
    /// From epoch milliseconds; out-of-range values give the epoch.
    pub fn from_millis(ms: i64) -> Self {
        Self(Utc.timestamp_millis_opt(ms).single().unwrap_or_default())
    }
}

/// An instant in time: an RFC 3339 string in UTC with millisecond precision, e.g.
/// `2019-02-02T07:35:47.256Z`.
#[Scalar(name = "DateTime", specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| Self(d.with_timezone(&Utc)))
                .map_err(|e| InputValueError::custom(e.to_string())),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.to_rfc3339())
    }
}

impl DateTime {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as chrono's `to_rfc3339_opts(Millis, true)` writes it.
    pub fn to_rfc3339(&self) -> String {
        match self.rfc3339_bytes() {
            Some(bytes) => bytes.iter().map(|&b| char::from(b)).collect(),
            None => self.0.to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }

    /// [`DateTime::to_rfc3339`] as a JSON string, written into `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self.rfc3339_bytes() {
            Some(bytes) => {
                out.push(b'"');
                out.extend_from_slice(&bytes);
                out.push(b'"');
            }
            None => super::json::string(&self.to_rfc3339(), out),
        }
    }

    /// The RFC 3339 form, digit by digit, for years 0–9999 (every real creation time):
    /// chrono goes through `core::fmt`, which is measurably slower for long lists
    /// (docs/performance.md). `None` for other years.
    fn rfc3339_bytes(&self) -> Option<[u8; 24]> {
        use chrono::{Datelike, Timelike};
        let t = self.0;
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return None;
        }
        let millis = t.timestamp_subsec_millis().min(999);
        let mut out = [0u8; 24];
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year.unsigned_abs());
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        put(20, 3, millis);
        for (i, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')] {
            out[i] = sep;
        }
        Some(out)
    }
}

/// An upstream string that means "absent" when empty.
pub fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_chrono_across_the_range() {
        let chrono = |d: &DateTime| d.0.to_rfc3339_opts(SecondsFormat::Millis, true);
        // Epoch, the seed sample, leap day, end of year 9999, year 10000, negative years,
        // and a walk over 1970–2100 with odd steps.
        let mut samples = vec![
            0,
            1_549_092_947_256,
            951_782_400_999,
            253_402_300_799_999,
            253_402_300_800_000,
            -1,
            -62_167_219_200_000,
            -62_198_755_200_001,
        ];
        samples.extend((0..2000).map(|i| i * 2_071_000_123_457 % 4_102_444_800_000));
        for ms in samples {
            let d = DateTime::from_millis(ms);
            assert_eq!(d.to_rfc3339(), chrono(&d), "{ms}");
        }
    }

    #[test]
    fn formats_create_time_as_rfc3339_utc_millis() {
        let v = DateTime::from_millis(1_549_092_947_256).to_value();
        assert_eq!(v, Value::String("2019-02-02T07:35:47.256Z".into()));
        assert_eq!(
            DateTime::from_millis(i64::MAX).to_value(),
            Value::String("1970-01-01T00:00:00.000Z".into())
        );
    }
}
