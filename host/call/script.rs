//! One evaluation of a script (`EvaluateScript`): every request message decoded with the script's
//! parameter types and fed to a fresh instance of its engine, then the answer checked against
//! what the script's function type promises and encoded into capped messages.

use bytes::Bytes;

use crate::error::CallError;
use crate::model::{Batch, DataType, FunctionType, Script};
use crate::wasm::script_engine::LABEL;
use crate::wasm::{CancelFlag, ScriptEngine};
use crate::wire::codec::EncodedRows;

use super::{CallStats, decode, encode};

/// Runs `script` on `engine`: feeds it every request message from `next`, then hands its answer,
/// split into messages, to `send`.
pub fn run<N, S>(
    engine: &ScriptEngine,
    script: &Script,
    cancel: CancelFlag,
    mut next: N,
    mut send: S,
) -> Result<CallStats, CallError>
where
    N: FnMut() -> Result<Option<Bytes>, CallError>,
    S: FnMut(EncodedRows) -> Result<(), CallError>,
{
    let params: Vec<DataType> = script.params.iter().map(|(_, t)| *t).collect();
    let mut evaluation = engine.evaluate(script, cancel)?;
    let mut stats = CallStats::default();
    while let Some(message) = next()? {
        let batch = decode(LABEL, &message, &params)?;
        stats.rows_in += batch.rows;
        evaluation.update(batch)?;
    }
    let answer = evaluation.finish()?;
    check(script, &answer, stats.rows_in)?;
    stats.rows_out = answer.rows;
    encode(LABEL, &answer, &mut send)?;
    Ok(stats)
}

/// A script's answer must have the rows its function type promises, in columns of its return type.
fn check(script: &Script, answer: &Batch, rows_in: usize) -> Result<(), CallError> {
    let wrong = |message: String| CallError::Guest { function: LABEL.to_owned(), message };
    if answer.columns.is_empty() {
        return Err(wrong("the script answered no columns".to_owned()));
    }
    let types = vec![script.return_type; answer.columns.len()];
    answer.check(&types).map_err(|reason| wrong(format!("the answer does not fit the return type: {reason}")))?;
    if let Some(expected) = script.expected_rows(rows_in)
        && answer.rows != expected
    {
        let function = match script.function_type {
            FunctionType::Aggregation => "an aggregation (ScriptAggr)",
            _ => "a row-wise script (ScriptEval)",
        };
        return Err(wrong(format!(
            "the script answered {} rows for {rows_in} input rows; {function} answers {expected}",
            answer.rows
        )));
    }
    Ok(())
}
