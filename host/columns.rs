//! Typed columns — the host's form of a batch of rows — and their conversion from and to Qlik's
//! row-wise `BundledRows`, including the one place that sizes outgoing messages.

use prost::Message;

use crate::pb;

/// The largest message Qlik accepts from a plugin.
pub const QLIK_MESSAGE_LIMIT: usize = 4 << 20;

/// Why [`Batch::to_messages`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ToMessagesError<E> {
    /// A row of this many encoded bytes fits no message Qlik accepts.
    OversizedRow(usize),
    /// `emit` failed.
    Emit(E),
}

/// Qlik's data types, as the host reasons about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// STRING.
    Text,
    /// NUMERIC.
    Numeric,
    /// DUAL.
    Dual,
}

impl DataType {
    /// The protobuf enum value.
    pub fn to_pb(self) -> pb::DataType {
        match self {
            Self::Text => pb::DataType::String,
            Self::Numeric => pb::DataType::Numeric,
            Self::Dual => pb::DataType::Dual,
        }
    }

    /// The name Qlik uses for this type.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "STRING",
            Self::Numeric => "NUMERIC",
            Self::Dual => "DUAL",
        }
    }
}

/// A column of UTF-8 strings in one buffer: value `i` is `data[offsets[i]..offsets[i + 1]]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Strings {
    /// The concatenated bytes.
    pub data: Vec<u8>,
    /// `rows + 1` ascending offsets into `data`, starting at 0.
    pub offsets: Vec<u32>,
}

impl Strings {
    /// An empty column with room for `rows` values.
    pub fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self { data: Vec::new(), offsets }
    }

    /// Appends a value. Fails when the column would pass 4 GiB, which offsets cannot address.
    pub fn push(&mut self, value: &str) -> Result<(), String> {
        self.data.extend_from_slice(value.as_bytes());
        let end = u32::try_from(self.data.len()).map_err(|_| "a string column holds more than 4 GiB".to_owned())?;
        self.offsets.push(end);
        Ok(())
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// True when the column holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i`. Only for columns that passed [`Strings::check`] or were built by [`Strings::push`].
    fn get(&self, i: usize) -> &str {
        let bytes = &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize];
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Checks that a column made by a guest is well-formed: `rows + 1` ascending offsets starting
    /// at 0 and ending at the data's end, each on a UTF-8 character boundary.
    fn check(&self, rows: usize) -> Result<(), String> {
        if self.offsets.len() != rows + 1 {
            return Err(format!("a string column has {} offsets for {rows} rows (needs rows + 1)", self.offsets.len()));
        }
        let text = std::str::from_utf8(&self.data).map_err(|e| format!("a string column is not UTF-8: {e}"))?;
        if self.offsets[0] != 0 || self.offsets[rows] as usize != self.data.len() {
            return Err("a string column's offsets do not span its data".to_owned());
        }
        for pair in self.offsets.windows(2) {
            if pair[0] > pair[1] || !text.is_char_boundary(pair[1] as usize) {
                return Err("a string column's offsets are not ascending character boundaries".to_owned());
            }
        }
        Ok(())
    }
}

/// One column of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// STRING values.
    Text(Strings),
    /// NUMERIC values; NaN is Qlik's missing number.
    Numeric(Vec<f64>),
    /// DUAL values: numbers and strings side by side.
    Dual(Vec<f64>, Strings),
}

impl Column {
    /// An empty column of `data_type` with room for `rows` values.
    pub fn with_capacity(data_type: DataType, rows: usize) -> Self {
        match data_type {
            DataType::Text => Self::Text(Strings::with_capacity(rows)),
            DataType::Numeric => Self::Numeric(Vec::with_capacity(rows)),
            DataType::Dual => Self::Dual(Vec::with_capacity(rows), Strings::with_capacity(rows)),
        }
    }

