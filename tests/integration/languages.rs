//! The example guests written in other languages than Rust, served and called exactly like the
//! Rust ones: a scalar or tensor function, an aggregation and a string function each, and, where
//! the language's SDK reaches the model store, a model saved by one call and used by the next of
//! the same Qlik app only.

use std::sync::Arc;

use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::{Limits, ModelLimits, ModelStore};

use sse_wasm::pb;

use crate::util::*;

async fn server(guest: &str) -> TestServer {
    TestServer::start_shared(&[guest], Limits::default(), ServeOptions::default()).await
}

/// `guest` keeping models in a store of its own, which lives as long as the folder returned.
async fn server_with_models(guest: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ModelStore::open(&dir.path().join("models"), None, ModelLimits::default()).expect("opens");
    let options = ServeOptions { models: Some(Arc::new(store)), ..ServeOptions::default() };
    (TestServer::start_shared(&[guest], Limits::default(), options).await, dir)
}

/// Saves with `save` (rows naming model "m") in app "sales", then checks `using` answers
/// `expected` in that app and NOT_FOUND, naming the model, in another.
async fn keeps_a_model(guest: &str, save: (&str, Vec<pb::Row>, f64), using: (&str, Vec<pb::Row>, &[f64])) {
    let (server, _store) = server_with_models(guest).await;
    let mut client = server.client().await;
    let (save, rows, answered) = save;
    let answer = call_in_app(&mut client, "sales", save, bundles(rows, 2)).await.expect("saves");
    assert_eq!(answer.numbers(), [answered], "{save}");
    let (function, rows, expected) = using;
    let answer = call_in_app(&mut client, "sales", function, bundles(rows.clone(), 2)).await.expect("uses it");
    assert_eq!(answer.numbers(), expected, "{function}");
    assert_status(
        call_in_app(&mut client, "finance", function, bundles(rows, 2)).await,
        tonic::Code::NotFound,
        &[function, "no model named m"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_functions() {
    let server = server("python_example").await;
    assert_eq!(function_names(&server).await, ["GeometricMean", "Multiply", "SaveMean", "SavedMean", "TitleCase"]);
    let mut client = server.client().await;

    let rows = vec![row(&[V::N(2.0), V::N(3.5)]), row(&[V::N(-1.0), V::N(4.0)]), row(&[V::N(0.0), V::N(9.0)])];
    let answer = call(&mut client, "Multiply", bundles(rows, 2)).await.expect("Multiply");
    assert_eq!(answer.numbers(), [7.0, -4.0, 0.0]);

    let answer = call(&mut client, "GeometricMean", bundles(numbers(&[2.0, 8.0, f64::NAN, 4.0]), 3)).await;
    let mean = answer.expect("GeometricMean").numbers()[0];
    assert!((mean - 4.0).abs() < 1e-12, "{mean}");

    let texts = vec![row(&[V::S("hello wörld")]), row(&[V::S("")])];
    let answer = call(&mut client, "TitleCase", bundles(texts, 1)).await.expect("TitleCase");
    assert_eq!(answer.strings(), ["Hello Wörld", ""]);

    let answer = call(&mut client, "GeometricMean", bundles(numbers(&[-1.0]), 1)).await.expect("no positives");
    assert!(answer.numbers()[0].is_nan(), "no positive values answer NaN (Qlik's null)");

    // Without a model store, a model function says which flag it needs.
    let saving = vec![row(&[V::S("m"), V::N(1.0)])];
    let result = call(&mut client, "SaveMean", bundles(saving, 1)).await;
    assert_status(result, tonic::Code::FailedPrecondition, &["SaveMean", "--models-dir"]);

    let saving = [1.0, 2.0, 3.0, f64::NAN].map(|x| row(&[V::S("m"), V::N(x)]));
    let using = vec![row(&[V::S("m")]), row(&[V::S("m")])];
    keeps_a_model("python_example", ("SaveMean", saving.to_vec(), 2.0), ("SavedMean", using, &[2.0, 2.0])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_functions() {
    let server = server("js_example").await;
    assert_eq!(function_names(&server).await, ["Clamp", "ClampToSaved", "Reverse", "SaveRange", "Spread"]);
    let mut client = server.client().await;

    let rows = vec![
        row(&[V::N(15.0), V::N(0.0), V::N(10.0)]),
        row(&[V::N(-3.0), V::N(-1.0), V::N(1.0)]),
        row(&[V::N(0.5), V::N(0.0), V::N(1.0)]),
    ];
    let answer = call(&mut client, "Clamp", bundles(rows, 2)).await.expect("Clamp");
    assert_eq!(answer.numbers(), [10.0, -1.0, 0.5]);

    // A thrown error fails the call with its message.
    let result = call(&mut client, "Clamp", bundles(vec![row(&[V::N(1.0), V::N(5.0), V::N(2.0)])], 1)).await;
    assert_status(result, tonic::Code::InvalidArgument, &["Clamp failed", "RangeError", "Low (5) is above High (2)"]);

    let answer = call(&mut client, "Spread", bundles(numbers(&[3.0, f64::NAN, -2.0, 7.5]), 3)).await.expect("Spread");
    assert_eq!(answer.numbers(), [9.5]);

    let texts = vec![row(&[V::S("Qlik ✓")]), row(&[V::S("")])];
    let answer = call(&mut client, "Reverse", bundles(texts, 1)).await.expect("Reverse");
    assert_eq!(answer.strings(), ["✓ kilQ", ""]);

    let saving = [2.0, 8.0, f64::NAN].map(|x| row(&[V::S("m"), V::N(x)]));
    let using = vec![row(&[V::N(10.0), V::S("m")]), row(&[V::N(1.0), V::S("m")]), row(&[V::N(5.0), V::S("m")])];
    keeps_a_model("js_example", ("SaveRange", saving.to_vec(), 2.0), ("ClampToSaved", using, &[8.0, 2.0, 5.0])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_functions() {
    let server = server("c_example").await;
    assert_eq!(
        function_names(&server).await,
        ["Hypotenuse", "SaveSumOfSquares", "SavedSumOfSquares", "SumOfSquares", "Trim"]
    );
    let mut client = server.client().await;

    let rows = vec![row(&[V::N(3.0), V::N(4.0)]), row(&[V::N(5.0), V::N(12.0)])];
    let answer = call(&mut client, "Hypotenuse", bundles(rows, 1)).await.expect("Hypotenuse");
    assert_eq!(answer.numbers(), [5.0, 13.0]);

    let values: Vec<f64> = (1..=100).map(f64::from).chain([f64::NAN]).collect();
    let answer = call(&mut client, "SumOfSquares", bundles(numbers(&values), 7)).await.expect("SumOfSquares");
    assert_eq!(answer.numbers(), [338_350.0]);

    let texts = vec![row(&[V::S("  héllo wörld \t")]), row(&[V::S("   ")]), row(&[V::S("x")])];
    let answer = call(&mut client, "Trim", bundles(texts, 2)).await.expect("Trim");
    assert_eq!(answer.strings(), ["héllo wörld", "", "x"]);

    let saving = [1.0, 2.0, f64::NAN, 3.0].map(|x| row(&[V::S("m"), V::N(x)]));
    let using = vec![row(&[V::S("m")]), row(&[V::S("m")]), row(&[V::S("m")])];
    keeps_a_model("c_example", ("SaveSumOfSquares", saving.to_vec(), 14.0), ("SavedSumOfSquares", using, &[14.0; 3]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zig_functions() {
    let server = server("zig_example").await;
    assert_eq!(function_names(&server).await, ["CountPresent", "Initials", "SaveCount", "SavedCount", "ToFahrenheit"]);
    let mut client = server.client().await;

    let answer =
        call(&mut client, "ToFahrenheit", bundles(numbers(&[0.0, 100.0, -40.0, 37.5]), 3)).await.expect("ToFahrenheit");
    assert_eq!(answer.numbers(), [32.0, 212.0, -40.0, 99.5]);

    // Many bundles, nulls among them: the count lives in the invocation across batches.
    let values: Vec<f64> = (0..10_000).map(|i| if i % 10 == 0 { f64::NAN } else { f64::from(i) }).collect();
    let answer = call(&mut client, "CountPresent", bundles(numbers(&values), 64)).await.expect("CountPresent");
    assert_eq!(answer.numbers(), [9_000.0]);

    let texts =
        vec![row(&[V::S("hello big world")]), row(&[V::S("  élan vital ")]), row(&[V::S("")]), row(&[V::S("x")])];
    let answer = call(&mut client, "Initials", bundles(texts, 2)).await.expect("Initials");
    assert_eq!(answer.strings(), ["HBW", "éV", "", "X"]);

    // Large inputs, many calls: the allocator and the adapter hold up.
    let long: Vec<_> = (0..50_000)
        .map(|i| sse_wasm::pb::Row {
            duals: vec![sse_wasm::pb::Dual { num_data: 0.0, str_data: format!("word {i} next") }],
        })
        .collect();
    for _ in 0..5 {
        let answer = call(&mut client, "Initials", bundles(long.clone(), 2000)).await.expect("large Initials");
        let strings = answer.strings();
        assert_eq!(strings.len(), 50_000);
        for (i, initials) in strings.iter().enumerate() {
            let first_digit = i.to_string().chars().next().expect("a digit");
            assert_eq!(initials, &format!("W{first_digit}N"), "row {i}");
        }
    }

    let saving = [1.0, f64::NAN, 3.0].map(|x| row(&[V::S("m"), V::N(x)]));
    let using = vec![row(&[V::S("m")]), row(&[V::S("m")])];
    keeps_a_model("zig_example", ("SaveCount", saving.to_vec(), 2.0), ("SavedCount", using, &[2.0; 2])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_functions() {
    let server = server("go_example").await;
    assert_eq!(function_names(&server).await, ["Product", "RoundTo", "SaveProduct", "SavedProduct", "SnakeCase"]);
    let mut client = server.client().await;

    let rows = vec![row(&[V::N(1.23456), V::N(2.0)]), row(&[V::N(-2.5), V::N(0.0)])];
    let answer = call(&mut client, "RoundTo", bundles(rows, 1)).await.expect("RoundTo");
    assert_eq!(answer.numbers(), [1.23, -3.0]);
    let result = call(&mut client, "RoundTo", bundles(vec![row(&[V::N(1.0), V::N(99.0)])], 1)).await;
    assert_status(result, tonic::Code::InvalidArgument, &["Digits must be from 0 to 15, not 99"]);

    let values: Vec<f64> = (1..=20).map(|i| if i % 5 == 0 { f64::NAN } else { 1.5 }).collect();
    let answer = call(&mut client, "Product", bundles(numbers(&values), 3)).await.expect("Product");
    assert_eq!(answer.numbers(), [1.5f64.powi(16)]);

    let texts = vec![row(&[V::S("Hello, big World")]), row(&[V::S("  déjà vu ")]), row(&[V::S("")])];
    let answer = call(&mut client, "SnakeCase", bundles(texts, 2)).await.expect("SnakeCase");
    assert_eq!(answer.strings(), ["hello_big_world", "déjà_vu", ""]);

    // Large inputs over many batches and calls: Go's heap grows through the host's allocations
    // (cabi_realloc) with the collector run only between exports, never inside them.
    let long: Vec<_> = (0..300_000)
        .map(|i| sse_wasm::pb::Row {
            duals: vec![sse_wasm::pb::Dual { num_data: 0.0, str_data: format!("Row Number {i} Of Many") }],
        })
        .collect();
    for _ in 0..3 {
        let answer = call(&mut client, "SnakeCase", bundles(long.clone(), 2000)).await.expect("large SnakeCase");
        let strings = answer.strings();
        assert_eq!(strings.len(), 300_000);
        for (i, snake) in strings.iter().enumerate().step_by(997) {
            assert_eq!(snake, &format!("row_number_{i}_of_many"));
        }
    }
    let many: Vec<f64> = vec![1.0; 1_000_000];
    let answer = call(&mut client, "Product", bundles(numbers(&many), 2000)).await.expect("large Product");
    assert_eq!(answer.numbers(), [1.0]);

    // Go never collects within a call: a call past the memory cap fails cleanly, and the next
    // call, in a fresh instance, succeeds.
    let limits = Limits { max_memory_bytes: 64 << 20, ..Limits::default() };
    let small = TestServer::start_with(&["go_example"], limits).await;
    let mut client = small.client().await;
    let result = call(&mut client, "SnakeCase", bundles(long, 2000)).await;
    assert_status(result, tonic::Code::ResourceExhausted, &["memory limit of 64 MiB"]);
    let answer = call(&mut client, "SnakeCase", bundles(vec![row(&[V::S("After All")])], 1)).await.expect("serves on");
    assert_eq!(answer.strings(), ["after_all"]);
    let saving = [1.5, f64::NAN, 4.0].map(|x| row(&[V::S("m"), V::N(x)]));
    let using = vec![row(&[V::S("m")]), row(&[V::S("m")])];
    keeps_a_model("go_example", ("SaveProduct", saving.to_vec(), 6.0), ("SavedProduct", using, &[6.0; 2])).await;
}

/// The committed Zig bindings were translated from the C bindings as they are now (`make zig-bindings`).
#[test]
fn the_zig_bindings_match_the_c_bindings() {
    use sha2::Digest;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read(root.join("guests/c/gen/plugin.h")).expect("plugin.h");
    let recorded = std::fs::read_to_string(root.join("guests/zig/gen/PLUGIN_H_SHA256")).expect("recorded hash");
    let actual: String = sha2::Sha256::digest(&header).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        recorded.trim(),
        actual,
        "guests/c/gen/plugin.h changed since guests/zig/gen was made: run `make zig-bindings`"
    );
}

/// The committed C bindings were generated from the WIT as it is now (`make c-bindings`).
#[test]
fn the_c_bindings_match_the_wit() {
    use sha2::Digest;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let wit = std::fs::read(root.join("wit/sse.wit")).expect("wit");
    let recorded = std::fs::read_to_string(root.join("guests/c/gen/WIT_SHA256")).expect("recorded hash");
    let actual: String = sha2::Sha256::digest(&wit).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(recorded.trim(), actual, "wit/sse.wit changed since guests/c/gen was generated: run `make c-bindings`");
}
