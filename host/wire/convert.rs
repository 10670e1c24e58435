//! Between the generated protobuf types and the host's own: enum values, the function
//! definitions GetCapabilities lists, a table function's `TableDescription`, and the script of
//! a `ScriptRequestHeader`. Unknown enum values from a client are refused here, with a message
//! naming the field.

use crate::model::{DataType, FunctionDef, FunctionType, Script, ScriptTable};

use super::pb;

impl From<DataType> for pb::DataType {
    fn from(t: DataType) -> Self {
        match t {
            DataType::Text => Self::String,
            DataType::Numeric => Self::Numeric,
            DataType::Dual => Self::Dual,
        }
    }
}

impl From<pb::DataType> for DataType {
    fn from(t: pb::DataType) -> Self {
        match t {
            pb::DataType::String => Self::Text,
            pb::DataType::Numeric => Self::Numeric,
            pb::DataType::Dual => Self::Dual,
        }
    }
}

impl From<FunctionType> for pb::FunctionType {
    fn from(t: FunctionType) -> Self {
        match t {
            FunctionType::Scalar => Self::Scalar,
            FunctionType::Aggregation => Self::Aggregation,
            FunctionType::Tensor => Self::Tensor,
        }
    }
}

impl From<pb::FunctionType> for FunctionType {
    fn from(t: pb::FunctionType) -> Self {
        match t {
            pb::FunctionType::Scalar => Self::Scalar,
            pb::FunctionType::Aggregation => Self::Aggregation,
            pb::FunctionType::Tensor => Self::Tensor,
        }
    }
}

/// How GetCapabilities lists `def`, served under `id`.
pub fn function_definition(def: &FunctionDef, id: i32) -> pb::FunctionDefinition {
    pb::FunctionDefinition {
        name: def.name.clone(),
        function_type: pb::FunctionType::from(def.function_type).into(),
        return_type: pb::DataType::from(def.return_type).into(),
        params: def
            .params
            .iter()
            .map(|(name, t)| pb::Parameter { data_type: pb::DataType::from(*t).into(), name: name.clone() })
            .collect(),
        function_id: id,
    }
}

/// The `TableDescription` a table function's answer carries in its headers; `None` for other
/// functions.
pub fn table_description(def: &FunctionDef) -> Option<pb::TableDescription> {
    let table = def.table.as_ref()?;
    Some(pb::TableDescription {
        fields: table
            .fields
            .iter()
            .map(|(name, t)| pb::FieldDescription {
                data_type: pb::DataType::from(*t).into(),
                name: name.clone(),
                tags: Vec::new(),
            })
            .collect(),
        name: table.name.clone(),
        number_of_rows: i64::from(def.function_type == FunctionType::Aggregation),
    })
}

/// The TableDescription a script described.
pub fn script_table(table: &ScriptTable) -> pb::TableDescription {
    pb::TableDescription {
        fields: table
            .fields
            .iter()
            .map(|field| pb::FieldDescription {
                data_type: pb::DataType::from(field.data_type).into(),
                name: field.name.clone(),
                tags: field.tags.clone(),
            })
            .collect(),
        name: table.name.clone(),
        number_of_rows: table.number_of_rows,
    }
}

/// The script a `ScriptRequestHeader` carries; an unknown enum value is refused with a message
/// naming the field.
pub fn script(header: pb::ScriptRequestHeader) -> Result<Script, String> {
    let data_type = |value: i32, what: &str| {
        pb::DataType::try_from(value)
            .map(DataType::from)
            .map_err(|_| format!("{what} has the unknown data type {value}"))
    };
    let function_type = pb::FunctionType::try_from(header.function_type)
        .map_err(|_| format!("the script has the unknown function type {}", header.function_type))?;
    let params = header
        .params
        .into_iter()
        .map(|p| Ok((p.name.clone(), data_type(p.data_type, &format!("parameter {:?}", p.name))?)))
        .collect::<Result<_, String>>()?;
    Ok(Script {
        text: header.script,
        params,
        function_type: function_type.into(),
        return_type: data_type(header.return_type, "the script")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_in_the_script_header_are_refused() {
        let header = pb::ScriptRequestHeader { script: "1".into(), function_type: 7, ..Default::default() };
        assert!(script(header).unwrap_err().contains("function type 7"));
        let header = pb::ScriptRequestHeader { script: "1".into(), return_type: 9, ..Default::default() };
        assert!(script(header).unwrap_err().contains("data type 9"));
        let header = pb::ScriptRequestHeader {
            script: "1".into(),
            params: vec![pb::Parameter { data_type: 5, name: "x".into() }],
            ..Default::default()
        };
        assert!(script(header).unwrap_err().contains("parameter \"x\" has the unknown data type 5"));
    }

    #[test]
    fn the_models_type_names_are_qliks() {
        for t in [DataType::Text, DataType::Numeric, DataType::Dual] {
            assert_eq!(t.name(), pb::DataType::from(t).as_str_name());
            assert_eq!(DataType::from(pb::DataType::from(t)), t);
        }
        for t in [FunctionType::Scalar, FunctionType::Aggregation, FunctionType::Tensor] {
            assert_eq!(FunctionType::from(pb::FunctionType::from(t)), t);
        }
    }
}
