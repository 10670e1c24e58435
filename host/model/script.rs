//! The script of one `EvaluateScript` call, as Qlik's `ScriptRequestHeader` describes it.

use super::batch::{Batch, DataType};
use super::function::FunctionType;

/// The script of one `EvaluateScript` call, from its `ScriptRequestHeader`.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    /// The text as written in the expression.
    pub text: String,
    /// Parameter names and types, in order.
    pub params: Vec<(String, DataType)>,
    /// Scalar, aggregation or tensor.
    pub function_type: FunctionType,
    /// The type of every answer column.
    pub return_type: DataType,
}

/// The name scripts go by in logs and messages (Qlik does not say which script function it was).
pub const LABEL: &str = "script";

/// Checks the language a script engine names: a short lower-case name such as "python", which
/// a script's first line `#!python` asks for.
pub fn check_language(language: &str) -> Result<(), String> {
    if language.is_empty()
        || language.len() > 32
        || !language.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(format!("the script language {language:?} is not a short lower-case name such as \"python\""));
    }
    Ok(())
}

/// A script's answer: its rows, and the TableDescription the script asked to send with them.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptAnswer {
    /// The rows.
    pub batch: Batch,
    /// Set when the script described its answer's table (`tableDescription = True`).
    pub table: Option<ScriptTable>,
}

/// The table a script describes: Qlik's `TableDescription`, which names a `Load ... Extension`
/// statement's fields and types the answer's columns.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptTable {
    /// The table's name.
    pub name: String,
    /// One per answer column.
    pub fields: Vec<ScriptField>,
    /// What the script set as the table's number of rows.
    pub number_of_rows: i64,
}

/// One field of a [`ScriptTable`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptField {
    /// The field's name.
    pub name: String,
    /// Its data type, which is its answer column's type.
    pub data_type: DataType,
    /// Its tags.
    pub tags: Vec<String>,
}

impl Script {
    /// The language its first line asks for (`#!python` asks for `python`), if any.
    pub fn marker(&self) -> Option<String> {
        let first = self.text.trim_start().lines().next()?;
        let language = first.strip_prefix("#!")?.trim();
        (!language.is_empty()).then(|| language.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str) -> Script {
        Script {
            text: text.to_owned(),
            params: Vec::new(),
            function_type: FunctionType::Scalar,
            return_type: DataType::Numeric,
        }
    }

    #[test]
    fn the_first_line_names_the_language() {
        assert_eq!(script("#!python\nsum(args[0])").marker().as_deref(), Some("python"));
        assert_eq!(script("  #! JavaScript \n1").marker().as_deref(), Some("javascript"));
        assert_eq!(script("sum(args[0])").marker(), None);
        assert_eq!(script("#!\n1").marker(), None);
        assert_eq!(script("").marker(), None);
    }
}