    /// The column's type.
    pub fn data_type(&self) -> DataType {
        match self {
            Self::Text(_) => DataType::Text,
            Self::Numeric(_) => DataType::Numeric,
            Self::Dual(..) => DataType::Dual,
        }
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(strings) => strings.len(),
            Self::Numeric(numbers) | Self::Dual(numbers, _) => numbers.len(),
        }
    }

    /// True when the column holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the part of a protobuf dual this column's type uses.
    fn push(&mut self, dual: &pb::Dual) -> Result<(), String> {
        match self {
            Self::Text(strings) => strings.push(&dual.str_data),
            Self::Numeric(numbers) => {
                numbers.push(dual.num_data);
                Ok(())
            }
            Self::Dual(numbers, strings) => {
                numbers.push(dual.num_data);
                strings.push(&dual.str_data)
            }
        }
    }

    /// Value `i` as a protobuf dual, filling only the fields its type defines (so that unset fields
    /// cost nothing on the wire).
    fn dual(&self, i: usize) -> pb::Dual {
        match self {
            Self::Text(strings) => pb::Dual { num_data: 0.0, str_data: strings.get(i).to_owned() },
            Self::Numeric(numbers) => pb::Dual { num_data: numbers[i], str_data: String::new() },
            Self::Dual(numbers, strings) => pb::Dual { num_data: numbers[i], str_data: strings.get(i).to_owned() },
        }
    }

    /// Checks a column made by a guest against its declared type and row count.
    fn check(&self, rows: usize, declared: DataType) -> Result<(), String> {
        if self.data_type() != declared {
            return Err(format!("a {} column where {} is declared", self.data_type().name(), declared.name()));
        }
        match self {
            Self::Text(strings) => strings.check(rows),
            Self::Numeric(numbers) if numbers.len() != rows => {
                Err(format!("a numeric column has {} values for {rows} rows", numbers.len()))
            }
            Self::Numeric(_) => Ok(()),
            Self::Dual(numbers, strings) => {
                if numbers.len() != rows {
                    return Err(format!("a dual column has {} numbers for {rows} rows", numbers.len()));
                }
                strings.check(rows)
            }
        }
    }
}

/// A slice of rows, stored column by column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// The number of rows (explicit, since a function may have no columns).
    pub rows: usize,
    /// The columns, in parameter or result order.
    pub columns: Vec<Column>,
}

impl Batch {
    /// Turns Qlik's rows into columns of the declared parameter types.
    ///
    /// Every row must carry exactly one dual per parameter.
    pub fn from_rows(rows: &[pb::Row], params: &[DataType]) -> Result<Self, String> {
        let mut columns: Vec<Column> = params.iter().map(|&t| Column::with_capacity(t, rows.len())).collect();
        for (index, row) in rows.iter().enumerate() {
            if row.duals.len() != params.len() {
                return Err(format!(
                    "row {index} of a bundle has {} column(s), the function takes {} parameter(s)",
                    row.duals.len(),
                    params.len()
                ));
            }
            for (column, dual) in columns.iter_mut().zip(&row.duals) {
                column.push(dual)?;
            }
        }
        Ok(Self { rows: rows.len(), columns })
    }

    /// Checks an answer made by a guest: one column per declared result type, each well-formed
    /// and `self.rows` long.
    pub fn check(&self, declared: &[DataType]) -> Result<(), String> {
        if self.rows == 0 && self.columns.is_empty() {
            return Ok(());
        }
        if self.columns.len() != declared.len() {
            return Err(format!("{} column(s) where {} are declared", self.columns.len(), declared.len()));
        }
        for (index, (column, &data_type)) in self.columns.iter().zip(declared).enumerate() {
            column.check(self.rows, data_type).map_err(|e| format!("result column {index}: {e}"))?;
        }
        Ok(())
    }

