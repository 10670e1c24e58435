//! One call of one function: request messages decoded into typed columns as they arrive, fed to
//! the implementation (a fresh Wasm instance, or native code), every answer checked against the
//! declaration and encoded into capped messages.

use bytes::Bytes;

use crate::error::CallError;
use crate::functions::registry::{Entry, Implementation};
use crate::model::{Batch, FunctionDef, FunctionType, Mode};
use crate::wasm::{AppModels, CallControl, Runtime};
use crate::wire::codec::EncodedRows;

#[cfg(feature = "native")]
use super::native;
use super::{Backend, CallStats, decode, encode};

/// Runs one call of `entry`: reads request messages with `next` until it returns `None`, and
/// hands every answer message to `send`, which fails once nobody listens. `models` is the
/// calling app's view of the model store, if the host keeps one.
pub fn run<N, S>(
    runtime: &Runtime,
    entry: &Entry,
    control: CallControl,
    models: Option<AppModels>,
    next: N,
    send: S,
) -> Result<CallStats, CallError>
where
    N: FnMut() -> Result<Option<Bytes>, CallError>,
    S: FnMut(EncodedRows) -> Result<(), CallError>,
{
    let def = entry.def();
    match &entry.implementation {
        Implementation::Wasm { guest, index } => match guest.python() {
            // A Python function file: the data-science engine runs it.
            Some(file) => run_on(def, file.call(def, control, models), next, send),
            None => {
                let mut instance = guest.instantiate(runtime, *index, &control, models)?;
                let result = run_on(def, &mut instance, next, send);
                // A call that failed (or outgrew its thread, to run again on another) frees its
                // slot at once.
                if result.is_ok() {
                    instance.retire();
                }
                result
            }
        },
        #[cfg(feature = "native")]
        Implementation::Native(function) => run_on(def, native::Native::new(function.as_ref()), next, send),
    }
}

