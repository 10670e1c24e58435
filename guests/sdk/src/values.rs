//! The mapping between Rust types and Qlik's data types, and plain functions applied row by row.

use crate::columns::{ColumnBuilder, column_len, text_at};
use crate::{Batch, Column, DataType, Strings};

/// A Qlik DUAL value: a number with its display text (a date and its format, a code and its label).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dual {
    /// The numeric part; NaN when there is none.
    pub number: f64,
    /// The text part; empty when there is none.
    pub text: String,
}

/// A parameter type: a value read from row `row` of an input column.
pub trait Arg: Sized {
    /// The Qlik type this parameter is declared with.
    const TYPE: DataType;
    /// What reading a column needs, worked out once per batch rather than once per value.
    type View<'a>: Copy;
    /// The view of `column`.
    fn view(column: &Column) -> Self::View<'_>;
    /// The value at `row` of a viewed column. The host sends columns of the declared type;
    /// anything else reads as Qlik's "no value" (NaN or "").
    fn at(view: Self::View<'_>, row: usize) -> Self;
    /// Reads the value at `row`.
    fn read(column: &Column, row: usize) -> Self {
        Self::at(Self::view(column), row)
    }
}

impl Arg for f64 {
    const TYPE: DataType = DataType::Numeric;
    type View<'a> = &'a [f64];
    fn view(column: &Column) -> &[f64] {
        match column {
            Column::Numeric(numbers) => numbers,
            Column::Dual(duals) => &duals.numbers,
            Column::Text(_) => &[],
        }
    }
    #[inline]
    fn at(view: &[f64], row: usize) -> Self {
        view.get(row).copied().unwrap_or(f64::NAN)
    }
}

impl Arg for String {
    const TYPE: DataType = DataType::Text;
    type View<'a> = Option<&'a Strings>;
    fn view(column: &Column) -> Option<&Strings> {
        match column {
            Column::Text(strings) => Some(strings),
            Column::Dual(duals) => Some(&duals.strings),
            Column::Numeric(_) => None,
        }
    }
    #[inline]
    fn at(view: Option<&Strings>, row: usize) -> Self {
        view.map(|strings| text_at(strings, row).to_owned()).unwrap_or_default()
    }
}

impl Arg for Dual {
    const TYPE: DataType = DataType::Dual;
    type View<'a> = &'a Column;
    fn view(column: &Column) -> &Column {
        column
    }
    fn at(column: &Column, row: usize) -> Self {
        match column {
            Column::Dual(duals) => Dual {
                number: duals.numbers.get(row).copied().unwrap_or(f64::NAN),
                text: text_at(&duals.strings, row).to_owned(),
            },
            Column::Numeric(_) => Dual { number: f64::read(column, row), text: String::new() },
            Column::Text(_) => Dual { number: f64::NAN, text: String::read(column, row) },
        }
    }
}

/// The parameters of a function: one [`Arg`], or a tuple of them, read from one row of a batch.
pub trait Args: Sized {
    /// The declared type of each parameter, in order.
    fn types() -> Vec<DataType>;
    /// Reads row `row` of `batch`.
    fn read_row(batch: &Batch, row: usize) -> Self;
    /// Hands every row of `batch` to `f`, in order.
    fn for_each_row(batch: &Batch, f: impl FnMut(Self));
}

impl<T: Arg> Args for T {
    fn types() -> Vec<DataType> {
        vec![T::TYPE]
    }
    fn read_row(batch: &Batch, row: usize) -> Self {
        T::read(column(batch, 0), row)
    }
    fn for_each_row(batch: &Batch, f: impl FnMut(Self)) {
        let view = T::view(column(batch, 0));
        (0..batch.rows as usize).map(|row| T::at(view, row)).for_each(f);
    }
}

/// A result value that fills one column.
pub trait Cell {
    /// The Qlik type of the column.
    const TYPE: DataType;
    /// Appends this value to `column`.
    fn push(self, column: &mut ColumnBuilder);
    /// A column of `rows` values.
    fn collect_column(rows: usize, values: impl Iterator<Item = Self>) -> ColumnBuilder
    where
        Self: Sized,
    {
        let mut column = ColumnBuilder::new(Self::TYPE, rows);
        values.for_each(|value| value.push(&mut column));
        column
    }
}

impl Cell for f64 {
    const TYPE: DataType = DataType::Numeric;
    fn push(self, column: &mut ColumnBuilder) {
        column.push_number(self);
    }
    fn collect_column(_rows: usize, values: impl Iterator<Item = Self>) -> ColumnBuilder {
        ColumnBuilder::Numeric(values.collect())
    }
}

impl Cell for String {
    const TYPE: DataType = DataType::Text;
    fn push(self, column: &mut ColumnBuilder) {
        column.push_text(&self);
    }
}

impl Cell for &str {
    const TYPE: DataType = DataType::Text;
    fn push(self, column: &mut ColumnBuilder) {
        column.push_text(self);
    }
}

impl Cell for Dual {
    const TYPE: DataType = DataType::Dual;
    fn push(self, column: &mut ColumnBuilder) {
        column.push_dual(self.number, &self.text);
    }
}

/// What a function returns for one row: a [`Cell`], a tuple of cells (a table row), or a `Result`
/// of those whose error fails the call.
pub trait Returns {
    /// The type of each result column, in order.
    fn types() -> Vec<DataType>;
    /// Appends this row to `columns` (one builder per entry of [`Returns::types`]).
    fn push(self, columns: &mut [ColumnBuilder]) -> Result<(), String>;
    /// The result columns of `rows` rows.
    fn collect(rows: usize, values: impl Iterator<Item = Self>) -> Result<Vec<ColumnBuilder>, String>
    where
        Self: Sized,
    {
        let mut columns = builders::<Self>(rows);
        for value in values {
            value.push(&mut columns)?;
        }
        Ok(columns)
    }
}

impl<T: Cell> Returns for T {
    fn types() -> Vec<DataType> {
        vec![T::TYPE]
    }
    fn collect(rows: usize, values: impl Iterator<Item = Self>) -> Result<Vec<ColumnBuilder>, String> {
        Ok(vec![T::collect_column(rows, values)])
    }
    fn push(self, columns: &mut [ColumnBuilder]) -> Result<(), String> {
        if let Some(column) = columns.first_mut() {
            Cell::push(self, column);
        }
        Ok(())
    }
}

impl<T: Returns, E: std::fmt::Display> Returns for Result<T, E> {
    fn types() -> Vec<DataType> {
        T::types()
    }
    fn push(self, columns: &mut [ColumnBuilder]) -> Result<(), String> {
        self.map_err(|e| e.to_string())?.push(columns)
    }
}

/// A plain Rust function applied to every row of a batch. Implemented for `fn(A, B, ...) -> R`
/// with up to eight [`Arg`] parameters and any [`Returns`] result.
pub trait RowFn<Params>: Send + Sync + 'static {
    /// The declared type of each parameter.
    fn param_types() -> Vec<DataType>;
    /// The type of each result column.
    fn return_types() -> Vec<DataType>;
    /// Applies the function to every row of `batch`, answering one row per input row.
    fn apply(&self, batch: &Batch) -> Result<Batch, String>;
}

