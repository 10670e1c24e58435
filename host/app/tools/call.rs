//! `sse-wasm call`: loads a module exactly as the server does and runs one of its functions
//! under the server's limits, with rows from the command line or CSV, or with the messages of a
//! captured call (`--replay`), decoded as the server decodes them.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use prost::Message;

use crate::functions::call;
use crate::functions::registry::{Registry, function_id};
use crate::model::DataType;
use crate::wasm::{CacheLocation, CallControl, Limits, Runtime};
use crate::wire::pb;

use super::inspect::load;

/// One input value for a parameter of type `data_type`, as Qlik would send it.
fn dual(value: &str, data_type: DataType) -> pb::Dual {
    let number = value.trim().parse::<f64>().unwrap_or(f64::NAN);
    match data_type {
        DataType::Numeric => pb::Dual { num_data: number, str_data: String::new() },
        DataType::Text => pb::Dual { num_data: 0.0, str_data: value.to_owned() },
        DataType::Dual => pb::Dual { num_data: number, str_data: value.to_owned() },
    }
}

fn show(dual: &pb::Dual, data_type: DataType) -> String {
    match data_type {
        DataType::Numeric => dual.num_data.to_string(),
        DataType::Text => dual.str_data.clone(),
        DataType::Dual => format!("{} ({})", dual.str_data, dual.num_data),
    }
}

/// What a call is given.
pub enum Input {
    /// Rows of values, one per parameter each, as text.
    Rows(Vec<Vec<String>>),
    /// Request messages as Qlik sent them (a capture's).
    Messages(Vec<bytes::Bytes>),
}

/// Calls `function` of `path` with `input` and writes the answer to `out`: a header of result
/// column names, then one tab-separated line per row.
pub fn call(
    path: &Path,
    function: &str,
    input: Input,
    limits: Limits,
    cache: Option<&CacheLocation>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let runtime = Runtime::new(limits)?;
    let guest = load(&runtime, cache, path)?;
    let registry = Registry::new(vec![Arc::new(guest)]);
    let Some(entry) = registry.get(function_id(function)).filter(|e| e.def().name == function) else {
        let names: Vec<&str> = registry.entries().iter().map(|e| e.def().name.as_str()).collect();
        anyhow::bail!("{} has no function {function}; it has: {}", path.display(), names.join(", "));
    };
    let def = entry.def();
    let params = def.param_types();
    let messages = match input {
        Input::Messages(messages) => messages,
        Input::Rows(rows) => {
            let mut request = pb::BundledRows::default();
            for (line, values) in rows.iter().enumerate() {
                anyhow::ensure!(
                    values.len() == params.len(),
                    "row {} has {} value(s); {function} takes {} parameter(s)",
                    line + 1,
                    values.len(),
                    params.len()
                );
                request.rows.push(pb::Row { duals: values.iter().zip(&params).map(|(v, &t)| dual(v, t)).collect() });
            }
            vec![bytes::Bytes::from(request.encode_to_vec())]
        }
    };
    let mut messages = messages.into_iter();
    let mut answers = Vec::new();
    let result = call::function::run(
        &runtime,
        entry,
        CallControl::default(),
        None,
        || Ok(messages.next()),
        |message| {
            answers.push(message.0);
            Ok(())
        },
    );
    result.map_err(|error| {
        let status = error.to_status();
        anyhow::anyhow!("{:?}: {}", status.code(), status.message())
    })?;
    let results = def.result_types();
    let names: Vec<String> = match &def.table {
        Some(table) => table.fields.iter().map(|(name, _)| name.clone()).collect(),
        None => vec![def.name.clone()],
    };
    writeln!(out, "{}", names.join("\t"))?;
    for answer in answers {
        for row in pb::BundledRows::decode(answer)?.rows {
            let cells: Vec<String> = row.duals.iter().zip(&results).map(|(d, &t)| show(d, t)).collect();
            writeln!(out, "{}", cells.join("\t"))?;
        }
    }
    Ok(())
}

/// The messages of the capture file `file`, for [`call`] of `function`; what the capture holds
/// (the app, the messages, whether it was cut) is written to `note`.
pub fn replay_input(file: &Path, function: &str, note: &mut impl Write) -> anyhow::Result<Input> {
    let captured = crate::server::capture::read(file)?;
    let app = captured
        .headers
        .iter()
        .find(|(name, _)| name == pb::COMMON_HEADER)
        .and_then(|(_, value)| pb::CommonRequestHeader::decode(&value[..]).ok())
        .map_or_else(|| "?".to_owned(), |common| common.app_id);
    writeln!(
        note,
        "replaying a call of {} from app {app:?}: {} message(s)",
        captured.function,
        captured.messages.len()
    )?;
    if captured.function != function {
        writeln!(note, "warning: the capture is of {}, replayed as {function}", captured.function)?;
    }
    if captured.cut {
        writeln!(note, "warning: the capture was cut at --capture-max-mib: its later messages are missing")?;
    }
    Ok(Input::Messages(captured.messages))
}

/// Reads CSV rows (RFC 4180: quoted values may hold commas, quotes and line breaks; no header
/// row; blank lines skipped), one value per parameter each, surrounding spaces trimmed.
pub fn csv_rows(input: impl std::io::Read) -> anyhow::Result<Vec<Vec<String>>> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(input);
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| anyhow::anyhow!("CSV row {}: {e}", line + 1))?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_values_may_be_quoted() {
        let rows = csv_rows("1, a\n\n\"2,5\",\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n".as_bytes()).expect("valid CSV");
        assert_eq!(rows, [vec!["1", "a"], vec!["2,5", "say \"hi\""], vec!["3", "two\nlines"]]);
    }
}
