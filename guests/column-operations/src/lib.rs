//! Qlik's "Column Operations" example plugin as a component: the same function names, parameter
//! names, types and answers.

use sse_guest::{Aggregate, Function};

fn sum_of_rows(col1: f64, col2: f64) -> f64 {
    col1 + col2
}

/// The sum of a column.
#[derive(Default)]
struct SumOfColumn(f64);

impl Aggregate for SumOfColumn {
    type Args = f64;
    type Output = f64;

    fn update(&mut self, value: f64) {
        self.0 += value;
    }

    fn finish(self) -> f64 {
        self.0
    }
}

/// The maximum of each of two columns, as a one-row table.
struct MaxOfColumns([f64; 2]);

impl Default for MaxOfColumns {
    fn default() -> Self {
        Self([f64::NEG_INFINITY; 2])
    }
}

impl Aggregate for MaxOfColumns {
    type Args = (f64, f64);
    type Output = (f64, f64);

    fn update(&mut self, (col1, col2): (f64, f64)) {
        self.0[0] = self.0[0].max(col1);
        self.0[1] = self.0[1].max(col2);
    }

    fn finish(self) -> (f64, f64) {
        (self.0[0], self.0[1])
    }
}

sse_guest::export_functions![
    Function::tensor("SumOfRows", sum_of_rows).params(["col1", "col2"]).describe("Adds two columns row by row"),
    Function::aggregate::<SumOfColumn>("SumOfColumn").params(["col1"]).describe("The sum of a column"),
    Function::aggregate::<MaxOfColumns>("MaxOfColumns_2")
        .as_tensor()
        .params(["col1", "col2"])
        .table("MaxOfColumns", ["Max1", "Max2"])
        .describe("The maximum of each of two columns, as a one-row table"),
];
