//! Functions that exist only for the host's tests: each exercises one rule of the WIT world, by
//! keeping it or by breaking it on purpose. Never served by `make run`.

use sse_guest::models::{self, Fault};
use sse_guest::{Aggregate, Batch, Column, DataType, Duals, Function, FunctionType, Strings};

fn double(x: f64) -> f64 {
    x * 2.0
}

fn fails_on_negative(x: f64) -> Result<f64, String> {
    if x < 0.0 { Err(format!("negative value {x}")) } else { Ok(x) }
}

fn panics_on_13(x: f64) -> f64 {
    assert!(x != 13.0, "13 is unlucky");
    x
}

/// Doubles both halves of each dual, column-wise (the benchmark's dual workload, written as a
/// performance-minded author would: no `String` per value).
fn dual_twice(input: Batch) -> Result<Batch, String> {
    let rows = input.rows;
    let Some(Column::Dual(duals)) = input.columns.into_iter().next() else {
        return Err("expected a dual column".to_owned());
    };
    let numbers = duals.numbers.iter().map(|n| n * 2.0).collect();
    let strings = &duals.strings;
    let mut data = Vec::with_capacity(strings.data.len() * 2);
    let mut offsets = Vec::with_capacity(strings.offsets.len());
    offsets.push(0);
    for pair in strings.offsets.windows(2) {
        let text = &strings.data[pair[0] as usize..pair[1] as usize];
        data.extend_from_slice(text);
        data.extend_from_slice(text);
        offsets.push(u32::try_from(data.len()).map_err(|_| "the answer passes 4 GiB".to_owned())?);
    }
    Ok(Batch { rows, columns: vec![Column::Dual(Duals { numbers, strings: Strings { data, offsets } })] })
}

fn forty_two() -> f64 {
    42.0
}

/// Answers one row too many.
fn extra_row(mut batch: Batch) -> Result<Batch, String> {
    batch.rows += 1;
    if let Some(Column::Numeric(values)) = batch.columns.first_mut() {
        values.push(0.0);
    }
    Ok(batch)
}

/// Declared NUMERIC, answers STRING.
fn wrong_type(batch: Batch) -> Result<Batch, String> {
    let rows = batch.rows;
    let mut column = sse_guest::ColumnBuilder::new(DataType::Text, rows as usize);
    (0..rows).for_each(|_| column.push_text("oops"));
    Ok(Batch { rows, columns: vec![column.finish()] })
}

/// Saves a column of numbers as model `name` (the first row's), little-endian f64s; answers how
/// many it saved.
#[derive(Default)]
struct SaveValues {
    name: Option<String>,
    values: Vec<f64>,
}

impl Aggregate for SaveValues {
    type Args = (String, f64);
    type Output = Result<f64, String>;
    fn update(&mut self, (name, x): (String, f64)) {
        self.name.get_or_insert(name);
        self.values.push(x);
    }
    fn finish(self) -> Result<f64, String> {
        let bytes: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        models::save(self.name.as_deref().unwrap_or(""), &bytes)?;
        Ok(self.values.len() as f64)
    }
}

/// The numbers of model `name`.
fn load_values(name: &str) -> Result<Vec<f64>, models::Refusal> {
    let bytes = models::load(name)?;
    Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// The sum of model `name`'s numbers; fails the call if there is no such model.
fn sum_of_model(name: String) -> Result<f64, String> {
    Ok(load_values(&name)?.iter().sum())
}

/// The sum of model `name`'s numbers, or `fallback` when the app has no such model: the guest
/// handles the refusal itself and the call succeeds.
fn sum_or(name: String, fallback: f64) -> Result<f64, String> {
    match load_values(&name) {
        Ok(values) => Ok(values.iter().sum()),
        Err(refusal) if refusal.fault == Fault::Missing => Ok(fallback),
        Err(refusal) => Err(refusal.into()),
    }
}

/// The app's models, then the shared ones: `name:bytes` (`+shared`), comma-separated.
fn model_list() -> Result<String, String> {
    let list = models::list()?;
    let shown = list.iter().map(|m| format!("{}:{}{}", m.name, m.bytes, if m.shared { "+shared" } else { "" }));
    Ok(shown.collect::<Vec<_>>().join(","))
}

sse_guest::export_functions![
    // Its name hashes to id 0, so an empty function header reaches it.
    Function::scalar("IdZero_DlVtu8", double).params(["x"]).describe("Doubles; its id is 0"),
    Function::scalar("FailsOnNegative", fails_on_negative).params(["x"]),
    Function::scalar("PanicsOn13", panics_on_13).params(["x"]),
    Function::batch("DualTwice", FunctionType::Tensor, &[("d", DataType::Dual)], DataType::Dual, dual_twice),
    Function::scalar("FortyTwo", forty_two),
    Function::batch("ExtraRow", FunctionType::Tensor, &[("x", DataType::Numeric)], DataType::Numeric, extra_row),
    Function::batch("WrongType", FunctionType::Tensor, &[("x", DataType::Numeric)], DataType::Numeric, wrong_type),
    Function::aggregate::<SaveValues>("SaveValues").params(["name", "x"]).not_cacheable(),
    Function::scalar("SumOfModel", sum_of_model).params(["name"]).not_cacheable(),
    Function::scalar("SumOr", sum_or).params(["name", "fallback"]).not_cacheable(),
    Function::scalar("ModelList", model_list).not_cacheable(),
];
