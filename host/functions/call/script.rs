//! One evaluation of a script (`EvaluateScript`): every request message decoded with the script's
//! parameter types and fed to a fresh instance of its engine, then the answer's columns checked
//! against the script's return type (or the table it describes, if it describes one), and its
//! rows, as many as it answered, encoded into capped messages after that table.

use bytes::Bytes;

use crate::error::CallError;
use crate::model::script::LABEL;
use crate::model::{DataType, Script, ScriptAnswer, ScriptTable};
use crate::wasm::{CancelFlag, Evaluation, ScriptEngine};
use crate::wire::codec::EncodedRows;

use super::{CallStats, decode, encode};

/// Runs `script` on `engine`: feeds it every request message from `next`, then hands the table
/// its answer describes (if any) to `table`, and its answer, split into messages, to `send`.
pub fn run<N, T, S>(
    engine: &ScriptEngine,
    script: &Script,
    cancel: CancelFlag,
    mut next: N,
    table: T,
    mut send: S,
) -> Result<CallStats, CallError>
where
    N: FnMut() -> Result<Option<Bytes>, CallError>,
    T: FnOnce(Option<&ScriptTable>),
    S: FnMut(EncodedRows) -> Result<(), CallError>,
{
    let params: Vec<DataType> = script.params.iter().map(|(_, t)| *t).collect();
    let mut evaluation = engine.evaluate(script, cancel)?;
    let mut stats = CallStats::default();
    while let Some(message) = next()? {
        stats.rows_in += match &mut evaluation {
            Evaluation::Component(evaluation) => {
                let batch = decode(LABEL, &message, &params)?;
                let rows = batch.rows;
                evaluation.update(batch)?;
                rows
            }
            // Every row is kept in the host until the end: decoded straight onto those kept.
            Evaluation::DataSci(evaluation) => evaluation.kept().keep(&message)?,
        };
    }
    let answer = evaluation.finish()?;
    check(script, &answer)?;
    stats.rows_out = answer.batch.rows;
    table(answer.table.as_ref());
    encode(LABEL, &answer.batch, &mut send)?;
    Ok(stats)
}

/// A script's answer must have columns of its return type (or, when it describes its table, one
/// column per field, of the field's type). Its rows go to Qlik as the script answered them, as in
/// Qlik's own script examples, whatever their number: Qlik pads a chart's column with nulls or
/// drops the rows past its input, and keeps every row in `LOAD ... EXTENSION`.
fn check(script: &Script, answer: &ScriptAnswer) -> Result<(), CallError> {
    let wrong = |message: String| CallError::Guest { function: LABEL.to_owned(), message };
    let (answer, table) = (&answer.batch, &answer.table);
    if answer.columns.is_empty() {
        return Err(wrong("the script answered no columns".to_owned()));
    }
    if let Some(table) = table {
        let types: Vec<DataType> = table.fields.iter().map(|f| f.data_type).collect();
        answer
            .check(&types)
            .map_err(|reason| wrong(format!("the answer does not fit its TableDescription: {reason}")))?;
    } else {
        let types = vec![script.return_type; answer.columns.len()];
        answer.check(&types).map_err(|reason| wrong(format!("the answer does not fit the return type: {reason}")))?;
    }
    Ok(())
}