/// Builds the result columns of a batch of `rows` rows of `R`.
pub(crate) fn builders<R: Returns>(rows: usize) -> Vec<ColumnBuilder> {
    R::types().into_iter().map(|t| ColumnBuilder::new(t, rows)).collect()
}

/// Finishes result columns into a batch.
pub(crate) fn finish(rows: usize, columns: Vec<ColumnBuilder>) -> Batch {
    Batch {
        rows: u32::try_from(rows).unwrap_or(u32::MAX),
        columns: columns.into_iter().map(ColumnBuilder::finish).collect(),
    }
}

fn column(batch: &Batch, index: usize) -> &Column {
    static EMPTY: Column = Column::Numeric(Vec::new());
    batch.columns.get(index).unwrap_or(&EMPTY)
}

macro_rules! arity {
    ($($arg:ident $index:tt),*) => {
        impl<$($arg: Arg),*> Args for ($($arg,)*) {
            fn types() -> Vec<DataType> {
                vec![$($arg::TYPE),*]
            }
            #[allow(unused_variables, clippy::unused_unit)]
            fn read_row(batch: &Batch, row: usize) -> Self {
                ($($arg::read(column(batch, $index), row),)*)
            }
            #[allow(unused_variables, clippy::unused_unit)]
            fn for_each_row(batch: &Batch, f: impl FnMut(Self)) {
                let views = ($($arg::view(column(batch, $index)),)*);
                (0..batch.rows as usize).map(|row| ($($arg::at(views.$index, row),)*)).for_each(f);
            }
        }

        impl<F, R, $($arg),*> RowFn<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> R + Send + Sync + 'static,
            R: Returns,
            $($arg: Arg,)*
        {
            fn param_types() -> Vec<DataType> {
                vec![$($arg::TYPE),*]
            }
            fn return_types() -> Vec<DataType> {
                R::types()
            }
            #[allow(unused_variables)]
            fn apply(&self, batch: &Batch) -> Result<Batch, String> {
                let rows = batch.rows as usize;
                // Every column must hold `rows` values; the host guarantees it, this keeps reads in bounds.
                if let Some(short) = batch.columns.iter().find(|c| column_len(c) < rows) {
                    return Err(format!("a parameter column has {} values for {rows} rows", column_len(short)));
                }
                let views = ($($arg::view(column(batch, $index)),)*);
                let out = R::collect(rows, (0..rows).map(|row| self($($arg::at(views.$index, row)),*)))?;
                Ok(finish(rows, out))
            }
        }
    };
}

