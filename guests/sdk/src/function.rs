//! Declaring functions, and answering the host's `describe`, `call` and `invocation` for them.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::exports::qlik::sse::functions::{Guest, GuestInvocation};
use crate::values::{Args, Returns, RowFn, builders, finish};
use crate::{Batch, DataType, Field, FunctionDef, FunctionType, Mode, Param, Table};

/// A function that needs every row before it answers: an aggregation (one row), or a tensor such as
/// a table of column maxima. One value of the implementing type lives for one call.
///
/// ```no_run
/// #[derive(Default)]
/// struct Sum(f64);
/// impl sse_guest::Aggregate for Sum {
///     type Args = f64;
///     type Output = f64;
///     fn update(&mut self, x: f64) { self.0 += x }
///     fn finish(self) -> f64 { self.0 }
/// }
/// ```
pub trait Aggregate: Default + 'static {
    /// The parameters of one row: an [`crate::Arg`] or a tuple of them.
    type Args: Args;
    /// The answer: a [`crate::Cell`], a tuple of them, or a `Result` of those.
    type Output: Returns;
    /// Takes one row.
    fn update(&mut self, args: Self::Args);
    /// Answers after the last row.
    fn finish(self) -> Self::Output;
}

type BatchFn = Box<dyn Fn(Batch) -> Result<Batch, String> + Send + Sync>;
type InvocationFn = Box<dyn Fn() -> Box<dyn Invocation> + Send + Sync>;

/// The per-call state of a [`Mode::PerCall`] function.
trait Invocation {
    fn update(&mut self, input: Batch) -> Result<Batch, String>;
    fn finish(&mut self) -> Result<Batch, String>;
}

enum Implementation {
    PerBatch(BatchFn),
    PerCall(InvocationFn),
}

/// One function of a component: its declaration and its implementation.
pub struct Function {
    def: FunctionDef,
    implementation: Implementation,
}

fn params(types: Vec<DataType>) -> Vec<Param> {
    types.into_iter().enumerate().map(|(i, data_type)| Param { name: format!("arg{}", i + 1), data_type }).collect()
}

impl Function {
    fn new(
        name: &str,
        function_type: FunctionType,
        mode: Mode,
        params: Vec<Param>,
        returns: Vec<DataType>,
        implementation: Implementation,
    ) -> Self {
        let table = (returns.len() > 1).then(|| Table {
            name: name.to_owned(),
            fields: returns
                .iter()
                .enumerate()
                .map(|(i, &data_type)| Field { name: format!("Field{}", i + 1), data_type })
                .collect(),
        });
        let def = FunctionDef {
            name: name.to_owned(),
            description: String::new(),
            function_type,
            return_type: returns.first().copied().unwrap_or(DataType::Numeric),
            params,
            mode,
            table,
            cacheable: true,
        };
        Self { def, implementation }
    }

    fn row_fn<P, F: RowFn<P>>(name: &str, function_type: FunctionType, f: F) -> Self {
        let implementation = Implementation::PerBatch(Box::new(move |batch| f.apply(&batch)));
        Self::new(name, function_type, Mode::PerBatch, params(F::param_types()), F::return_types(), implementation)
    }

    /// A SCALAR function: `f` is applied to every row.
    pub fn scalar<P, F: RowFn<P>>(name: &str, f: F) -> Self {
        Self::row_fn(name, FunctionType::Scalar, f)
    }

    /// A TENSOR function: `f` is applied to every row. Returning a tuple makes it a table function.
    pub fn tensor<P, F: RowFn<P>>(name: &str, f: F) -> Self {
        Self::row_fn(name, FunctionType::Tensor, f)
    }

    /// An AGGREGATION answered by `A`: one `A` per call, fed every row, answering one row.
    /// [`Function::tensor_table`]-style uses are declared with [`Function::as_tensor`].
    pub fn aggregate<A: Aggregate>(name: &str) -> Self {
        let implementation =
            Implementation::PerCall(Box::new(|| Box::new(Aggregation::<A>(Some(A::default()))) as Box<dyn Invocation>));
        Self::new(
            name,
            FunctionType::Aggregation,
            Mode::PerCall,
            params(<A::Args as Args>::types()),
            <A::Output as Returns>::types(),
            implementation,
        )
    }

