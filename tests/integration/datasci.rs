//! The data-science script engine (`#!pandas`) through EvaluateScript: Qlik's two full-script
//! conventions (numpy expressions over `args`, pandas statements over `q` answering `qResult`,
//! with a TableDescription), scipy and scikit-learn, errors that name the exception and the
//! script's line, the sandbox's limits, and nothing kept from one evaluation to the next; and
//! Python function files (`*.py` in the functions folder) the engine serves as functions.

use std::time::Duration;

use prost::Message;
use sse_wasm::pb::{self, DataType as T, FunctionType as F};
use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::Limits;

use crate::util::*;

const ENGINE: &str = "datasci";

async fn server_with(limits: Limits) -> TestServer {
    TestServer::start_shared(&[ENGINE], limits, ServeOptions::default()).await
}

async fn server() -> TestServer {
    server_with(Limits::default()).await
}

/// The values of every row, column by column, as numbers.
fn number_rows(answer: &Answer) -> Vec<Vec<f64>> {
    answer.rows().iter().map(|r| r.duals.iter().map(|d| d.num_data).collect()).collect()
}

/// No rows: a script without parameters.
fn nothing() -> Vec<pb::BundledRows> {
    Vec::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qliks_numpy_convention_serves_all_eight_script_functions() {
    let server = server().await;
    let mut client = server.client().await;
    let capabilities = client.get_capabilities(pb::Empty {}).await.expect("caps").into_inner();
    assert!(capabilities.allow_script);
    let x = [("X", T::Numeric)];

    // ScriptEval: numpy on the columns, over several bundles; a list comprehension.
    let rows: Vec<pb::Row> = (0..10).map(|i| row(&[V::N(f64::from(i)), V::N(0.5)])).collect();
    let params = [("A", T::Numeric), ("B", T::Numeric)];
    let script = "numpy.asarray(args[0]) + numpy.asarray(args[1])";
    let answer =
        evaluate(&mut client, script, F::Tensor, T::Numeric, &params, bundles(rows, 3)).await.expect("ScriptEval");
    assert_eq!(answer.numbers(), (0..10).map(|i| f64::from(i) + 0.5).collect::<Vec<_>>());
    let answer =
        evaluate(&mut client, "[a * 2 for a in args[0]]", F::Scalar, T::Numeric, &x, bundles(numbers(&[1.0, -2.5]), 1))
            .await
            .expect("scalar");
    assert_eq!(answer.numbers(), [2.0, -5.0]);

    // ScriptAggr over 1000 rows in many bundles.
    let values: Vec<f64> = (1..=1000).map(f64::from).collect();
    let answer =
        evaluate(&mut client, "numpy.sum(args[0])", F::Aggregation, T::Numeric, &x, bundles(numbers(&values), 128))
            .await
            .expect("ScriptAggr");
    assert_eq!(answer.numbers(), [500_500.0]);

    // ScriptEvalStr and ScriptAggrStr.
    let texts = vec![row(&[V::S("äpfel")]), row(&[V::S("b")]), row(&[V::S("")])];
    let s = [("S", T::String)];
    let answer =
        evaluate(&mut client, "[v.upper() for v in args[0]]", F::Scalar, T::String, &s, bundles(texts.clone(), 2))
            .await
            .expect("ScriptEvalStr");
    assert_eq!(answer.strings(), ["ÄPFEL", "B", ""]);
    let answer = evaluate(&mut client, "'|'.join(args[0])", F::Aggregation, T::String, &s, bundles(texts, 2))
        .await
        .expect("ScriptAggrStr");
    assert_eq!(answer.strings(), ["äpfel|b|"]);

    // The Ex variants: a dual parameter arrives as [numbers, texts].
    let params = [("Amount", T::Numeric), ("Name", T::String), ("Day", T::Dual)];
    let rows = vec![
        row(&[V::N(1.5), V::S("a"), V::D(45_000.0, "2023-03-15")]),
        row(&[V::N(2.0), V::S("b"), V::D(45_001.0, "2023-03-16")]),
    ];
    let script = "[n + d for n, d in zip(args[0], args[2][0])]";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &params, bundles(rows.clone(), 1))
        .await
        .expect("ScriptEvalEx");
    assert_eq!(answer.numbers(), [45_001.5, 45_003.0]);
    let script = "[s + '@' + d for s, d in zip(args[1], args[2][1])]";
    let answer = evaluate(&mut client, script, F::Tensor, T::String, &params, bundles(rows.clone(), 1))
        .await
        .expect("ScriptEvalExStr");
    assert_eq!(answer.strings(), ["a@2023-03-15", "b@2023-03-16"]);
    let script = "numpy.ptp(args[2][0]) + numpy.sum(args[0])";
    let answer = evaluate(&mut client, script, F::Aggregation, T::Numeric, &params, bundles(rows.clone(), 1))
        .await
        .expect("ScriptAggrEx");
    assert_eq!(answer.numbers(), [4.5]);
    let script = "args[1][int(numpy.argmax(args[2][0]))]";
    let answer = evaluate(&mut client, script, F::Aggregation, T::String, &params, bundles(rows, 1))
        .await
        .expect("ScriptAggrExStr");
    assert_eq!(answer.strings(), ["b"]);

    // Rows that are lists answer several columns; a 2-D array too.
    let answer = evaluate(
        &mut client,
        "[[a, a * a] for a in args[0]]",
        F::Tensor,
        T::Numeric,
        &x,
        bundles(numbers(&[2.0, 3.0]), 1),
    )
    .await
    .expect("two columns");
    assert_eq!(number_rows(&answer), [[2.0, 4.0], [3.0, 9.0]]);
    let script = "numpy.column_stack([args[0], numpy.cumsum(args[0])])";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &x, bundles(numbers(&[1.0, 2.0, 3.0]), 2))
        .await
        .expect("2-D array");
    assert_eq!(number_rows(&answer), [[1.0, 1.0], [2.0, 3.0], [3.0, 6.0]]);
}

