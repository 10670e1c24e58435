//! Reading values out of the host's packed columns and building result columns.

use crate::{Column, DataType, Duals, Strings};

/// The number of values in a column.
pub fn column_len(column: &Column) -> usize {
    match column {
        Column::Numeric(numbers) => numbers.len(),
        Column::Text(strings) => strings.offsets.len().saturating_sub(1),
        Column::Dual(duals) => duals.numbers.len(),
    }
}

/// The text of value `row` of a packed string column ("" when out of range or not UTF-8, which the
/// host never sends).
pub fn text_at(strings: &Strings, row: usize) -> &str {
    let (Some(&start), Some(&end)) = (strings.offsets.get(row), strings.offsets.get(row + 1)) else {
        return "";
    };
    strings.data.get(start as usize..end as usize).and_then(|bytes| std::str::from_utf8(bytes).ok()).unwrap_or("")
}

/// Accumulates one result column value by value.
pub enum ColumnBuilder {
    /// NUMERIC values.
    Numeric(Vec<f64>),
    /// STRING values, packed as the host expects them.
    Text(Strings),
    /// DUAL values.
    Dual(Duals),
}

fn empty_strings(rows: usize) -> Strings {
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0);
    Strings { data: Vec::with_capacity(rows * 8), offsets }
}

fn push_text(strings: &mut Strings, text: &str) {
    strings.data.extend_from_slice(text.as_bytes());
    // Offsets are u32 by the WIT; a batch never holds 4 GiB of text (the host caps messages far lower).
    strings.offsets.push(u32::try_from(strings.data.len()).unwrap_or(u32::MAX));
}

impl ColumnBuilder {
    /// An empty column of `data_type` with room for `rows` values.
    pub fn new(data_type: DataType, rows: usize) -> Self {
        match data_type {
            DataType::Numeric => Self::Numeric(Vec::with_capacity(rows)),
            DataType::Text => Self::Text(empty_strings(rows)),
            DataType::Dual => Self::Dual(Duals { numbers: Vec::with_capacity(rows), strings: empty_strings(rows) }),
        }
    }

    /// Appends a number (a NUMERIC value, or a DUAL with empty text; NaN into a STRING column is "").
    pub fn push_number(&mut self, number: f64) {
        match self {
            Self::Numeric(numbers) => numbers.push(number),
            Self::Text(strings) => push_text(strings, &format_number(number)),
            Self::Dual(duals) => {
                duals.numbers.push(number);
                push_text(&mut duals.strings, "");
            }
        }
    }

    /// Appends a text (a STRING value, or a DUAL whose number is NaN).
    pub fn push_text(&mut self, text: &str) {
        match self {
            Self::Numeric(numbers) => numbers.push(text.trim().parse().unwrap_or(f64::NAN)),
            Self::Text(strings) => push_text(strings, text),
            Self::Dual(duals) => {
                duals.numbers.push(f64::NAN);
                push_text(&mut duals.strings, text);
            }
        }
    }

    /// Appends a dual value.
    pub fn push_dual(&mut self, number: f64, text: &str) {
        match self {
            Self::Numeric(numbers) => numbers.push(number),
            Self::Text(strings) => push_text(strings, text),
            Self::Dual(duals) => {
                duals.numbers.push(number);
                push_text(&mut duals.strings, text);
            }
        }
    }

    /// The finished column.
    pub fn finish(self) -> Column {
        match self {
            Self::Numeric(numbers) => Column::Numeric(numbers),
            Self::Text(strings) => Column::Text(strings),
            Self::Dual(duals) => Column::Dual(duals),
        }
    }
}

/// A number as Qlik users expect to read it in a text column: no trailing `.0`, empty for NaN.
fn format_number(number: f64) -> String {
    if number.is_nan() { String::new() } else { number.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_round_trip() {
        let mut builder = ColumnBuilder::new(DataType::Text, 3);
        builder.push_text("a");
        builder.push_text("");
        builder.push_text("héllo");
        let Column::Text(strings) = builder.finish() else { panic!("not text") };
        assert_eq!(strings.offsets, [0, 1, 1, 7]);
        assert_eq!([text_at(&strings, 0), text_at(&strings, 1), text_at(&strings, 2)], ["a", "", "héllo"]);
        assert_eq!(text_at(&strings, 3), "");
    }
}