    /// A function that handles whole batches itself, for the cases where reading row by row is too
    /// slow or not the point (an echo, a column transform). The answer must have one row per input row.
    pub fn batch<F>(
        name: &str,
        function_type: FunctionType,
        params: &[(&str, DataType)],
        returns: DataType,
        f: F,
    ) -> Self
    where
        F: Fn(Batch) -> Result<Batch, String> + Send + Sync + 'static,
    {
        let params = params.iter().map(|&(name, data_type)| Param { name: name.to_owned(), data_type }).collect();
        Self::new(name, function_type, Mode::PerBatch, params, vec![returns], Implementation::PerBatch(Box::new(f)))
    }

    /// Names the parameters (default `arg1`, `arg2`, ...). Extra names are ignored.
    pub fn params<const N: usize>(mut self, names: [&str; N]) -> Self {
        for (param, name) in self.def.params.iter_mut().zip(names) {
            param.name = name.to_owned();
        }
        self
    }

    /// Sets the one-line description shown by `sse-wasm inspect` and in the host's log.
    pub fn describe(mut self, description: &str) -> Self {
        self.def.description = description.to_owned();
        self
    }

    /// Marks the answer as varying for the same input (time, randomness): Qlik will not cache it.
    pub fn not_cacheable(mut self) -> Self {
        self.def.cacheable = false;
        self
    }

    /// Declares a per-call function as TENSOR to Qlik (for example a table of column maxima,
    /// computed over every row and answered once).
    pub fn as_tensor(mut self) -> Self {
        self.def.function_type = FunctionType::Tensor;
        self
    }

    /// Makes this a table function with a named table and named output columns (for
    /// `LOAD ... EXTENSION`); `fields` names the result columns in order.
    pub fn table<const N: usize>(mut self, name: &str, fields: [&str; N]) -> Self {
        let types: Vec<DataType> = match &self.def.table {
            Some(table) => table.fields.iter().map(|f| f.data_type).collect(),
            None => vec![self.def.return_type],
        };
        self.def.table = Some(Table {
            name: name.to_owned(),
            fields: types
                .iter()
                .zip(fields)
                .map(|(&data_type, name)| Field { name: name.to_owned(), data_type })
                .collect(),
        });
        self
    }

    /// The declaration the host receives.
    pub fn def(&self) -> &FunctionDef {
        &self.def
    }
}

struct Aggregation<A>(Option<A>);

impl<A: Aggregate> Invocation for Aggregation<A> {
    fn update(&mut self, input: Batch) -> Result<Batch, String> {
        let state = self.0.as_mut().ok_or("update after finish")?;
        A::Args::for_each_row(&input, |args| state.update(args));
        Ok(Batch { rows: 0, columns: Vec::new() })
    }

    fn finish(&mut self) -> Result<Batch, String> {
        let state = self.0.take().ok_or("finish called twice")?;
        let mut out = builders::<A::Output>(1);
        state.finish().push(&mut out)?;
        Ok(finish(1, out))
    }
}

/// Every function of a component, in the order `describe` reports them.
pub struct Registry {
    functions: Vec<Function>,
}

impl Registry {
    /// Holds `functions`, numbered by their position.
    pub fn new(functions: Vec<Function>) -> Self {
        Self { functions }
    }

    fn get(&self, index: u32) -> Result<&Function, String> {
        self.functions.get(index as usize).ok_or_else(|| format!("no function number {index}"))
    }
}

/// A component's list of functions; implemented by [`crate::export_functions!`].
pub trait Plugin: 'static {
    /// The component's functions, built once.
    fn registry() -> &'static Registry;
}

impl<P: Plugin> Guest for P {
    type Invocation = InvocationResource<P>;

    fn describe() -> Vec<FunctionDef> {
        P::registry().functions.iter().map(|f| f.def.clone()).collect()
    }

    fn call(function: u32, input: Batch) -> Result<Batch, String> {
        match &P::registry().get(function)?.implementation {
            Implementation::PerBatch(f) => f(input),
            Implementation::PerCall(_) => Err(format!("function number {function} is per-call")),
        }
    }
}

