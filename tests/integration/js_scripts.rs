//! Qlik's eight script functions through EvaluateScript, run by the JavaScript script engine
//! guest (`#!js`): the `args` convention shared with the Python engine, errors that name the JS
//! exception, limits, the sandbox, and no state kept from one evaluation to the next.

use std::time::Duration;

use sse_wasm::pb::{self, DataType as T, FunctionType as F};
use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::Limits;

use crate::util::*;

const ENGINE: &str = "js_scripts";

async fn server() -> TestServer {
    TestServer::start_shared(&[ENGINE], Limits::default(), ServeOptions::default()).await
}

/// `ScriptAggr` of the sum of one numeric column sent as `messages`.
async fn sum(
    client: &mut sse_wasm::pb::connector_client::ConnectorClient<tonic::transport::Channel>,
    messages: Vec<pb::BundledRows>,
) -> Result<Answer, tonic::Status> {
    let x = [("X", T::Numeric)];
    evaluate(client, "args[0].reduce((s, v) => s + v, 0)", F::Aggregation, T::Numeric, &x, messages).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_eight_script_functions_in_javascript() {
    let server = server().await;
    let mut client = server.client().await;
    let capabilities = client.get_capabilities(pb::Empty {}).await.expect("caps").into_inner();
    assert!(capabilities.allow_script);
    let x = [("X", T::Numeric)];

    // ScriptEval: a tensor over several bundles, and a scalar.
    let rows: Vec<pb::Row> = (0..10).map(|i| row(&[V::N(f64::from(i)), V::N(0.5)])).collect();
    let params = [("A", T::Numeric), ("B", T::Numeric)];
    let answer = evaluate(
        &mut client,
        "args[0].map((a, i) => a + args[1][i])",
        F::Tensor,
        T::Numeric,
        &params,
        bundles(rows, 3),
    )
    .await
    .expect("ScriptEval");
    assert_eq!(answer.numbers(), (0..10).map(|i| f64::from(i) + 0.5).collect::<Vec<_>>());
    let answer =
        evaluate(&mut client, "args[0].map(a => a * 2)", F::Scalar, T::Numeric, &x, bundles(numbers(&[1.0, -2.5]), 1))
            .await
            .expect("scalar");
    assert_eq!(answer.numbers(), [2.0, -5.0]);

    // ScriptAggr over 1000 rows in many bundles.
    let values: Vec<f64> = (1..=1000).map(f64::from).collect();
    let answer = sum(&mut client, bundles(numbers(&values), 128)).await.expect("ScriptAggr");
    assert_eq!(answer.numbers(), [500_500.0]);

    // ScriptEvalStr and ScriptAggrStr.
    let texts = vec![row(&[V::S("äpfel")]), row(&[V::S("b")]), row(&[V::S("")])];
    let s = [("S", T::String)];
    let answer =
        evaluate(&mut client, "args[0].map(s => s.toUpperCase())", F::Scalar, T::String, &s, bundles(texts.clone(), 2))
            .await
            .expect("ScriptEvalStr");
    assert_eq!(answer.strings(), ["ÄPFEL", "B", ""]);
    let answer = evaluate(&mut client, "args[0].join('|')", F::Aggregation, T::String, &s, bundles(texts, 2))
        .await
        .expect("ScriptAggrStr");
    assert_eq!(answer.strings(), ["äpfel|b|"]);

    // The Ex variants: a number, a string and a dual, which arrives as [numbers, texts].
    let params = [("Amount", T::Numeric), ("Name", T::String), ("Day", T::Dual)];
    let rows = vec![
        row(&[V::N(1.5), V::S("a"), V::D(45_000.0, "2023-03-15")]),
        row(&[V::N(2.0), V::S("b"), V::D(45_001.0, "2023-03-16")]),
    ];
    let script = "args[0].map((n, i) => n + args[2][0][i])";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &params, bundles(rows.clone(), 1))
        .await
        .expect("ScriptEvalEx");
    assert_eq!(answer.numbers(), [45_001.5, 45_003.0]);
    let script = "args[1].map((s, i) => `${s}@${args[2][1][i]}`)";
    let answer = evaluate(&mut client, script, F::Tensor, T::String, &params, bundles(rows.clone(), 1))
        .await
        .expect("ScriptEvalExStr");
    assert_eq!(answer.strings(), ["a@2023-03-15", "b@2023-03-16"]);
    let script = "Math.max(...args[2][0]) - Math.min(...args[2][0]) + args[0].reduce((s, v) => s + v)";
    let answer = evaluate(&mut client, script, F::Aggregation, T::Numeric, &params, bundles(rows.clone(), 1))
        .await
        .expect("ScriptAggrEx");
    assert_eq!(answer.numbers(), [4.5]);
    let script = "args[1][args[2][0].indexOf(Math.max(...args[2][0]))]";
    let answer = evaluate(&mut client, script, F::Aggregation, T::String, &params, bundles(rows, 1))
        .await
        .expect("ScriptAggrExStr");
    assert_eq!(answer.strings(), ["b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_bodies_several_columns_and_dual_answers() {
    let server = server().await;
    let mut client = server.client().await;
    let a = [("A", T::Numeric)];

    // A function body that returns, for what one expression cannot say.
    let script = "#!js\nconst total = args[0].reduce((s, v) => s + v, 0);\nreturn args[0].map(v => v / total);";
    let answer = evaluate(&mut client, script, F::Tensor, T::Numeric, &a, bundles(numbers(&[1.0, 3.0]), 1))
        .await
        .expect("statements");
    assert_eq!(answer.numbers(), [0.25, 0.75]);

    // An array of arrays answers several columns; no parameters answers what it evaluates to.
    let answer = evaluate(
        &mut client,
        "args[0].map(a => [a, a * a])",
        F::Tensor,
        T::Numeric,
        &a,
        bundles(numbers(&[2.0, 3.0]), 1),
    )
    .await
    .expect("two columns");
    let rows: Vec<Vec<f64>> = answer.rows().iter().map(|r| r.duals.iter().map(|d| d.num_data).collect()).collect();
    assert_eq!(rows, [[2.0, 4.0], [3.0, 9.0]]);
    let answer =
        evaluate(&mut client, "6 * 7", F::Scalar, T::Numeric, &[], vec![pb::BundledRows { rows: vec![row(&[])] }])
            .await
            .expect("no params");
    assert_eq!(answer.numbers(), [42.0]);

    // Dual answers: { number, text } objects, or plain values.
    let answer = evaluate(
        &mut client,
        "[{ number: 1, text: 'one' }, 2]",
        F::Tensor,
        T::Dual,
        &a,
        bundles(numbers(&[0.0, 0.0]), 1),
    )
    .await
    .expect("duals");
    let duals: Vec<(f64, String)> =
        answer.rows().iter().map(|r| (r.duals[0].num_data, r.duals[0].str_data.clone())).collect();
    assert_eq!(duals, [(1.0, "one".to_owned()), (2.0, "2".to_owned())]);

    // null and undefined are Qlik's null (NaN) in a numeric answer.
    let answer =
        evaluate(&mut client, "[null, undefined, 1]", F::Tensor, T::Numeric, &a, bundles(numbers(&[0.0; 3]), 1))
            .await
            .expect("nulls");
    let numbers = answer.numbers();
    assert!(numbers[0].is_nan() && numbers[1].is_nan() && numbers[2] == 1.0, "{numbers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_errors_name_the_exception_and_the_engine_serves_on() {
    let server = server().await;
    let mut client = server.client().await;
    let one = || bundles(numbers(&[1.0, 2.0, 3.0]), 2);
    let x = [("X", T::Numeric)];

    let result =
        evaluate(&mut client, "#!js\nargs[0].reduce((s, v) => s + v", F::Aggregation, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["SyntaxError", "line 2"]);
    let result = evaluate(&mut client, "undefinedName + 1", F::Scalar, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["ReferenceError", "undefinedName"]);
    let result = evaluate(&mut client, "const a = 1;\nnull.x", F::Scalar, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["TypeError", "line 2"]);
    let result = evaluate(&mut client, "throw new RangeError('too far')", F::Scalar, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["RangeError: too far"]);
    let result = evaluate(&mut client, "args[0].map(v => 'a')", F::Tensor, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["TypeError", "where a number is expected"]);
    // Rows go to Qlik as answered, however many (Qlik pads or drops them in a chart).
    let answer = evaluate(&mut client, "[1]", F::Tensor, T::Numeric, &x, one()).await.expect("one row for three");
    assert_eq!(answer.numbers(), [1.0]);
    // Strict mode: assigning an undeclared name is an error, not a global.
    let result = evaluate(&mut client, "leaked = 1; return 1;", F::Scalar, T::Numeric, &[], Vec::new()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["ReferenceError", "leaked"]);

    let answer =
        evaluate(&mut client, "args[0].length", F::Aggregation, T::Numeric, &x, one()).await.expect("serves on");
    assert_eq!(answer.numbers(), [3.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_scripts_are_sandboxed_and_bounded_and_keep_nothing() {
    let limits = Limits { call_timeout: Duration::from_secs(2), max_memory_bytes: 128 << 20, ..Limits::default() };
    let server = TestServer::start_shared(&[ENGINE], limits, ServeOptions::default()).await;
    let mut client = server.client().await;

    let result = evaluate(&mut client, "for (;;) {}", F::Scalar, T::Numeric, &[], Vec::new()).await;
    assert_status(result, tonic::Code::DeadlineExceeded, &["time limit"]);
    let result =
        evaluate(&mut client, "new Float64Array(1 << 26).fill(1).length", F::Scalar, T::Numeric, &[], Vec::new()).await;
    assert!(
        matches!(&result, Err(s) if s.code() == tonic::Code::ResourceExhausted
            || (s.code() == tonic::Code::InvalidArgument && s.message().contains("memory"))),
        "a memory bomb is refused: {result:?}"
    );

    // No module loader, no process, and no network: the component imports no wasi:http, so
    // SpiderMonkey's `fetch` reaches nobody.
    let answer =
        evaluate(&mut client, "[typeof require, typeof process].join(',')", F::Scalar, T::String, &[], Vec::new())
            .await
            .expect("globals");
    assert_eq!(answer.strings(), ["undefined,undefined"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let script = format!("try {{ fetch('http://127.0.0.1:{port}/'); }} catch (e) {{ }} return 'done';");
    let _ = evaluate(&mut client, &script, F::Scalar, T::String, &[], Vec::new()).await;
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(listener.accept().is_err(), "no connection reached the listener");

    // What one script leaves on globalThis is gone by the next.
    evaluate(&mut client, "globalThis.leaked = 1; return 1;", F::Scalar, T::Numeric, &[], Vec::new())
        .await
        .expect("defines");
    let answer =
        evaluate(&mut client, "typeof globalThis.leaked", F::Scalar, T::String, &[], Vec::new()).await.expect("checks");
    assert_eq!(answer.strings(), ["undefined"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_engines_side_by_side() {
    // Scripts without a first line go to Python, though js_scripts comes first by file name.
    let server =
        TestServer::start_shared(&[ENGINE, "python_scripts"], Limits::default(), ServeOptions::default()).await;
    let mut client = server.client().await;
    let x = [("X", T::Numeric)];
    let one = || bundles(numbers(&[1.0, 2.0]), 1);
    let answer = evaluate(&mut client, "sum(args[0])", F::Aggregation, T::Numeric, &x, one()).await.expect("python");
    assert_eq!(answer.numbers(), [3.0]);
    let python = "[v * 2 for v in args[0]]";
    let answer = evaluate(&mut client, python, F::Tensor, T::Numeric, &x, one()).await.expect("python by default");
    assert_eq!(answer.numbers(), [2.0, 4.0]);
    let answer =
        evaluate(&mut client, "#!js\nMath.max(...args[0])", F::Aggregation, T::Numeric, &x, one()).await.expect("js");
    assert_eq!(answer.numbers(), [2.0]);
    let result = evaluate(&mut client, "#!r\n1", F::Aggregation, T::Numeric, &x, one()).await;
    assert_status(result, tonic::Code::FailedPrecondition, &["loaded: js, python"]);

    // --script-language js sends them to JavaScript instead.
    let options = ServeOptions { script_language: Some("js".to_owned()), ..ServeOptions::default() };
    let server = TestServer::start_shared(&[ENGINE, "python_scripts"], Limits::default(), options).await;
    let mut client = server.client().await;
    let answer = evaluate(&mut client, "args[0].map(v => v * 3)", F::Tensor, T::Numeric, &x, one()).await.expect("js");
    assert_eq!(answer.numbers(), [3.0, 6.0]);
}

/// Finished evaluations' stores wait for the engine's preparing thread to free them; a busy
/// machine may give that thread no CPU for a while. However long it stands still, evaluations
/// keep finding room in the instance pool: only a few stores wait, past that each evaluation
/// frees its own. (With every store waiting, the ninth evaluation here failed: "no instance
/// slot is free".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluations_go_on_while_the_preparing_thread_gets_no_cpu() {
    // Room for 8 instances at once: the engine's 2 made ahead, the one evaluating, and the
    // stores waiting to be freed.
    let limits = Limits { instances: 8, ..Limits::default() };
    let server = TestServer::start_shared(&[ENGINE], limits, ServeOptions::default()).await;
    let mut client = server.client().await;
    let engine = || server.registry.load().script_engines().next().expect("the engine").clone();
    engine().scripts.as_ref().expect("a script engine").hold_preparing(true);
    let x = [("X", T::Numeric)];
    for i in 0..24 {
        let answer = sum(&mut client, bundles(numbers(&[f64::from(i), 1.0]), 1))
            .await
            .unwrap_or_else(|status| panic!("evaluation {i} while the preparing thread stands still: {status:?}"));
        assert_eq!(answer.numbers(), [f64::from(i) + 1.0]);
    }
    engine().scripts.as_ref().expect("a script engine").hold_preparing(false);
    let answer = evaluate(&mut client, "args[0][0] * 2", F::Aggregation, T::Numeric, &x, bundles(numbers(&[4.0]), 1))
        .await
        .expect("evaluates once the thread runs again");
    assert_eq!(answer.numbers(), [8.0]);
}