/// Qlik's own load-script example (SSE_Full_Script_Support_pandas.qvf), character for character.
const QLIK_TABLE_SCRIPT: &str = "\ntableDescription = True\t          # tableDescription must be set to True if it should be sent to Qlik
table.name = \"SSETableLoad\"       # Set the table name, note that it is overridden in a table name is specified in the Load Script
num_of_fields = len(q.columns)
for i in range(num_of_fields):    # The number of fields sent back must match the number of fields in the TableDescription
    field = table.fields.add()    # Add a field to the tableDescription   
    field.name = q.columns[i]     # Take the same name as in the data frame recieved from Qlik
    field.dataType = 1            # The datatype of the field is numeric (1)
qResult=q.values                  # Return the same values as retrieved";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qliks_pandas_convention_answers_q_result_and_sends_the_table_description() {
    let server = server().await;
    let mut client = server.client().await;

    // Qlik's table load: the TableDescription comes as a header before the rows.
    let params = [("Id1", T::Numeric), ("Id2", T::Numeric), ("Id3", T::Numeric)];
    let rows: Vec<pb::Row> =
        (1..=5).map(|i| row(&[V::N(f64::from(i)), V::N(f64::from(i) * 10.0), V::N(-1.0)])).collect();
    let answer = evaluate(&mut client, QLIK_TABLE_SCRIPT, F::Tensor, T::Numeric, &params, bundles(rows, 2))
        .await
        .expect("table load");
    let header = answer.metadata.get_bin(pb::TABLE_DESCRIPTION).expect("a TableDescription header");
    let table = pb::TableDescription::decode(header.to_bytes().expect("base64")).expect("decodes");
    assert_eq!(table.name, "SSETableLoad");
    let fields: Vec<(&str, i32)> = table.fields.iter().map(|f| (f.name.as_str(), f.data_type)).collect();
    assert_eq!(fields, [("Id1", T::Numeric as i32), ("Id2", T::Numeric as i32), ("Id3", T::Numeric as i32)]);
    let expected: Vec<Vec<f64>> = (1..=5).map(|i| vec![f64::from(i), f64::from(i) * 10.0, -1.0]).collect();
    assert_eq!(number_rows(&answer), expected);

    // Fields of several types: the answer's columns take the fields' types.
    let params = [("Name", T::String), ("Value", T::Numeric)];
    let rows = vec![row(&[V::S("a"), V::N(1.0)]), row(&[V::S("b"), V::N(2.0)]), row(&[V::S("a"), V::N(4.0)])];
    let script = "table.name = 'Totals'\ntable.fields.add(name='Name', dataType=0)\n\
                  table.fields.add(name='Total', dataType=1)\ntableDescription = True\n\
                  totals = q.groupby('Name', sort=True)['Value'].sum()\n\
                  qResult = list(zip(totals.index, totals.values))";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &params, bundles(rows.clone(), 2))
        .await
        .expect("mixed table");
    let header = answer.metadata.get_bin(pb::TABLE_DESCRIPTION).expect("a TableDescription header");
    let table = pb::TableDescription::decode(header.to_bytes().expect("base64")).expect("decodes");
    assert_eq!(table.name, "Totals");
    assert_eq!(table.fields.iter().map(|f| f.data_type).collect::<Vec<_>>(), [T::String as i32, T::Numeric as i32]);
    let got: Vec<(String, f64)> =
        answer.rows().iter().map(|r| (r.duals[0].str_data.clone(), r.duals[1].num_data)).collect();
    assert_eq!(got, [("a".to_owned(), 5.0), ("b".to_owned(), 2.0)]);

    // Without tableDescription, no header; a Series answers one row per input row.
    let script = "qResult = q.groupby('Name')['Value'].transform('sum')";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &params, bundles(rows.clone(), 1))
        .await
        .expect("transform");
    assert!(answer.metadata.get_bin(pb::TABLE_DESCRIPTION).is_none());
    assert_eq!(answer.numbers(), [5.0, 2.0, 5.0]);

    // A scalar qResult answers one row (an aggregation).
    let script = "qResult = q['Value'].median()";
    let answer = evaluate(&mut client, script, F::Aggregation, T::Numeric, &params, bundles(rows.clone(), 2))
        .await
        .expect("scalar");
    assert_eq!(answer.numbers(), [2.0]);

    // The columns of q: one per parameter, named after it; a dual adds _str and _num.
    let params = [("V", T::Numeric), ("D", T::Dual)];
    let rows = vec![row(&[V::N(1.0), V::D(7.0, "seven")]), row(&[V::N(2.0), V::D(8.0, "eight")])];
    let script = "qResult = ', '.join(q.columns)";
    let answer = evaluate(&mut client, script, F::Aggregation, T::String, &params, bundles(rows.clone(), 1))
        .await
        .expect("columns");
    assert_eq!(answer.strings(), ["V, D, D_str, D_num"]);
    let script = "qResult = [f'{n:g}={s}' for n, s in q['D']]";
    let answer = evaluate(&mut client, script, F::Tensor, T::String, &params, bundles(rows.clone(), 1))
        .await
        .expect("dual tuples");
    assert_eq!(answer.strings(), ["7=seven", "8=eight"]);
    let script = "qResult = q['D_num'] * q['V']";
    let answer =
        evaluate(&mut client, script, F::Tensor, T::Numeric, &params, bundles(rows, 2)).await.expect("dual numbers");
    assert_eq!(answer.numbers(), [7.0, 16.0]);

    // A DUAL answer: (number, text) pairs.
    let script = "qResult = [(1.0, 'one'), (2.0, 'two')]";
    let answer =
        evaluate(&mut client, script, F::Tensor, T::Dual, &[("X", T::Numeric)], bundles(numbers(&[0.0, 0.0]), 2))
            .await
            .expect("duals");
    let duals: Vec<(f64, String)> =
        answer.rows().iter().map(|r| (r.duals[0].num_data, r.duals[0].str_data.clone())).collect();
    assert_eq!(duals, [(1.0, "one".to_owned()), (2.0, "two".to_owned())]);

    // Statements that assign no qResult: Qlik's own message.
    let result = evaluate(&mut client, "x = 1\ny = 2", F::Scalar, T::Numeric, &[], nothing()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["No result was saved to qResult, check your script."]);
}

/// numpy's default percentile (linear between the two nearest ranks) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - rank.floor())
}