    /// Turns the batch into Qlik's rows, in messages of at most `max_bytes` encoded bytes each
    /// (a single row larger than that travels alone). Calls `emit` for every full message; stops
    /// when `emit` fails. A row that no message Qlik accepts could hold fails with its size.
    pub fn to_messages<E>(
        &self,
        max_bytes: usize,
        mut emit: impl FnMut(pb::BundledRows) -> Result<(), E>,
    ) -> Result<(), ToMessagesError<E>> {
        let mut message = pb::BundledRows::default();
        let mut size = 0;
        for i in 0..self.rows {
            let row = pb::Row { duals: self.columns.iter().map(|c| c.dual(i)).collect() };
            let row_size = prost::length_delimiter_len(row.encoded_len()) + row.encoded_len() + 1;
            if row_size > QLIK_MESSAGE_LIMIT - 16 {
                return Err(ToMessagesError::OversizedRow(row_size));
            }
            if size + row_size > max_bytes && !message.rows.is_empty() {
                emit(std::mem::take(&mut message)).map_err(ToMessagesError::Emit)?;
                size = 0;
            }
            size += row_size;
            message.rows.push(row);
        }
        if !message.rows.is_empty() {
            emit(message).map_err(ToMessagesError::Emit)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the messages of `batch`, capped at `max_bytes`.
    fn messages(batch: &Batch, max_bytes: usize) -> Vec<pb::BundledRows> {
        let mut out = Vec::new();
        batch
            .to_messages(max_bytes, |m| {
                out.push(m);
                Ok::<_, ()>(())
            })
            .unwrap();
        out
    }

    fn row(duals: &[(f64, &str)]) -> pb::Row {
        pb::Row { duals: duals.iter().map(|&(n, s)| pb::Dual { num_data: n, str_data: s.to_owned() }).collect() }
    }

    #[test]
    fn rows_become_typed_columns_and_back() {
        let rows = [row(&[(1.0, "a"), (2.0, "x")]), row(&[(3.0, "bé"), (4.0, "y")])];
        let batch = Batch::from_rows(&rows, &[DataType::Text, DataType::Dual]).unwrap();
        assert_eq!(batch.rows, 2);
        assert_eq!(batch.columns[0], Column::Text(Strings { data: b"ab\xc3\xa9".to_vec(), offsets: vec![0, 1, 4] }));
        assert_eq!(
            batch.columns[1],
            Column::Dual(vec![2.0, 4.0], Strings { data: b"xy".to_vec(), offsets: vec![0, 1, 2] })
        );
        let out = messages(&batch, 1 << 20);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rows[1].duals[0].str_data, "bé");
        assert_eq!(out[0].rows[1].duals[1], pb::Dual { num_data: 4.0, str_data: "y".into() });
    }

    #[test]
    fn wrong_column_count_names_the_row() {
        let err = Batch::from_rows(&[row(&[(1.0, "")]), row(&[])], &[DataType::Numeric]).unwrap_err();
        assert!(err.contains("row 1") && err.contains("0 column(s)"), "{err}");
    }

    #[test]
    fn messages_stay_under_the_byte_cap_and_keep_order() {
        let mut strings = Strings::with_capacity(1000);
        for i in 0..1000 {
            strings.push(&format!("{i:0>100}")).unwrap();
        }
        let batch = Batch { rows: 1000, columns: vec![Column::Text(strings)] };
        let out = messages(&batch, 10_000);
        assert!(out.len() > 10);
        assert!(out.iter().all(|m| m.encoded_len() <= 10_000));
        let values: Vec<String> = out.iter().flat_map(|m| &m.rows).map(|r| r.duals[0].str_data.clone()).collect();
        assert_eq!(values.len(), 1000);
        assert_eq!(values[999], format!("{:0>100}", 999));
    }

    #[test]
    fn a_row_qlik_cannot_take_is_refused() {
        let mut strings = Strings::with_capacity(1);
        strings.push(&"x".repeat(QLIK_MESSAGE_LIMIT)).unwrap();
        let batch = Batch { rows: 1, columns: vec![Column::Text(strings)] };
        let result = batch.to_messages(1 << 20, |_| Ok::<_, ()>(()));
        assert!(matches!(result, Err(ToMessagesError::OversizedRow(n)) if n > QLIK_MESSAGE_LIMIT));
    }

    #[test]
    fn malformed_guest_columns_are_refused() {
        let bad_utf8 = Column::Text(Strings { data: vec![0xff], offsets: vec![0, 1] });
        assert!(bad_utf8.check(1, DataType::Text).unwrap_err().contains("UTF-8"));
        let split_char = Column::Text(Strings { data: "é".into(), offsets: vec![0, 1, 2] });
        assert!(split_char.check(2, DataType::Text).is_err());
        let short = Column::Numeric(vec![1.0]);
        assert!(short.check(2, DataType::Numeric).unwrap_err().contains("1 values for 2 rows"));
        assert!(short.check(1, DataType::Text).unwrap_err().contains("NUMERIC column where STRING"));
    }
}
