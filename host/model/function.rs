//! A function as a component (or the host) declares it, and the rules every declaration obeys.

use super::batch::DataType;

/// Qlik's function types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FunctionType {
    /// One answer row per input row.
    Scalar,
    /// One answer row for all input rows.
    Aggregation,
    /// Any number of answer rows (one per input row unless the function is a table).
    Tensor,
}

/// The most functions one component may declare.
pub const MAX_FUNCTIONS: usize = 1000;
/// The longest function, parameter or field name accepted.
const MAX_NAME: usize = 128;
/// The most parameters or table fields one function may declare.
const MAX_COLUMNS: usize = 256;

/// How the host drives a function over the batches of a call (see `wit/sse.wit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `call` per batch, answered at once, row-aligned.
    PerBatch,
    /// One `invocation` per call: `update` per batch, then `finish`.
    PerCall,
}

/// The output columns of a table function.
#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    /// The table's name.
    pub name: String,
    /// Column names and types, in order.
    pub fields: Vec<(String, DataType)>,
}

/// One function as a component declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionDef {
    /// The name Qlik users call it by.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// Qlik's function type.
    pub function_type: FunctionType,
    /// The type of the (first) result column.
    pub return_type: DataType,
    /// Parameter names and types, in order.
    pub params: Vec<(String, DataType)>,
    /// How the host drives it.
    pub mode: Mode,
    /// The output columns of a table function.
    pub table: Option<TableDef>,
    /// False when Qlik must not cache its answers.
    pub cacheable: bool,
}

impl FunctionDef {
    /// The parameter types, in order.
    pub fn param_types(&self) -> Vec<DataType> {
        self.params.iter().map(|(_, t)| *t).collect()
    }

    /// The result column types, in order.
    pub fn result_types(&self) -> Vec<DataType> {
        match &self.table {
            Some(table) => table.fields.iter().map(|(_, t)| *t).collect(),
            None => vec![self.return_type],
        }
    }

    /// How many rows the whole call must answer for `rows_in` input rows; `None` when any number
    /// is allowed (table functions driven per call).
    pub fn expected_rows(&self, rows_in: usize) -> Option<usize> {
        match (self.function_type, self.mode, &self.table) {
            (FunctionType::Aggregation, ..) => Some(1),
            (_, Mode::PerCall, Some(_)) => None,
            _ => Some(rows_in),
        }
    }

    /// Checks the declaration against the rules of the WIT world.
    pub(crate) fn validate(&self) -> Result<(), String> {
        check_identifier(&self.name).map_err(|e| format!("function name {:?} {e}", self.name))?;
        let name = &self.name;
        if self.description.len() > 4096 {
            return Err(format!("{name}: the description is longer than 4096 bytes"));
        }
        if self.function_type == FunctionType::Aggregation && self.mode != Mode::PerCall {
            return Err(format!("{name}: an aggregation must be per-call (it answers once, after every row)"));
        }
        if self.params.len() > MAX_COLUMNS {
            return Err(format!("{name}: {} parameters, more than {MAX_COLUMNS}", self.params.len()));
        }
        for (param, _) in &self.params {
            check_label(param).map_err(|e| format!("{name}: parameter name {param:?} {e}"))?;
        }
        if let Some(table) = &self.table {
            check_label(&table.name).map_err(|e| format!("{name}: table name {:?} {e}", table.name))?;
            if table.fields.is_empty() || table.fields.len() > MAX_COLUMNS {
                return Err(format!("{name}: a table needs 1 to {MAX_COLUMNS} fields, not {}", table.fields.len()));
            }
            for (field, _) in &table.fields {
                check_label(field).map_err(|e| format!("{name}: field name {field:?} {e}"))?;
            }
            if table.fields[0].1 != self.return_type {
                return Err(format!("{name}: the return type differs from the type of the table's first field"));
            }
        }
        Ok(())
    }
}

/// Function names: letters, digits and underscore (Qlik's rule), not starting with a digit.
fn check_identifier(name: &str) -> Result<(), &'static str> {
    check_label(name)?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("starts with a digit");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("has characters other than letters, digits and underscore");
    }
    Ok(())
}

/// Parameter, table and field names: shown to people, so printable and short.
fn check_label(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > MAX_NAME {
        return Err("is longer than 128 bytes");
    }
    if name.chars().any(char::is_control) {
        return Err("has control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_qliks_rules() {
        assert!(check_identifier("MaxOfColumns_2").is_ok());
        assert!(check_identifier("_x").is_ok());
        assert_eq!(check_identifier(""), Err("is empty"));
        assert_eq!(check_identifier("2x"), Err("starts with a digit"));
        assert!(check_identifier("Sum Of").is_err());
        assert!(check_identifier("Summe_ä").is_err());
        assert!(check_identifier(&"x".repeat(129)).is_err());
    }
}