/// The guest side of the WIT `invocation` resource.
#[doc(hidden)]
pub struct InvocationResource<P> {
    // The WIT methods take `&self`; the state is touched by one call at a time.
    state: RefCell<Result<Box<dyn Invocation>, String>>,
    plugin: PhantomData<P>,
}

impl<P: Plugin> GuestInvocation for InvocationResource<P> {
    fn new(function: u32) -> Self {
        let state = P::registry().get(function).and_then(|f| match &f.implementation {
            Implementation::PerCall(make) => Ok(make()),
            Implementation::PerBatch(_) => Err(format!("function number {function} is per-batch")),
        });
        Self { state: RefCell::new(state), plugin: PhantomData }
    }

    fn update(&self, input: Batch) -> Result<Batch, String> {
        self.state.borrow_mut().as_mut().map_err(|e| e.clone())?.update(input)
    }

    fn finish(&self) -> Result<Batch, String> {
        self.state.borrow_mut().as_mut().map_err(|e| e.clone())?.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;

    #[derive(Default)]
    struct Mean(f64, f64);

    impl Aggregate for Mean {
        type Args = f64;
        type Output = Result<f64, String>;
        fn update(&mut self, x: f64) {
            self.0 += x;
            self.1 += 1.0;
        }
        fn finish(self) -> Result<f64, String> {
            if self.1 == 0.0 { Err("no rows".into()) } else { Ok(self.0 / self.1) }
        }
    }

    fn per_call(function: &Function) -> Box<dyn Invocation> {
        match &function.implementation {
            Implementation::PerCall(make) => make(),
            Implementation::PerBatch(_) => panic!("{} is per-batch", function.def.name),
        }
    }

    #[test]
    fn declarations_follow_the_signature_and_the_builder() {
        let f = Function::tensor("Pair", |a: f64, b: String| (a, b))
            .params(["a", "b", "ignored"])
            .table("Pairs", ["Number", "Text"])
            .describe("pairs")
            .not_cacheable();
        let def = f.def();
        assert_eq!(
            (def.function_type, def.mode, def.return_type),
            (FunctionType::Tensor, Mode::PerBatch, DataType::Numeric)
        );
        let params: Vec<_> = def.params.iter().map(|p| (p.name.as_str(), p.data_type)).collect();
        assert_eq!(params, [("a", DataType::Numeric), ("b", DataType::Text)]);
        let table = def.table.as_ref().expect("a table");
        let fields: Vec<_> = table.fields.iter().map(|f| (f.name.as_str(), f.data_type)).collect();
        assert_eq!(
            (table.name.as_str(), fields),
            ("Pairs", vec![("Number", DataType::Numeric), ("Text", DataType::Text)])
        );
        assert_eq!((def.description.as_str(), def.cacheable), ("pairs", false));

        let scalar = Function::scalar("Half", |x: f64| x / 2.0);
        assert_eq!(scalar.def().params[0].name, "arg1");
        assert!(scalar.def().table.is_none() && scalar.def().cacheable);
    }

    #[test]
    fn an_aggregation_takes_every_batch_then_answers_one_row() {
        let f = Function::aggregate::<Mean>("Mean");
        assert_eq!((f.def().function_type, f.def().mode), (FunctionType::Aggregation, Mode::PerCall));
        assert_eq!(Function::aggregate::<Mean>("M").as_tensor().def().function_type, FunctionType::Tensor);
        let mut call = per_call(&f);
        for rows in [vec![1.0, 2.0], vec![], vec![6.0]] {
            let batch = Batch { rows: rows.len() as u32, columns: vec![Column::Numeric(rows)] };
            assert_eq!(call.update(batch).expect("takes rows").rows, 0, "nothing is answered before the end");
        }
        let answer = call.finish().expect("answers");
        assert_eq!(answer.rows, 1);
        assert!(matches!(&answer.columns[0], Column::Numeric(n) if n == &[3.0]));
        assert_eq!(call.finish().unwrap_err(), "finish called twice");
        assert_eq!(per_call(&f).finish().unwrap_err(), "no rows", "the aggregate's own error fails the call");
    }
}