arity!();
arity!(A 0, B 1);
arity!(A 0, B 1, C 2);
arity!(A 0, B 1, C 2, D 3);
arity!(A 0, B 1, C 2, D 3, E 4);
arity!(A 0, B 1, C 2, D 3, E 4, G 5);
arity!(A 0, B 1, C 2, D 3, E 4, G 5, H 6);
arity!(A 0, B 1, C 2, D 3, E 4, G 5, H 6, I 7);

// One parameter: a bare `Arg`, not a 1-tuple, so `fn(f64) -> f64` is a `RowFn`.
impl<F, R, A> RowFn<(A,)> for F
where
    F: Fn(A) -> R + Send + Sync + 'static,
    R: Returns,
    A: Arg,
{
    fn param_types() -> Vec<DataType> {
        vec![A::TYPE]
    }
    fn return_types() -> Vec<DataType> {
        R::types()
    }
    fn apply(&self, batch: &Batch) -> Result<Batch, String> {
        let rows = batch.rows as usize;
        let input = column(batch, 0);
        if column_len(input) < rows {
            return Err(format!("the parameter column has {} values for {rows} rows", column_len(input)));
        }
        let view = A::view(input);
        let out = R::collect(rows, (0..rows).map(|row| self(A::at(view, row))))?;
        Ok(finish(rows, out))
    }
}

macro_rules! table_row {
    ($($cell:ident $index:tt),*) => {
        impl<$($cell: Cell),*> Returns for ($($cell,)*) {
            fn types() -> Vec<DataType> {
                vec![$($cell::TYPE),*]
            }
            fn push(self, columns: &mut [ColumnBuilder]) -> Result<(), String> {
                $(if let Some(column) = columns.get_mut($index) { self.$index.push(column); })*
                Ok(())
            }
        }
    };
}

