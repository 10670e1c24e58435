//! Qlik's eight script functions through EvaluateScript, run by the Python script engine guest:
//! the conventions of Qlik's full-script-support example, errors, limits and the sandbox.

use std::time::Duration;

use sse_wasm::pb::{self, DataType as T, FunctionType as F};
use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::Limits;

use crate::util::*;

const ENGINE: &str = "python_scripts";

async fn server() -> TestServer {
    TestServer::start_shared(&[ENGINE], Limits::default(), ServeOptions::default()).await
}

fn n(values: &[f64]) -> Vec<pb::Row> {
    numbers(values)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_script_is_true_exactly_when_an_engine_is_loaded_and_scripts_are_on() {
    let server = server().await;
    let capabilities = server.client().await.get_capabilities(pb::Empty {}).await.expect("caps").into_inner();
    assert!(capabilities.allow_script);

    let without = TestServer::start(&["hello_world"]).await;
    let mut client = without.client().await;
    assert!(!client.get_capabilities(pb::Empty {}).await.expect("caps").into_inner().allow_script);
    let result = evaluate(&mut client, "1", F::Scalar, T::Numeric, &[], Vec::new()).await;
    assert_status(result, tonic::Code::FailedPrecondition, &["no script engine is loaded"]);

    let options = ServeOptions { scripts: false, ..ServeOptions::default() };
    let off = TestServer::start_shared(&[ENGINE], Limits::default(), options).await;
    let mut client = off.client().await;
    assert!(!client.get_capabilities(pb::Empty {}).await.expect("caps").into_inner().allow_script);
    let result = evaluate(&mut client, "1", F::Scalar, T::Numeric, &[], Vec::new()).await;
    assert_status(result, tonic::Code::Unimplemented, &["turned off"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_eval_answers_row_aligned_columns() {
    let server = server().await;
    let mut client = server.client().await;
    let rows: Vec<pb::Row> = (0..10).map(|i| row(&[V::N(f64::from(i)), V::N(0.5)])).collect();
    let params = [("A", T::Numeric), ("B", T::Numeric)];

    // ScriptEval as a tensor, over several bundles: args[i] is the whole column.
    let script = "[a + b for a, b in zip(args[0], args[1])]";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &params, bundles(rows.clone(), 3)).await;
    let expected: Vec<f64> = (0..10).map(|i| f64::from(i) + 0.5).collect();
    assert_eq!(answer.expect("tensor").numbers(), expected);

    // ScriptEval as a scalar function.
    let answer = evaluate(
        &mut client,
        "[a * 2 for a in args[0]]",
        F::Scalar,
        T::Numeric,
        &params[..1],
        bundles(n(&[1.0, -2.5]), 1),
    )
    .await
    .expect("scalar");
    assert_eq!(answer.numbers(), [2.0, -5.0]);

    // The same script a second time: the warm instance and its compiled script are reused.
    let answer =
        evaluate(&mut client, "[a * 2 for a in args[0]]", F::Scalar, T::Numeric, &params[..1], bundles(n(&[4.0]), 1))
            .await
            .expect("again");
    assert_eq!(answer.numbers(), [8.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_aggr_answers_one_row_over_every_bundle() {
    let server = server().await;
    let mut client = server.client().await;
    let values: Vec<f64> = (1..=1000).map(f64::from).collect();
    let answer = evaluate(
        &mut client,
        "sum(args[0])",
        F::Aggregation,
        T::Numeric,
        &[("X", T::Numeric)],
        bundles(n(&values), 128),
    )
    .await
    .expect("ScriptAggr");
    assert_eq!(answer.numbers(), [500_500.0]);

    let answer = evaluate(
        &mut client,
        "statistics.median(args[0])",
        F::Aggregation,
        T::Numeric,
        &[("X", T::Numeric)],
        bundles(n(&[3.0, 1.0, 2.0]), 2),
    )
    .await
    .expect("modules");
    assert_eq!(answer.numbers(), [2.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_variants_take_and_answer_text() {
    let server = server().await;
    let mut client = server.client().await;
    let texts = vec![row(&[V::S("äpfel")]), row(&[V::S("b")]), row(&[V::S("")])];

    let answer = evaluate(
        &mut client,
        "[s.upper() for s in args[0]]",
        F::Scalar,
        T::String,
        &[("S", T::String)],
        bundles(texts.clone(), 2),
    )
    .await
    .expect("ScriptEvalStr");
    assert_eq!(answer.strings(), ["ÄPFEL", "B", ""]);

    let answer =
        evaluate(&mut client, "'|'.join(args[0])", F::Aggregation, T::String, &[("S", T::String)], bundles(texts, 2))
            .await
            .expect("ScriptAggrStr");
    assert_eq!(answer.strings(), ["äpfel|b|"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ex_variants_mix_numbers_strings_and_duals() {
    let server = server().await;
    let mut client = server.client().await;
    // 'NSD': a number, a string, and a dual, which arrives as [numbers, texts].
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

    let script = "[f'{s}@{d}' for s, d in zip(args[1], args[2][1])]";
    let answer = evaluate(&mut client, script, F::Tensor, T::String, &params, bundles(rows.clone(), 1))
        .await
        .expect("ScriptEvalExStr");
    assert_eq!(answer.strings(), ["a@2023-03-15", "b@2023-03-16"]);

    let script = "max(args[2][0]) - min(args[2][0]) + sum(args[0])";
    let answer = evaluate(&mut client, script, F::Aggregation, T::Numeric, &params, bundles(rows.clone(), 1))
        .await
        .expect("ScriptAggrEx");
    assert_eq!(answer.numbers(), [4.5]);

    let script = "args[1][args[2][0].index(max(args[2][0]))]";
    let answer = evaluate(&mut client, script, F::Aggregation, T::String, &params, bundles(rows, 1))
        .await
        .expect("ScriptAggrExStr");
    assert_eq!(answer.strings(), ["b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_without_params_and_with_two_result_columns() {
    let server = server().await;
    let mut client = server.client().await;
    let answer =
        evaluate(&mut client, "6 * 7", F::Scalar, T::Numeric, &[], vec![pb::BundledRows { rows: vec![row(&[])] }])
            .await
            .expect("no params");
    assert_eq!(answer.numbers(), [42.0]);
    let answer = evaluate(&mut client, "'hello'", F::Scalar, T::String, &[], Vec::new()).await.expect("no rows at all");
    assert_eq!(answer.strings(), ["hello"]);

    // A list of pairs answers two columns, as LOAD ... EXTENSION reads them.
    let answer = evaluate(
        &mut client,
        "[(a, a * a) for a in args[0]]",
        F::Tensor,
        T::Numeric,
        &[("A", T::Numeric)],
        bundles(n(&[2.0, 3.0]), 1),
    )
    .await
    .expect("two columns");
    let rows: Vec<Vec<f64>> = answer.rows().iter().map(|r| r.duals.iter().map(|d| d.num_data).collect()).collect();
    assert_eq!(rows, [[2.0, 4.0], [3.0, 9.0]]);

    // Statements that assign `result`, for what one expression cannot say.
    let script = "#!python\ntotal = sum(args[0])\nresult = [v / total for v in args[0]]";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &[("A", T::Numeric)], bundles(n(&[1.0, 3.0]), 1))
        .await
        .expect("statements");
    assert_eq!(answer.numbers(), [0.25, 0.75]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_split_below_one_mib_in_order() {
    let server = server().await;
    let mut client = server.client().await;
    let count = 100_000;
    let rows: Vec<pb::Row> = (0..count)
        .map(|i| pb::Row { duals: vec![pb::Dual { num_data: f64::from(i), str_data: String::new() }] })
        .collect();
    let script = "[f'row {int(v)} ' + 'x' * 20 for v in args[0]]";
    let answer = evaluate(&mut client, script, F::Tensor, T::String, &[("V", T::Numeric)], bundles(rows, 2000))
        .await
        .expect("large");
    assert!(answer.messages.len() > 2, "split into {} messages", answer.messages.len());
    for message in &answer.messages {
        assert!(
            prost::Message::encoded_len(message) <= 1 << 20,
            "a message of {} bytes",
            prost::Message::encoded_len(message)
        );
    }
    let strings = answer.strings();
    assert_eq!(strings.len(), count as usize);
    assert_eq!(strings[0], format!("row 0 {}", "x".repeat(20)));
    assert_eq!(strings[77_777], format!("row 77777 {}", "x".repeat(20)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_errors_are_invalid_argument_with_the_scripts_message() {
    let server = server().await;
    let mut client = server.client().await;
    let one = || bundles(n(&[1.0, 2.0, 3.0]), 2);
    let x = [("X", T::Numeric)];

    let result = evaluate(&mut client, "sum(args[0]) / 0", F::Aggregation, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["ZeroDivisionError", "division by zero"]);
    let result = evaluate(&mut client, "sum(args[0]", F::Aggregation, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["SyntaxError"]);
    let result = evaluate(&mut client, "undefined_name", F::Scalar, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["NameError", "undefined_name"]);
    // Rows go to Qlik as answered, however many, as in Qlik's example: Qlik pads or drops
    // them in a chart and keeps them all in LOAD ... EXTENSION.
    let answer = evaluate(&mut client, "[1.0]", F::Tensor, T::Numeric, &x, one()).await.expect("one row for three");
    assert_eq!(answer.numbers(), [1.0]);
    let answer = evaluate(&mut client, "args[0]", F::Aggregation, T::Numeric, &x, one()).await.expect("three rows");
    assert_eq!(answer.numbers(), [1.0, 2.0, 3.0]);
    let result = evaluate(&mut client, "['a' for v in args[0]]", F::Tensor, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["TypeError", "where a number is expected"]);
    let result = evaluate(&mut client, "#!r\nsum(args[0])", F::Aggregation, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::FailedPrecondition, &["#!r", "loaded: python"]);

    // Malformed requests.
    let result = evaluate_with_header(&mut client, None, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["qlik-scriptrequestheader-bin", "missing"]);
    let result = evaluate_with_header(&mut client, Some(b"\xff\xff\xff".to_vec()), one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["does not decode"]);
    let two_columns = bundles(vec![row(&[V::N(1.0), V::N(2.0)])], 1);
    let result = evaluate(&mut client, "sum(args[0])", F::Aggregation, T::Numeric, &x, two_columns).await;
    assert_status(result, tonic::Code::InvalidArgument, &["2"]);

    // Every failure above left the engine serving.
    let answer =
        evaluate(&mut client, "sum(args[0])", F::Aggregation, T::Numeric, &x, one()).await.expect("still serving");
    assert_eq!(answer.numbers(), [6.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_cannot_reach_files_sockets_or_the_environment() {
    let server = server().await;
    let mut client = server.client().await;
    let result = evaluate(&mut client, "open('/etc/passwd').read()", F::Scalar, T::String, &[], Vec::new()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["FileNotFoundError", "/etc/passwd"]);
    let result = evaluate(&mut client, "__import__('os').listdir('/')", F::Scalar, T::String, &[], Vec::new()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["FileNotFoundError"]);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let script = format!("__import__('socket').create_connection(('127.0.0.1', {port}), 1)");
    let result = evaluate(&mut client, &script, F::Scalar, T::String, &[], Vec::new()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["script failed", "socket"]);
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(listener.accept().is_err(), "no connection reached the listener");

    let answer = evaluate(&mut client, "str(dict(__import__('os').environ))", F::Scalar, T::String, &[], Vec::new())
        .await
        .expect("environment");
    assert_eq!(answer.strings(), ["{}"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_script_ends_at_the_deadline_and_state_does_not_leak() {
    let limits = Limits { call_timeout: Duration::from_secs(2), ..Limits::default() };
    let server = TestServer::start_shared(&[ENGINE], limits, ServeOptions::default()).await;
    let mut client = server.client().await;
    let result = evaluate(&mut client, "sum(1 for _ in iter(int, 1))", F::Scalar, T::Numeric, &[], Vec::new()).await;
    assert_status(result, tonic::Code::DeadlineExceeded, &["time limit"]);

    // Names a script defines are gone by the next call, on whichever instance it runs.
    let answer =
        evaluate(&mut client, "leaked = 1\nresult = 1", F::Scalar, T::Numeric, &[], Vec::new()).await.expect("defines");
    assert_eq!(answer.numbers(), [1.0]);
    let answer = evaluate(&mut client, "float('leaked' in globals())", F::Scalar, T::Numeric, &[], Vec::new())
        .await
        .expect("checks");
    assert_eq!(answer.numbers(), [0.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_line_or_the_default_language_chooses_the_engine() {
    let options = ServeOptions { script_language: Some("r".to_owned()), ..ServeOptions::default() };
    let server = TestServer::start_shared(&[ENGINE], Limits::default(), options).await;
    let mut client = server.client().await;
    let x = [("X", T::Numeric)];
    let result =
        evaluate(&mut client, "sum(args[0])", F::Aggregation, T::Numeric, &x, bundles(n(&[1.0, 2.0]), 1)).await;
    assert_status(result, tonic::Code::FailedPrecondition, &["default script language r", "loaded: python", "#!"]);
    let answer =
        evaluate(&mut client, "#!python\nsum(args[0])", F::Aggregation, T::Numeric, &x, bundles(n(&[1.0, 2.0]), 1))
            .await
            .expect("the marker wins over the default");
    assert_eq!(answer.numbers(), [3.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_past_the_memory_cap_is_resource_exhausted() {
    let limits = Limits { max_memory_bytes: 128 << 20, ..Limits::default() };
    let server = TestServer::start_shared(&[ENGINE], limits, ServeOptions::default()).await;
    let mut client = server.client().await;
    let result = evaluate(&mut client, "len('x' * (1 << 30))", F::Scalar, T::Numeric, &[], Vec::new()).await;
    assert_status(result, tonic::Code::ResourceExhausted, &["memory limit of 128 MiB"]);
    let answer =
        evaluate(&mut client, "len('x' * 1000)", F::Scalar, T::Numeric, &[], Vec::new()).await.expect("serves on");
    assert_eq!(answer.numbers(), [1000.0]);
}

/// Two apps share one connection: whatever one script leaves behind — data in a module, a
/// replaced library function, a changed builtin — no later script sees, from any app or user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_one_evaluation_does_is_seen_by_the_next() {
    let server = server().await;
    let mut client = server.client().await;
    let x = [("Sales", T::Numeric)];
    let secret = bundles(n(&[1234.5, 99.0]), 1);
    let attack = "import math, sys, builtins\n\
                  math.stolen = list(args[0])\n\
                  sys.modules['statistics'].stolen = list(args[0])\n\
                  math.fsum = lambda values: -1.0\n\
                  builtins.sum = lambda values, *rest: -2.0\n\
                  builtins.stolen = list(args[0])\n\
                  result = 1.0";
    // Several times, so that every instance an engine might keep would have been touched.
    for _ in 0..4 {
        let answer = evaluate(&mut client, attack, F::Aggregation, T::Numeric, &x, secret.clone()).await.expect("runs");
        assert_eq!(answer.numbers(), [1.0]);
    }
    for _ in 0..4 {
        let probe = "import math, statistics, builtins\n\
                     result = math.fsum(args[0]) * 10 + sum(args[0]) \
                     + 1000 * float(hasattr(math, 'stolen') or hasattr(statistics, 'stolen') or hasattr(builtins, 'stolen'))";
        let answer = evaluate(&mut client, probe, F::Aggregation, T::Numeric, &x, bundles(n(&[1.0, 2.0]), 1))
            .await
            .expect("runs");
        assert_eq!(answer.numbers(), [33.0], "fsum and sum untouched, nothing stolen");
    }
}