/// The protocol of a call, whatever runs the code: decode each request message with the
/// parameter types, feed the backend, check each answer against the declaration, encode it.
pub(crate) fn run_on<B, N, S>(
    def: &FunctionDef,
    mut backend: B,
    mut next: N,
    mut send: S,
) -> Result<CallStats, CallError>
where
    B: Backend,
    N: FnMut() -> Result<Option<Bytes>, CallError>,
    S: FnMut(EncodedRows) -> Result<(), CallError>,
{
    let name = def.name.as_str();
    let (params, results) = (def.param_types(), def.result_types());
    let mut stats = CallStats::default();
    let bad_output = |reason: String| CallError::BadOutput { function: name.to_owned(), reason };
    let guest_error = |message: String| CallError::Guest { function: name.to_owned(), message };
    let take = |message: Bytes, stats: &mut CallStats| {
        let batch = decode(name, &message, &params)?;
        stats.rows_in += batch.rows;
        Ok::<_, CallError>(batch)
    };
    let mut answer = |batch: Batch, stats: &mut CallStats| {
        batch.check(&results).map_err(bad_output)?;
        stats.rows_out += batch.rows;
        if def.function_type == FunctionType::Aggregation && stats.rows_out > 1 {
            return Err(bad_output(format!("{} rows where an aggregation answers 1", stats.rows_out)));
        }
        encode(name, &batch, &mut send)
    };

    match def.mode {
        Mode::PerBatch => {
            while let Some(message) = next()? {
                let batch = take(message, &mut stats)?;
                let rows = batch.rows;
                if rows > 0 {
                    let output = backend.call(batch)?.map_err(guest_error)?;
                    if output.rows != rows {
                        return Err(bad_output(format!("{} rows for a batch of {rows}", output.rows)));
                    }
                    answer(output, &mut stats)?;
                }
            }
        }
        Mode::PerCall => {
            backend.start()?;
            while let Some(message) = next()? {
                let (rows, output) = backend.update(name, &message, &params)?;
                stats.rows_in += rows;
                answer(output.map_err(guest_error)?, &mut stats)?;
            }
            let output = backend.finish()?.map_err(guest_error)?;
            answer(output, &mut stats)?;
        }
    }

    if let Some(expected) = def.expected_rows(stats.rows_in)
        && stats.rows_out != expected
    {
        return Err(bad_output(format!(
            "{} rows in all for {} input rows (expected {expected})",
            stats.rows_out, stats.rows_in
        )));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use prost::Message;

    use super::*;
    use crate::functions::call::Fed;
    use crate::model::{Column, DataType, TableDef};
    use crate::wire::pb;

    /// A backend whose answers are scripted, and which records what it was asked.
    #[derive(Default)]
    struct Fake {
        answers: VecDeque<Answer>,
        seen: Vec<String>,
    }

    type Answer = crate::functions::call::Answer;

    impl Fake {
        fn answering(answers: impl IntoIterator<Item = Answer>) -> Self {
            Self { answers: answers.into_iter().collect(), seen: Vec::new() }
        }
        fn next(&mut self, what: String) -> Answer {
            self.seen.push(what);
            self.answers.pop_front().expect("the test scripted an answer")
        }
    }

    impl Backend for &mut Fake {
        fn call(&mut self, input: Batch) -> Answer {
            self.next(format!("call {}", input.rows))
        }
        fn start(&mut self) -> Result<(), CallError> {
            self.seen.push("start".into());
            Ok(())
        }
        fn update(&mut self, function: &str, message: &[u8], params: &[DataType]) -> Fed {
            super::super::update_with(function, message, params, |batch| self.next(format!("update {}", batch.rows)))
        }
        fn finish(&mut self) -> Answer {
            self.next("finish".into())
        }
    }

    fn def(function_type: FunctionType, mode: Mode) -> FunctionDef {
        FunctionDef {
            name: "F".into(),
            description: String::new(),
            function_type,
            return_type: DataType::Numeric,
            params: vec![("x".into(), DataType::Numeric)],
            mode,
            table: None,
            cacheable: true,
        }
    }

    fn request(values: &[f64]) -> Bytes {
        let rows = values.iter().map(|&n| pb::Row { duals: vec![pb::Dual { num_data: n, str_data: String::new() }] });
        pb::BundledRows { rows: rows.collect() }.encode_to_vec().into()
    }

    fn numbers(values: &[f64]) -> Answer {
        Ok(Ok(Batch { rows: values.len(), columns: vec![Column::Numeric(values.to_vec())] }))
    }

    /// Runs `def` on `fake` over `requests`; the answered numbers, in order.
    fn run(def: &FunctionDef, fake: &mut Fake, requests: &[&[f64]]) -> Result<(Vec<f64>, CallStats), CallError> {
        let mut requests: VecDeque<Bytes> = requests.iter().map(|r| request(r)).collect();
        let mut answered = Vec::new();
        let stats = run_on(
            def,
            fake,
            || Ok(requests.pop_front()),
            |message: EncodedRows| {
                let rows = pb::BundledRows::decode(message.0).expect("prost reads the answer").rows;
                answered.extend(rows.iter().map(|r| r.duals[0].num_data));
                Ok(())
            },
        )?;
        Ok((answered, stats))
    }

    #[test]
    fn per_batch_answers_each_batch_and_skips_empty_ones() {
        let mut fake = Fake::answering([numbers(&[2.0, 4.0]), numbers(&[6.0])]);
        let (answered, stats) = run(&def(FunctionType::Scalar, Mode::PerBatch), &mut fake, &[&[1.0, 2.0], &[], &[3.0]])
            .expect("the call succeeds");
        assert_eq!(answered, [2.0, 4.0, 6.0]);
        assert_eq!(stats, CallStats { rows_in: 3, rows_out: 3 });
        assert_eq!(fake.seen, ["call 2", "call 1"], "an empty batch never reaches the code");
    }

    #[test]
    fn per_call_starts_updates_and_finishes() {
        let mut fake = Fake::answering([numbers(&[]), numbers(&[]), numbers(&[5.0])]);
        let (answered, stats) =
            run(&def(FunctionType::Aggregation, Mode::PerCall), &mut fake, &[&[1.0, 2.0], &[2.0]]).expect("succeeds");
        assert_eq!((answered, stats), (vec![5.0], CallStats { rows_in: 3, rows_out: 1 }));
        assert_eq!(fake.seen, ["start", "update 2", "update 1", "finish"]);
    }

    #[test]
    fn answers_that_break_the_declaration_are_refused() {
        let scalar = def(FunctionType::Scalar, Mode::PerBatch);
        let error = run(&scalar, &mut Fake::answering([numbers(&[1.0])]), &[&[1.0, 2.0]]).unwrap_err();
        assert!(
            matches!(&error, CallError::BadOutput { reason, .. } if reason == "1 rows for a batch of 2"),
            "{error}"
        );

        let aggregation = def(FunctionType::Aggregation, Mode::PerCall);
        let error = run(&aggregation, &mut Fake::answering([numbers(&[1.0, 2.0])]), &[&[1.0]]).unwrap_err();
        assert!(error.to_string().contains("2 rows where an aggregation answers 1"), "{error}");
        let error = run(&aggregation, &mut Fake::answering([numbers(&[]), numbers(&[])]), &[&[1.0]]).unwrap_err();
        assert!(error.to_string().contains("0 rows in all for 1 input rows (expected 1)"), "{error}");

        let text = Ok(Ok(Batch { rows: 1, columns: vec![Column::Text(Default::default())] }));
        let error = run(&scalar, &mut Fake::answering([text]), &[&[1.0]]).unwrap_err();
        assert!(error.to_string().contains("result column 0"), "{error}");
    }

    #[test]
    fn a_table_driven_per_call_may_answer_any_number_of_rows() {
        let mut table = def(FunctionType::Tensor, Mode::PerCall);
        table.table = Some(TableDef { name: "T".into(), fields: vec![("v".into(), DataType::Numeric)] });
        let mut fake = Fake::answering([numbers(&[]), numbers(&[1.0, 2.0, 3.0])]);
        let (answered, _) = run(&table, &mut fake, &[&[9.0]]).expect("succeeds");
        assert_eq!(answered, [1.0, 2.0, 3.0]);
    }

    #[test]
    fn errors_of_the_code_and_faults_name_the_function() {
        let scalar = def(FunctionType::Scalar, Mode::PerBatch);
        let error = run(&scalar, &mut Fake::answering([Ok(Err("division by zero".into()))]), &[&[1.0]]).unwrap_err();
        assert!(
            matches!(&error, CallError::Guest { function, message } if function == "F" && message == "division by zero")
        );
        let fault = Err(CallError::Trap { function: "F".into(), trap: "unreachable".into() });
        let error = run(&scalar, &mut Fake::answering([fault]), &[&[1.0]]).unwrap_err();
        assert!(matches!(error, CallError::Trap { .. }));
    }

    #[test]
    fn a_request_that_does_not_fit_the_parameters_is_bad_input() {
        let mut fake = Fake::default();
        let mut requests = VecDeque::from([Bytes::from_static(&[0x0a, 0x05, 0x0a])]);
        let error =
            run_on(&def(FunctionType::Scalar, Mode::PerBatch), &mut fake, || Ok(requests.pop_front()), |_| Ok(()))
                .unwrap_err();
        assert!(matches!(&error, CallError::BadInput { function, .. } if function == "F"), "{error}");
        assert!(fake.seen.is_empty(), "the code never sees a malformed request");
    }
}
