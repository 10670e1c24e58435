//! Typed columns: the host's form of a batch of rows, and the checks on columns a guest made.

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

    /// Appends bytes not yet known to be UTF-8; the decoder checks the whole column at once with
    /// [`Strings::check`], which is several times faster than checking value by value.
    pub(crate) fn push_bytes(&mut self, value: &[u8]) -> Result<(), String> {
        self.data.extend_from_slice(value);
        let end = u32::try_from(self.data.len()).map_err(|_| "a string column holds more than 4 GiB".to_owned())?;
        self.offsets.push(end);
        Ok(())
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Value `i`'s bytes.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Leaves no value (and keeps the room the values took).
    pub fn clear(&mut self) {
        self.data.clear();
        self.offsets.truncate(1);
    }

    /// Each value's bytes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + Clone {
        self.offsets.windows(2).map(|pair| &self.data[pair[0] as usize..pair[1] as usize])
    }

    /// True when the column holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that a column made by a guest is well-formed: `rows + 1` ascending offsets starting
    /// at 0 and ending at the data's end, each on a UTF-8 character boundary.
    pub(crate) fn check(&self, rows: usize) -> Result<(), String> {
        if self.offsets.len() != rows + 1 {
            return Err(format!("a string column has {} offsets for {rows} rows (needs rows + 1)", self.offsets.len()));
        }
        if self.offsets[0] != 0 || self.offsets[rows] as usize != self.data.len() {
            return Err("a string column's offsets do not span its data".to_owned());
        }
        self.check_from(0)
    }

    /// Checks the values from the `first` on, whose offsets are in range: their bytes are UTF-8
    /// and their offsets ascending character boundaries. Values appended to a checked column
    /// need only this.
    pub(crate) fn check_from(&self, first: usize) -> Result<(), String> {
        let base = self.offsets[first] as usize;
        let text = std::str::from_utf8(&self.data[base..]).map_err(|e| format!("a string column is not UTF-8: {e}"))?;
        for pair in self.offsets[first..].windows(2) {
            if pair[0] > pair[1] || !text.is_char_boundary(pair[1] as usize - base) {
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

    /// The texts of a text or dual column; none of a numeric one.
    pub fn strings(&self) -> Option<&Strings> {
        match self {
            Self::Text(strings) | Self::Dual(_, strings) => Some(strings),
            Self::Numeric(_) => None,
        }
    }

    /// The texts of a text or dual column, to change; none of a numeric one.
    pub fn strings_mut(&mut self) -> Option<&mut Strings> {
        match self {
            Self::Text(strings) | Self::Dual(_, strings) => Some(strings),
            Self::Numeric(_) => None,
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

    /// The bytes its values take: 8 a number, a string's bytes and 4 for its offset.
    pub fn value_bytes(&self) -> usize {
        let strings = |s: &Strings| s.data.len() + s.offsets.len() * 4;
        match self {
            Self::Numeric(numbers) => numbers.len() * 8,
            Self::Text(texts) => strings(texts),
            Self::Dual(numbers, texts) => numbers.len() * 8 + strings(texts),
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