/// What `make run` serves — this engine beside the Python and JavaScript ones, no
/// `--script-language` — runs scripts written for Qlik's two full-script examples unchanged,
/// with no first line: numpy is there, and a summary answers its own number of rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qliks_example_scripts_run_unchanged_on_what_make_run_serves() {
    let guests = [ENGINE, "python_scripts", "js_scripts"];
    let server = TestServer::start_shared(&guests, Limits::default(), ServeOptions::default()).await;
    let mut client = server.client().await;
    let x = [("x", T::Numeric)];
    let values: Vec<f64> = (0..100).map(|i| f64::from((i * 37) % 101) / 4.0 - 3.0).collect();
    let rows = || bundles(numbers(&values), 7);
    let mean = values.iter().sum::<f64>() / 100.0;

    // fullscriptsupport: an expression over args, numpy a global.
    let answer = evaluate(&mut client, "numpy.mean(args[0])", F::Aggregation, T::Numeric, &x, rows())
        .await
        .expect("numpy with no first line");
    assert!((answer.numbers()[0] - mean).abs() < 1e-12, "{:?} against {mean}", answer.numbers());

    // fullscriptsupport_pandas: the usual summary of a LOAD ... EXTENSION, 8 rows for 100.
    let script = "qResult = q['x'].astype(float).describe().values";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &x, rows()).await.expect("describe");
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 99.0).sqrt();
    let expected = [
        100.0,
        mean,
        std,
        sorted[0],
        percentile(&sorted, 0.25),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.75),
        sorted[99],
    ];
    let got = answer.numbers();
    assert_eq!(got.len(), 8, "{got:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-9, "{got:?} against {expected:?}");
    }

    // A first line still chooses: the plain Python engine has no numpy.
    let result = evaluate(&mut client, "#!python\nnumpy.mean(args[0])", F::Aggregation, T::Numeric, &x, rows()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["NameError", "numpy", "#!pandas"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scipy_scikit_learn_and_statsmodels_run_in_the_sandbox() {
    let server = server().await;
    let mut client = server.client().await;
    let xy = [("X", T::Numeric), ("Y", T::Numeric)];
    let rows: Vec<pb::Row> = (0..20).map(|i| row(&[V::N(f64::from(i)), V::N(3.0 * f64::from(i) + 1.0)])).collect();

    let script =
        "import scipy.stats\nfit = scipy.stats.linregress(q['X'], q['Y'])\nqResult = [[fit.slope, fit.intercept]]";
    let answer =
        evaluate(&mut client, script, F::Aggregation, T::Numeric, &xy, bundles(rows.clone(), 7)).await.expect("scipy");
    let fit = &number_rows(&answer)[0];
    assert!((fit[0] - 3.0).abs() < 1e-9 && (fit[1] - 1.0).abs() < 1e-9, "{fit:?}");

    let script = "from sklearn.linear_model import LinearRegression\n\
                  model = LinearRegression().fit(q[['X']].values, q['Y'].values)\n\
                  qResult = model.predict(q[['X']].values)";
    let answer =
        evaluate(&mut client, script, F::Tensor, T::Numeric, &xy, bundles(rows.clone(), 7)).await.expect("sklearn");
    for (got, i) in answer.numbers().iter().zip(0..) {
        assert!((got - (3.0 * f64::from(i) + 1.0)).abs() < 1e-6, "row {i}: {got}");
    }

    let script = "import statsmodels.api as sm\n\
                  fit = sm.OLS(q['Y'].values, sm.add_constant(q['X'].values)).fit()\n\
                  qResult = [fit.params[1]]";
    let answer =
        evaluate(&mut client, script, F::Aggregation, T::Numeric, &xy, bundles(rows, 7)).await.expect("statsmodels");
    assert!((answer.numbers()[0] - 3.0).abs() < 1e-9);

    // A module of the standard library that the snapshot did not import comes from memory.
    let script = "import fractions\nqResult = [float(fractions.Fraction(3, 4))]";
    let answer = evaluate(&mut client, script, F::Aggregation, T::Numeric, &[], nothing()).await.expect("stdlib");
    assert_eq!(answer.numbers(), [0.75]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_python_exception_and_the_scripts_line() {
    let server = server().await;
    let mut client = server.client().await;
    let x = [("X", T::Numeric)];
    let three = || bundles(numbers(&[1.0, 2.0, 3.0]), 2);

    let result =
        evaluate(&mut client, "numpy.sum(args[0]) / 0 + undefined", F::Aggregation, T::Numeric, &x, three()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["NameError", "undefined", "line 1"]);
    let result = evaluate(
        &mut client,
        "a = int(q['X'].sum())\nb = a // 0\nqResult = [b]",
        F::Aggregation,
        T::Numeric,
        &x,
        three(),
    )
    .await;
    assert_status(result, tonic::Code::InvalidArgument, &["ZeroDivisionError", "line 2"]);
    let result = evaluate(&mut client, "#!pandas\nqResult = [1\nx = (", F::Aggregation, T::Numeric, &x, three()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["SyntaxError", "line 2"]);
    let result = evaluate(&mut client, "raise ValueError('bad input')", F::Scalar, T::Numeric, &x, three()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["ValueError: bad input", "line 1"]);
    let result = evaluate(&mut client, "['a' for v in args[0]]", F::Tensor, T::Numeric, &x, three()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["TypeError", "row 1", "where a number is expected"]);
    let answer = evaluate(&mut client, "[1.0]", F::Tensor, T::Numeric, &x, three()).await.expect("rows as answered");
    assert_eq!(answer.numbers(), [1.0]);
    let result = evaluate(&mut client, "import requests_that_do_not_exist", F::Scalar, T::Numeric, &x, three()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["ModuleNotFoundError"]);

    let answer =
        evaluate(&mut client, "len(args[0])", F::Aggregation, T::Numeric, &x, three()).await.expect("serves on");
    assert_eq!(answer.numbers(), [3.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_sandboxed_and_bounded_and_keep_nothing() {
    let limits = Limits { call_timeout: Duration::from_secs(2), ..Limits::default() };
    let server = server_with(limits).await;
    let mut client = server.client().await;
    let ok = |answer: Result<Answer, tonic::Status>| answer.expect("evaluates").numbers();

    // The CPU deadline, and a memory bomb past the 512 MiB cap, and the engine serves on.
    let result = evaluate(&mut client, "while True: pass", F::Scalar, T::Numeric, &[], nothing()).await;
    assert_status(result, tonic::Code::DeadlineExceeded, &["time limit"]);
    let result =
        evaluate(&mut client, "qResult = [len(bytearray(1 << 30))]", F::Scalar, T::Numeric, &[], nothing()).await;
    assert_status(result, tonic::Code::ResourceExhausted, &["512 MiB"]);
    let result =
        evaluate(&mut client, "qResult = [numpy.ones(200_000_000).sum()]", F::Scalar, T::Numeric, &[], nothing()).await;
    assert_status(result, tonic::Code::ResourceExhausted, &["512 MiB"]);
    assert_eq!(ok(evaluate(&mut client, "qResult = [1]", F::Scalar, T::Numeric, &[], nothing()).await), [1.0]);

    // No files: not the standard library archive, not the root; no environment.
    for script in [
        "qResult = [len(open('/usr/local/lib/python315.zip', 'rb').read())]",
        "import os\nqResult = [len(os.listdir('/'))]",
        "qResult = [len(open('/etc/passwd').read())]",
        "open('/tmp/x', 'w').write('x')\nqResult = [1]",
    ] {
        let result = evaluate(&mut client, script, F::Scalar, T::Numeric, &[], nothing()).await;
        assert_status(result, tonic::Code::InvalidArgument, &["Error"]);
    }
    // The host's environment is not the guest's.
    let script = "import os\nqResult = [sum(k in os.environ for k in ('PATH', 'HOME', 'USER', 'RUST_LOG'))]";
    assert_eq!(ok(evaluate(&mut client, script, F::Scalar, T::Numeric, &[], nothing()).await), [0.0]);

    // No network: a listener on loopback sees no connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let script = format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nqResult = [1]");
    let result = evaluate(&mut client, &script, F::Scalar, T::Numeric, &[], nothing()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["Error"]);
    assert!(tokio::time::timeout(Duration::from_millis(100), listener.accept()).await.is_err(), "nothing connected");

    // Nothing one evaluation changes is seen by the next: modules, builtins, globals.
    let leak = "import builtins\nbuiltins.leaked = 1\nnumpy.leaked = 2\nimport sys\nsys.modules['json'].leaked = 3\nqResult = [1]";
    assert_eq!(ok(evaluate(&mut client, leak, F::Scalar, T::Numeric, &[], nothing()).await), [1.0]);
    let look = "import builtins, json\nqResult = [hasattr(builtins, 'leaked') + hasattr(numpy, 'leaked') + hasattr(json, 'leaked')]";
    assert_eq!(ok(evaluate(&mut client, look, F::Scalar, T::Numeric, &[], nothing()).await), [0.0]);

    // Each evaluation draws other random numbers (Python's and numpy's), though all start from
    // one snapshot.
    let draw = "import random\nqResult = [[random.random(), numpy.random.rand()]]";
    let first = evaluate(&mut client, draw, F::Scalar, T::Numeric, &[], nothing()).await.expect("draw");
    let second = evaluate(&mut client, draw, F::Scalar, T::Numeric, &[], nothing()).await.expect("draw");
    let (first, second) = (number_rows(&first), number_rows(&second));
    assert!(first[0][0] != second[0][0] && first[0][1] != second[0][1], "{first:?} {second:?}");
}

/// Evaluations take pooled instance slots that earlier ones used: what an evaluation wrote into
/// its memory is gone before the next one starts there. `numpy.empty` hands out memory without
/// clearing it, so it shows whatever the slot still held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_an_evaluation_wrote_is_gone_before_the_next_one_in_its_slot() {
    let server = server().await;
    let mut client = server.client().await;
    let mut count = async |script: &str| {
        let answer = evaluate(&mut client, script, F::Aggregation, T::Numeric, &[], nothing()).await;
        answer.expect("evaluates").numbers()[0]
    };
    let size = "(16 << 20)";
    let mark = format!("a = numpy.full({size}, 0x5A, dtype=numpy.uint8)\nqResult = int(a.sum() > 0)");
    let probe = format!("b = numpy.empty({size}, dtype=numpy.uint8)\nqResult = int((b == 0x5A).sum())");
    // What a fresh instance shows: the engine's image holds a few such bytes of its own.
    let image = count(&probe).await;
    assert!(image < 1_000.0, "{image} marked bytes in a fresh instance");
    // The probe sees marks where they are left: freed and allocated again within one evaluation.
    let within = format!("{mark}\ndel a\n{probe}");
    assert!(count(&within).await > 1_000_000.0, "numpy.empty reuses what was freed in one instance");
    // Across evaluations, never, however the slots come round.
    for round in 0..12 {
        assert_eq!(count(&mark).await, 1.0);
        assert_eq!(count(&probe).await, image, "round {round}: an evaluation read marks an earlier one left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_evaluations_at_once_fit_the_default_limits() {
    let server = server().await;
    let values: Vec<f64> = (0..100_000).map(f64::from).collect();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut client = server.client().await;
        let rows = bundles(numbers(&values), 10_000);
        tasks.push(tokio::spawn(async move {
            let script = format!("qResult = [q['X'].sum() + {i}]");
            evaluate(&mut client, &script, F::Aggregation, T::Numeric, &[("X", T::Numeric)], rows).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let answer = task.await.expect("task").expect("evaluates");
        assert_eq!(answer.numbers(), [4_999_950_000.0 + i as f64]);
    }
}

#[test]
fn a_core_module_that_is_not_the_engine_is_refused_with_a_reason() {
    let runtime = sse_wasm::Runtime::new(Limits::default()).expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    // An empty core module, then one cut short after its header.
    for (name, bytes, says) in [
        ("empty.wasm", b"\0asm\x01\0\0\0".to_vec(), "data-science engine snapshot"),
        ("cut.wasm", b"\0asm\x01\0\0\0\x01\x05".to_vec(), "not a loadable WebAssembly"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let error = sse_wasm::wasm::Guest::load(&runtime, None, &path).expect_err("refused").to_string();
        assert!(error.contains(name) && error.contains(says), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dimension_columns_of_few_distinct_values_arrive_whole() {
    let server = server().await;
    let mut client = server.client().await;
    const REGIONS: [&str; 3] = ["north", "süd", ""];
    let rows: Vec<pb::Row> = (0..3000)
        .map(|i| {
            row(&[V::N(f64::from(i)), V::S(REGIONS[i as usize % 3]), V::D(f64::from(i % 3), REGIONS[i as usize % 3])])
        })
        .collect();
    let params = [("Sales", T::Numeric), ("Region", T::String), ("Day", T::Dual)];

    // pandas: groupby over the dimension; the dual's texts too.
    let script =
        "qResult = q.groupby('Region')['Sales'].transform('count') + q.groupby('Day_str')['Sales'].transform('count')";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &params, bundles(rows.clone(), 700))
        .await
        .expect("groupby");
    assert_eq!(answer.numbers(), vec![2000.0; 3000]);
    let script = "qResult = '|'.join([q['Region'][4], q['Day_str'][5], q['Region'][2], str(q['Region'].dtype)])";
    let answer = evaluate(&mut client, script, F::Aggregation, T::String, &params, bundles(rows[..6].to_vec(), 2))
        .await
        .expect("values");
    assert_eq!(answer.strings(), ["süd|||object"]);

    // numpy convention: plain lists of str, in row order.
    let script =
        "'|'.join([type(args[1]).__name__, type(args[2][1]).__name__, args[1][1] + args[2][1][3] + args[1][0]])";
    let answer =
        evaluate(&mut client, script, F::Aggregation, T::String, &params, bundles(rows, 1000)).await.expect("args");
    assert_eq!(answer.strings(), ["list|list|südnorthnorth"]);
}

/// A Python function file as a BI developer writes it: the SDK's decorators, numpy, a dual.
const STATS_PY: &str = r#""""Statistics for the sales app."""
import numpy
from sse_guest import Dual, aggregation, scalar, tensor

calls = []


@scalar
def Multiply(a: float, b: float) -> float:
    """Multiplies two numbers, row by row."""
    return a * b


@scalar
def Shout(text: str) -> str:
    return text.upper() + "!"


@scalar
def Label(day: Dual) -> str:
    return f"{day.text}={day.number:g}"


@tensor
def Cumulative(values: list[float]) -> list[float]:
    """The running total of a batch."""
    return numpy.cumsum(values)


@aggregation
def Median(values: list[float]) -> float:
    return float(numpy.median(values))


@scalar(cacheable=False)
def Seen(x: float) -> float:
    calls.append(x)
    return len(calls)


@scalar
def Ratio(a: float, b: float) -> float:
    return a / b
"#;

/// Waits until the served function names are `names`.
async fn wait_for_functions(server: &TestServer, names: &[&str]) {
    let wanted: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    eventually(&format!("functions {names:?}"), || async { function_names(server).await == wanted }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_function_files_serve_their_decorated_functions() {
    let mut server = server().await;
    let mut client = server.client().await;
    let file = server.dir.path().join("stats.py");
    std::fs::write(&file, STATS_PY).expect("write stats.py");
    let all = ["Cumulative", "Label", "Median", "Multiply", "Ratio", "Seen", "Shout"];
    wait_for_functions(&server, &all).await;

    // GetCapabilities: the declarations as the decorators and annotations say.
    let caps = client.get_capabilities(pb::Empty {}).await.expect("caps").into_inner();
    let declared = |name: &str| caps.functions.iter().find(|f| f.name == name).expect("declared").clone();
    let multiply = declared("Multiply");
    assert_eq!(multiply.function_type, F::Scalar as i32);
    assert_eq!(multiply.return_type, T::Numeric as i32);
    let params: Vec<_> = multiply.params.iter().map(|p| (p.name.as_str(), p.data_type)).collect();
    assert_eq!(params, [("a", T::Numeric as i32), ("b", T::Numeric as i32)]);
    assert_eq!(declared("Cumulative").function_type, F::Tensor as i32);
    assert_eq!(declared("Median").function_type, F::Aggregation as i32);
    assert_eq!(declared("Label").params[0].data_type, T::Dual as i32);
    assert_eq!(declared("Shout").return_type, T::String as i32);

    // A scalar over several bundles; texts; a dual parameter.
    let rows: Vec<pb::Row> = (0..10).map(|i| row(&[V::N(f64::from(i)), V::N(1.5)])).collect();
    let answer = call(&mut client, "Multiply", bundles(rows, 3)).await.expect("Multiply");
    assert_eq!(answer.numbers(), (0..10).map(|i| f64::from(i) * 1.5).collect::<Vec<_>>());
    let answer = call(&mut client, "Shout", bundles(vec![row(&[V::S("äpfel")]), row(&[V::S("")])], 1)).await;
    assert_eq!(answer.expect("Shout").strings(), ["ÄPFEL!", "!"]);
    let days = vec![row(&[V::D(45_000.0, "2023-03-15")]), row(&[V::D(0.5, "half")])];
    let answer = call(&mut client, "Label", bundles(days, 2)).await.expect("Label");
    assert_eq!(answer.strings(), ["2023-03-15=45000", "half=0.5"]);

    // A tensor answering a numpy array, per bundle; an aggregation over 100 bundles.
    let answer = call(&mut client, "Cumulative", bundles(numbers(&[1.0, 2.0, 3.0, 4.0]), 2)).await;
    assert_eq!(answer.expect("Cumulative").numbers(), [1.0, 3.0, 3.0, 7.0]);
    let values: Vec<f64> = (1..=1000).map(f64::from).collect();
    let answer = call(&mut client, "Median", bundles(numbers(&values), 10)).await.expect("Median");
    assert_eq!(answer.numbers(), [500.5]);

    // Module state lives as long as one call (one instance), never into the next.
    for _ in 0..2 {
        let answer = call(&mut client, "Seen", bundles(numbers(&[7.0, 7.0, 7.0, 7.0]), 2)).await.expect("Seen");
        assert_eq!(answer.numbers(), [1.0, 2.0, 3.0, 4.0]);
    }

    // The function's exception, with the line of the file.
    let result = call(&mut client, "Ratio", bundles(vec![row(&[V::N(1.0), V::N(0.0)])], 1)).await;
    assert_status(result, tonic::Code::InvalidArgument, &["Ratio", "ZeroDivisionError", "line 43 of stats.py"]);

    // An edit is served at once; one that breaks the file is reported and the last good
    // version keeps serving; deleting the file removes its functions.
    let edited = STATS_PY.replace("return a * b", "return a * b * 10").replace("def Ratio", "def Quotient");
    replace_atomically(&file, edited.as_bytes());
    wait_for_functions(&server, &["Cumulative", "Label", "Median", "Multiply", "Quotient", "Seen", "Shout"]).await;
    let answer = call(&mut client, "Multiply", bundles(vec![row(&[V::N(2.0), V::N(3.0)])], 1)).await;
    assert_eq!(answer.expect("edited Multiply").numbers(), [60.0]);

    let failures = server.status.borrow().failures;
    replace_atomically(
        &file,
        b"from sse_guest import scalar\n\n@scalar\ndef Broken(x: float) -> float:\n    return (\n",
    );
    let status = &mut server.status;
    tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| s.failures > failures))
        .await
        .expect("the broken edit is reported")
        .expect("status");
    let answer = call(&mut client, "Multiply", bundles(vec![row(&[V::N(2.0), V::N(3.0)])], 1)).await;
    assert_eq!(answer.expect("the last good version serves").numbers(), [60.0]);

    std::fs::remove_file(&file).expect("delete");
    wait_for_functions(&server, &[]).await;
    assert_status(call(&mut client, "Multiply", bundles(numbers(&[1.0]), 1)).await, tonic::Code::NotFound, &[]);
}

/// A file whose columns are `sse_guest.Numbers` and `Texts`: each reports what it was handed.
const ARRAYS_PY: &str = r#"
import numpy
from sse_guest import Numbers, Texts, aggregation, tensor


@tensor
def Converted(x: Numbers, unit: Texts) -> Numbers:
    """x in grams where unit is kg (x itself where it is g); -1 for any other unit."""
    if not (isinstance(x, numpy.ndarray) and x.dtype == numpy.float64):
        raise TypeError(f"x came as {type(x).__name__}")
    if not (isinstance(unit, numpy.ndarray) and unit.dtype == object):
        raise TypeError(f"unit came as {type(unit).__name__}")
    x[unit == "kg"] *= 1000  # its own array, writable
    return numpy.where(numpy.isin(unit, ["kg", "g"]), x, -1.0)


@aggregation
def Apart(x: Numbers, y: Numbers) -> float:
    """y's sum after x is overwritten in place."""
    x[:] = -1.0
    return float(y.sum())


@aggregation
def Distinct(labels: Texts) -> float:
    if not isinstance(labels, numpy.ndarray):
        raise TypeError(f"labels came as {type(labels).__name__}")
    return float(len(numpy.unique(labels)))
"#;

/// Columns annotated `sse_guest.Numbers` or `Texts` arrive as numpy arrays of the function's own
/// (float64 with NaN for null; str objects), whichever way the host framed the texts; any other
/// column annotation is refused naming the ones allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_columns_arrive_as_numpy_arrays_of_their_own() {
    let server = server().await;
    let mut client = server.client().await;
    std::fs::write(server.dir.path().join("arrays.py"), ARRAYS_PY).expect("write");
    wait_for_functions(&server, &["Apart", "Converted", "Distinct"]).await;
    let caps = client.get_capabilities(pb::Empty {}).await.expect("caps").into_inner();
    let converted = caps.functions.iter().find(|f| f.name == "Converted").expect("declared");
    let params: Vec<_> = converted.params.iter().map(|p| p.data_type).collect();
    assert_eq!(params, [T::Numeric as i32, T::String as i32]);
    assert_eq!(converted.return_type, T::Numeric as i32);

    let rows = vec![
        row(&[V::N(1.5), V::S("kg")]),
        row(&[V::N(f64::NAN), V::S("kg")]),
        row(&[V::N(2.0), V::S("g")]),
        row(&[V::N(7.0), V::S("lb")]),
    ];
    let answer = call(&mut client, "Converted", bundles(rows, 2)).await.expect("Converted").numbers();
    assert_eq!(answer.len(), 4);
    assert_eq!((answer[0], answer[2], answer[3]), (1500.0, 2.0, -1.0));
    assert!(answer[1].is_nan(), "a null stays NaN: {answer:?}");

    // Two columns of numbers: writing one leaves the other as it came.
    let rows: Vec<pb::Row> = (0..5000).map(|i| row(&[V::N(i as f64), V::N(0.5)])).collect();
    let answer = call(&mut client, "Apart", bundles(rows, 1000)).await.expect("Apart");
    assert_eq!(answer.numbers(), [2500.0]);

    // Few distinct values (sent once each, a code per row) and all distinct (sent whole).
    let few: Vec<pb::Row> = (0..3000).map(|i| row(&[V::S(["a", "b", "c"][i % 3])])).collect();
    let answer = call(&mut client, "Distinct", bundles(few, 500)).await.expect("few");
    assert_eq!(answer.numbers(), [3.0]);
    let all: Vec<pb::Row> = (0..3000)
        .map(|i| pb::Row { duals: vec![pb::Dual { num_data: 0.0, str_data: format!("label {i}") }] })
        .collect();
    let answer = call(&mut client, "Distinct", bundles(all, 500)).await.expect("all");
    assert_eq!(answer.numbers(), [3000.0]);

    // numpy.ndarray alone says nothing of the column's type: refused, naming what is allowed.
    let failures = server.status.borrow().failures;
    let bad = "import numpy\nfrom sse_guest import tensor\n\n@tensor\ndef Bad(x: numpy.ndarray) -> list[float]:\n    return x\n";
    std::fs::write(server.dir.path().join("bad.py"), bad).expect("write");
    let mut status = server.status.clone();
    tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| s.failures > failures))
        .await
        .expect("the file is refused")
        .expect("status");
    assert_eq!(function_names(&server).await, ["Apart", "Converted", "Distinct"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_file_is_sandboxed_like_any_guest() {
    let limits = Limits { call_timeout: Duration::from_secs(2), ..Limits::default() };
    let server = server_with(limits).await;
    let mut client = server.client().await;
    let source = r#"import os
import random
import numpy
from sse_guest import scalar

# Drawn as the file runs, before any function: each call's instance draws its own.
DRAWN = (random.random(), float(numpy.random.rand()))

@scalar
def Drawn(which: float) -> float:
    return DRAWN[int(which)]

@scalar
def Spin(x: float) -> float:
    while True:
        pass

@scalar
def Hog(x: float) -> float:
    return len(bytearray(1 << 30))

@scalar
def ReadFile(path: str) -> str:
    return open(path).read()

@scalar
def Environment(x: float) -> float:
    return sum(k in os.environ for k in ("PATH", "HOME", "USER", "RUST_LOG"))

@scalar
def Twice(x: float) -> float:
    return 2 * x
"#;
    std::fs::write(server.dir.path().join("limits.py"), source).expect("write");
    wait_for_functions(&server, &["Drawn", "Environment", "Hog", "ReadFile", "Spin", "Twice"]).await;

    let one = || bundles(numbers(&[1.0]), 1);
    assert_status(call(&mut client, "Spin", one()).await, tonic::Code::DeadlineExceeded, &["Spin", "time limit"]);
    assert_status(call(&mut client, "Hog", one()).await, tonic::Code::ResourceExhausted, &["Hog", "512 MiB"]);
    for path in ["/etc/passwd", "/usr/local/lib/python315.zip", "limits.py"] {
        let result = call(&mut client, "ReadFile", bundles(vec![row(&[V::S(path)])], 1)).await;
        assert_status(result, tonic::Code::InvalidArgument, &["ReadFile", "Error"]);
    }
    assert_eq!(call(&mut client, "Environment", one()).await.expect("environment").numbers(), [0.0]);
    assert_eq!(call(&mut client, "Twice", one()).await.expect("serves on").numbers(), [2.0]);

    // Random numbers the file's own code draws (Python's and numpy's) differ from call to call,
    // though every instance starts from one snapshot.
    let draws = || bundles(numbers(&[0.0, 1.0]), 1);
    let first = call(&mut client, "Drawn", draws()).await.expect("draws").numbers();
    let second = call(&mut client, "Drawn", draws()).await.expect("draws").numbers();
    assert!(first[0] != second[0] && first[1] != second[1], "{first:?} {second:?}");
}

/// A file whose compiled code is larger than the host keeps (16 MiB: here a 17 MiB constant) is
/// served all the same: every call compiles and runs it afresh from its source, each of its
/// functions answers, and nothing one call leaves in the module reaches the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_code_is_too_large_to_keep_runs_from_its_source() {
    let server = server().await;
    let mut client = server.client().await;
    let source = format!(
        "from sse_guest import aggregation, scalar\n\nDATA = b'{}'\nRUNS = []\n\n\n\
         @scalar\ndef Size(x: float) -> float:\n    return len(DATA) + x\n\n\n\
         @aggregation\ndef Runs(x: list[float]) -> float:\n    RUNS.append(sum(x))\n    return len(RUNS)\n",
        "x".repeat(17 << 20)
    );
    replace_atomically(&server.dir.path().join("large.py"), source.as_bytes());
    wait_for_functions(&server, &["Runs", "Size"]).await;
    let size = call(&mut client, "Size", bundles(numbers(&[1.0, 2.0]), 2)).await.expect("Size").numbers();
    assert_eq!(size, [f64::from(17u32 << 20) + 1.0, f64::from(17u32 << 20) + 2.0]);
    for _ in 0..2 {
        let runs = call(&mut client, "Runs", bundles(numbers(&[1.0, 2.0]), 1)).await.expect("Runs").numbers();
        assert_eq!(runs, [1.0], "each call runs the file in an instance of its own");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_files_follow_the_engine_that_runs_them() {
    let server = server().await;
    let mut client = server.client().await;
    let source = "from sse_guest import scalar\n\n@scalar\ndef Square(x: float) -> float:\n    return x * x\n";
    std::fs::write(server.dir.path().join("square.py"), source).expect("write");
    wait_for_functions(&server, &["Square"]).await;

    // Without the engine, nothing runs the file; with it back, it serves again.
    let engine = server.dir.path().join(format!("{ENGINE}.wasm"));
    std::fs::remove_file(&engine).expect("delete the engine");
    wait_for_functions(&server, &[]).await;
    replace_atomically(&engine, &std::fs::read(guest_wasm(ENGINE)).expect("engine"));
    wait_for_functions(&server, &["Square"]).await;
    assert_eq!(call(&mut client, "Square", bundles(numbers(&[3.0]), 1)).await.expect("Square").numbers(), [9.0]);

    // A file that is not Python, or declares nothing, is refused with the reason.
    let failures = server.status.borrow().failures;
    std::fs::write(server.dir.path().join("empty.py"), "x = 1\n").expect("write");
    let mut status = server.status.clone();
    tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| s.failures > failures))
        .await
        .expect("the file is refused")
        .expect("status");
    assert_eq!(function_names(&server).await, ["Square"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_toolkit_inspects_and_calls_a_function_file() {
    // The server compiles the engine into the shared cache; the binary then reads it from there.
    let server = server().await;
    let file = server.dir.path().join("sales.py");
    let source = "import numpy\nfrom sse_guest import aggregation, scalar\n\n@scalar\ndef Margin(price: float, cost: float) -> float:\n    \"\"\"Margin as a share of the price.\"\"\"\n    return (price - cost) / price\n\n@aggregation\ndef P90(values: list[float]) -> float:\n    return float(numpy.percentile(values, 90))\n";
    std::fs::write(&file, source).expect("write");
    let run = |args: &[&str], input: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
            .args(args)
            .env("SSE_WASM_CACHE_DIR", shared_cache_dir())
            .env("SSE_WASM_CACHE_KEY", test_cache_key_file())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sse-wasm runs");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("stdin");
        let output = child.wait_with_output().expect("sse-wasm ends");
        let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "sse-wasm {args:?} failed: {err}");
        out.into_owned()
    };
    let path = file.to_str().expect("UTF-8 path");
    let listed = run(&["inspect", path], "");
    assert!(listed.contains("2 function(s); a Python function file"), "{listed}");
    assert!(listed.contains("Margin(price: NUMERIC, cost: NUMERIC) -> NUMERIC"), "{listed}");
    assert!(listed.contains("Margin as a share of the price."), "{listed}");
    assert!(listed.contains("P90(values: NUMERIC) -> NUMERIC") && listed.contains("AGGREGATION, per-call"), "{listed}");
    assert_eq!(run(&["call", path, "Margin", "--arg", "10", "--arg", "4"], ""), "Margin\n0.6\n");
    assert_eq!(run(&["call", path, "P90", "--csv"], "1\n2\n3\n"), "P90\n2.8\n");
}

/// The highest resident memory process `pid` has had, in bytes (VmHWM).
pub(crate) fn peak_resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).expect("VmHWM").trim().trim_end_matches(" kB");
    kib.trim().parse::<u64>().expect("kB") * 1024
}

/// What the host collects of a call's rows before the engine runs on them is bounded by
/// `--max-input`: past it the call is RESOURCE_EXHAUSTED naming the flag. Eight calls at once,
/// each streaming 64 MiB of values against a limit of 16, raise the host's peak resident memory
/// by less than twice the limit each (README, Security), and the host serves on.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_collected_in_the_host_are_bounded_by_max_input() {
    // The in-process server compiles the engine into the shared cache the binary reads.
    let _compiled = server().await;
    let root = tempfile::tempdir().expect("temp dir");
    let (cache, key) = (shared_cache_dir(), test_cache_key_file());
    let args = ["--no-watch", "--max-input", "16", "--cache-dir", cache.to_str().expect("UTF-8"), "--cache-key"];
    let args: Vec<&str> = args.into_iter().chain([key.to_str().expect("UTF-8")]).collect();
    let binary = Binary::start(root.path(), &[ENGINE], &args, "warn").await;
    let mut client = binary.client().await;
    let sum = "numpy.sum(args[0])";
    // 1 MiB of values is well inside the limit.
    let answer = evaluate_streamed(&mut client, sum, 16, 8192).await.expect("a call inside the limit");
    assert_eq!(answer.numbers(), [(131_072.0 * 131_071.0) / 2.0]);
    let pid = binary.child.id().expect("running");
    let before = peak_resident(pid);

    // 8 Mi values (64 MiB) each, in bundles of 64 Ki rows.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { evaluate_streamed(&mut client, sum, 128, 65_536).await })
        })
        .collect();
    for call in calls {
        assert_status(call.await.expect("join"), tonic::Code::ResourceExhausted, &["--max-input", "16 MiB"]);
    }
    let grown = peak_resident(pid).saturating_sub(before);
    assert!(grown < 8 * 2 * (16 << 20), "the host's peak resident memory grew by {} MiB", grown >> 20);
    let answer = evaluate_streamed(&mut client, sum, 1, 10).await.expect("serves on");
    assert_eq!(answer.numbers(), [45.0]);
}

/// `sse_guest.order` and `sse_guest.ranks`, which the host computes natively over buffers in
/// the instance's own memory, answer through gRPC as numpy's stable `argsort` and pandas' `rank()`
/// do natively (`make analytics-reference`), on numbers with ties, nulls, both zeros, infinities
/// and subnormals; a file that hands the host buffers outside its memory, overlapping or of a size
/// that overflows is refused with what was wrong, and the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorts_the_host_runs_for_a_function_file_answer_as_numpy_and_pandas() {
    use rand::{Rng, SeedableRng};

    let server = server().await;
    let mut client = server.client().await;
    let source = r#"import struct
import _host
import numpy
import sse_guest
from sse_guest import Numbers, scalar, tensor

@tensor(per_call=True)
def Ranks(x: Numbers) -> list[float]:
    return sse_guest.ranks(x)

@tensor(per_call=True)
def Order(x: Numbers) -> list[float]:
    return sse_guest.order(x).astype(float)

def overlapping():
    at = KEPT.__array_interface__["data"][0]
    return 10, at, at + 8, at + 160, b"ranks"

KEPT = numpy.zeros(40)
# What a hostile file could hand the host: buffers outside its memory, overlapping, a count
# whose buffers overflow, an unknown request.
REQUESTS = [
    lambda: (10, 0xFFFFFF00, 0, 4096, b"ranks"),
    overlapping,
    lambda: (0xFFFFFFFF, 0, 0, 0, b"ranks"),
    lambda: (1, 0, 8, 16, b"shuffle"),
]

@scalar
def Hostile(case: float) -> float:
    count, values, out, scratch, what = REQUESTS[int(case)]()
    _host.call(b"sort-" + what + struct.pack("<4I", count, values, out, scratch))
    return case

@scalar
def Twice(x: float) -> float:
    return 2 * x
"#;
    std::fs::write(server.dir.path().join("sorts.py"), source).expect("write");
    wait_for_functions(&server, &["Hostile", "Order", "Ranks", "Twice"]).await;

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5047);
    for rows in [1, 2, 7, 3001] {
        let values: Vec<f64> = (0..rows)
            .map(|_| match rng.gen_range(0..12) {
                0 => f64::NAN,
                1 => -0.0,
                2 => 0.0,
                3 => [f64::INFINITY, f64::NEG_INFINITY, 5e-324, -5e-324][rng.gen_range(0..4)],
                4..=6 => f64::from(rng.gen_range(-3..4)),
                _ => rng.r#gen::<f64>() * 1e6 - 5e5,
            })
            .collect();
        let input: String = values.iter().map(|v| format!("{v:?}\n")).collect();
        let expected = crate::datasci_analytics::native(
            "import sys, numpy, pandas\n\
             x = numpy.array([float(v) for v in sys.stdin.read().split()])\n\
             for v in pandas.Series(x).rank().tolist() + numpy.argsort(x, kind='stable').tolist(): print(float(v))",
            &input,
        );
        let ranks = call(&mut client, "Ranks", bundles(numbers(&values), 97)).await.expect("ranks").numbers();
        let order = call(&mut client, "Order", bundles(numbers(&values), 97)).await.expect("order").numbers();
        crate::datasci_analytics::assert_close(&ranks, &expected[..rows], 0.0, &format!("ranks of {rows}"));
        assert_eq!(order, expected[rows..], "order of {rows}");
    }

    let reasons = [
        "a sort buffer outside its memory",
        "sort buffers that overlap",
        "a sort buffer outside its memory",
        "an unknown sort request",
    ];
    for (case, reason) in reasons.into_iter().enumerate() {
        let result = call(&mut client, "Hostile", bundles(numbers(&[case as f64]), 1)).await;
        assert_status(result, tonic::Code::Internal, &["Hostile", reason]);
    }
    assert_eq!(call(&mut client, "Twice", bundles(numbers(&[1.0]), 1)).await.expect("serves on").numbers(), [2.0]);
}
