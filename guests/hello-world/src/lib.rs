//! Qlik's "Hello World" example plugin as a component: the same function names, parameter names,
//! types and answers.

use std::time::{SystemTime, UNIX_EPOCH};

use sse_guest::{Aggregate, DataType, Function, FunctionType};

/// Joins every value of the column with ", ".
#[derive(Default)]
struct HelloWorldAggr(Vec<String>);

impl Aggregate for HelloWorldAggr {
    type Args = String;
    type Output = String;

    fn update(&mut self, value: String) {
        self.0.push(value);
    }

    fn finish(self) -> String {
        self.0.join(", ")
    }
}

/// Appends the current time (UTC, ISO 8601 with microseconds) to the value.
fn stamp(value: String) -> String {
    format!("{value} {}", iso_timestamp(SystemTime::now()))
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC, the form of Python's `datetime.isoformat()`.
fn iso_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60,
        since_epoch.subsec_micros()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn echo3(a: String, b: String, c: String) -> (String, String, String) {
    (a, b, c)
}

sse_guest::export_functions![
    // The echo hands the column back untouched: no per-row work at all.
    Function::batch("HelloWorld", FunctionType::Tensor, &[("str1", DataType::Text)], DataType::Text, Ok)
        .describe("Echoes its string argument"),
    Function::aggregate::<HelloWorldAggr>("HelloWorldAggr").params(["str1"]).describe("Joins all values with \", \""),
    Function::tensor("Cache", stamp).params(["str1"]).describe("Appends the time; Qlik may cache the answer"),
    Function::tensor("NoCache", stamp)
        .params(["str1"])
        .not_cacheable()
        .describe("Appends the time; Qlik never caches the answer"),
    Function::tensor("EchoTable_3", echo3)
        .params(["col1", "col2", "col3"])
        .table("EchoTable", ["col1", "col2", "col3"])
        .describe("Echoes a table of three string columns"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_iso_8601() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(iso_timestamp(t), "2023-11-14T22:13:20.123456");
        assert_eq!(iso_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000000");
    }
}