table_row!(A 0, B 1);
table_row!(A 0, B 1, C 2);
table_row!(A 0, B 1, C 2, D 3);
table_row!(A 0, B 1, C 2, D 3, E 4);
table_row!(A 0, B 1, C 2, D 3, E 4, G 5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Duals;

    fn strings(values: &[&str]) -> Strings {
        let mut column = ColumnBuilder::new(DataType::Text, values.len());
        values.iter().for_each(|v| column.push_text(v));
        match column.finish() {
            Column::Text(strings) => strings,
            _ => unreachable!("a text builder makes text"),
        }
    }

    fn numbers(column: &Column) -> &[f64] {
        match column {
            Column::Numeric(n) => n,
            other => panic!("not numeric: {other:?}"),
        }
    }

    #[test]
    fn rust_types_declare_qliks_types() {
        assert_eq!(<(f64, String, Dual) as Args>::types(), [DataType::Numeric, DataType::Text, DataType::Dual]);
        assert_eq!(<Result<(f64, String), String> as Returns>::types(), [DataType::Numeric, DataType::Text]);
        fn params<P, F: RowFn<P>>(_: &F) -> Vec<DataType> {
            F::param_types()
        }
        assert_eq!(params(&|a: f64, b: String| format!("{a}{b}")), [DataType::Numeric, DataType::Text]);
    }

    #[test]
    fn a_row_function_answers_one_row_per_row() {
        let batch = Batch {
            rows: 3,
            columns: vec![Column::Numeric(vec![1.0, 2.0, 3.0]), Column::Numeric(vec![10.0, 20.0, 30.0])],
        };
        let answer = RowFn::<(f64, f64)>::apply(&|a: f64, b: f64| a + b, &batch).expect("answers");
        assert_eq!(answer.rows, 3);
        assert_eq!(numbers(&answer.columns[0]), [11.0, 22.0, 33.0]);
    }

    #[test]
    fn values_read_across_types_as_qlik_means_them() {
        let duals = Column::Dual(Duals { numbers: vec![5.0, f64::NAN], strings: strings(&["five", "none"]) });
        assert_eq!(f64::read(&duals, 0), 5.0);
        assert_eq!(String::read(&duals, 1), "none");
        assert_eq!(Dual::read(&duals, 0), Dual { number: 5.0, text: "five".into() });
        // A column of another type reads as Qlik's "no value".
        let text = Column::Text(strings(&["x"]));
        assert!(f64::read(&text, 0).is_nan());
        assert_eq!(String::read(&Column::Numeric(vec![1.0]), 0), "");
        let from_number = Dual::read(&Column::Numeric(vec![2.5]), 0);
        assert_eq!((from_number.number, from_number.text.as_str()), (2.5, ""));
        // Past the end: no value, never a panic.
        assert!(f64::read(&Column::Numeric(vec![]), 3).is_nan());
    }

    #[test]
    fn a_tuple_answers_a_table_and_an_error_fails_the_batch() {
        let batch = Batch { rows: 2, columns: vec![Column::Numeric(vec![1.0, -1.0])] };
        let table = RowFn::<(f64,)>::apply(&|x: f64| (x * 2.0, format!("{x}")), &batch).expect("answers");
        assert_eq!(table.columns.len(), 2);
        assert_eq!(numbers(&table.columns[0]), [2.0, -2.0]);
        let checked = |x: f64| if x < 0.0 { Err(format!("{x} is negative")) } else { Ok(x.sqrt()) };
        assert_eq!(RowFn::<(f64,)>::apply(&checked, &batch).unwrap_err(), "-1 is negative");
    }

    #[test]
    fn a_short_parameter_column_is_an_error_not_a_panic() {
        let batch = Batch { rows: 3, columns: vec![Column::Numeric(vec![1.0]), Column::Numeric(vec![1.0, 2.0, 3.0])] };
        let error = RowFn::<(f64, f64)>::apply(&|a: f64, b: f64| a * b, &batch).unwrap_err();
        assert!(error.contains("1 values for 3 rows"), "{error}");
        let error = RowFn::<(f64,)>::apply(&|a: f64| a, &Batch { rows: 2, columns: vec![] }).unwrap_err();
        assert!(error.contains("0 values for 2 rows"), "{error}");
    }
}
