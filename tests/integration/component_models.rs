//! The model store through the WIT world (`qlik:sse/models`), through gRPC: a Rust component
//! saves a model in one call and loads it in later calls of the same Qlik app, never another's;
//! a refusal reaches the guest with its kind (a guest may handle a missing model itself) and, if
//! the guest then fails, the call fails with the refusal's gRPC code; names, the size cap and the
//! operator's shared folder hold as they do for Python files; calls that start inline move to a
//! call thread before they touch the store, and save once.

use std::sync::Arc;

use sse_wasm::pb;
use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::{Limits, ModelLimits, ModelStore};

use crate::util::*;

/// The test component, its models kept in `store`.
async fn serve(store: Option<Arc<ModelStore>>) -> TestServer {
    let options = ServeOptions { models: store, ..ServeOptions::default() };
    TestServer::start_full(&["test_functions"], Limits::default(), options).await
}

fn dual(number: f64, text: &str) -> pb::Dual {
    pb::Dual { num_data: number, str_data: text.to_owned() }
}

/// `SaveValues(name, x)`'s rows: model `name`, the values.
fn save_rows(name: &str, values: &[f64]) -> Vec<pb::BundledRows> {
    let rows = values.iter().map(|&x| pb::Row { duals: vec![dual(0.0, name), dual(x, "")] }).collect();
    vec![pb::BundledRows { rows }]
}

/// `SumOfModel(name)`'s rows: `n` rows naming model `name`.
fn name_rows(name: &str, n: usize) -> Vec<pb::BundledRows> {
    vec![pb::BundledRows { rows: vec![pb::Row { duals: vec![dual(0.0, name)] }; n] }]
}

/// `SumOr(name, fallback)`'s one row.
fn sum_or_rows(name: &str, fallback: f64) -> Vec<pb::BundledRows> {
    vec![pb::BundledRows { rows: vec![pb::Row { duals: vec![dual(0.0, name), dual(fallback, "")] }] }]
}

fn model_list_rows() -> Vec<pb::BundledRows> {
    vec![pb::BundledRows { rows: vec![pb::Row { duals: vec![] }] }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_keeps_models_for_its_app_alone() {
    let (dir, shared) = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    let limits = ModelLimits { per_model: 4 << 10, per_app: 64 << 10 };
    let store = Arc::new(ModelStore::open(&dir.path().join("models"), Some(shared.path()), limits).expect("opens"));
    let server = serve(Some(store.clone())).await;
    let mut client = server.client().await;

    // One call saves (it starts inline, moves to a call thread at the store, and saves once)...
    let saved = call_in_app(&mut client, "sales", "SaveValues", save_rows("w", &[1.0, 2.0, 3.5])).await.expect("saves");
    assert_eq!(saved.numbers(), [3.0]);
    assert_eq!(store.counts().saves, 1, "saved once, though the call began inline");
    // ... and later calls of the app read it, again and again.
    for _ in 0..5 {
        let sums = call_in_app(&mut client, "sales", "SumOfModel", name_rows("w", 3)).await.expect("loads");
        assert_eq!(sums.numbers(), [6.5, 6.5, 6.5]);
    }
    let listed = call_in_app(&mut client, "sales", "ModelList", model_list_rows()).await.expect("lists");
    assert_eq!(listed.strings(), ["w:24"]);

    // Another app sees none: the guest's failure carries the refusal's code...
    assert_status(
        call_in_app(&mut client, "finance", "SumOfModel", name_rows("w", 1)).await,
        tonic::Code::NotFound,
        &["SumOfModel", "no model named w", "its models: none"],
    );
    // ... or the guest handles the refusal by its kind, and the call succeeds.
    let fallback = call_in_app(&mut client, "finance", "SumOr", sum_or_rows("w", 7.0)).await.expect("falls back");
    assert_eq!(fallback.numbers(), [7.0]);
    // Its own model of that name leaves the first app's alone.
    call_in_app(&mut client, "finance", "SaveValues", save_rows("w", &[10.0])).await.expect("saves its own");
    let sums = call_in_app(&mut client, "sales", "SumOr", sum_or_rows("w", 0.0)).await.expect("loads");
    assert_eq!(sums.numbers(), [6.5]);
    let sums = call_in_app(&mut client, "finance", "SumOr", sum_or_rows("w", 0.0)).await.expect("loads");
    assert_eq!(sums.numbers(), [10.0]);

    // A name is never a path; a model over the cap is refused and the old one kept.
    for name in ["../escape", "a/b", ".hidden", ""] {
        assert_status(
            call_in_app(&mut client, "sales", "SaveValues", save_rows(name, &[1.0])).await,
            tonic::Code::InvalidArgument,
            &["is not a model name"],
        );
    }
    assert!(!dir.path().join("escape.model").exists(), "nothing written outside the store");
    assert_status(
        call_in_app(&mut client, "sales", "SaveValues", save_rows("w", &vec![1.0; 1000])).await,
        tonic::Code::ResourceExhausted,
        &["model w is 8000 bytes", "--model-max"],
    );
    let sums = call_in_app(&mut client, "sales", "SumOfModel", name_rows("w", 1)).await.expect("the old one");
    assert_eq!(sums.numbers(), [6.5]);

    // The operator's shared models: read by every app, listed as shared, never replaced.
    let company: Vec<u8> = [2.0f64, 40.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(shared.path().join("company.pkl"), &company).expect("share a model");
    let sums = call_in_app(&mut client, "any-app", "SumOfModel", name_rows("company", 1)).await.expect("shared");
    assert_eq!(sums.numbers(), [42.0]);
    call_in_app(&mut client, "any-app", "SaveValues", save_rows("company", &[1.0])).await.expect("its own");
    assert_eq!(std::fs::read(shared.path().join("company.pkl")).expect("shared"), company, "unchanged");
    let listed = call_in_app(&mut client, "any-app", "ModelList", model_list_rows()).await.expect("lists");
    assert_eq!(listed.strings(), ["company:8,company:16+shared"]);
    let sums = call_in_app(&mut client, "any-app", "SumOfModel", name_rows("company", 1)).await.expect("its own first");
    assert_eq!(sums.numbers(), [1.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_a_component_call_names_the_flag() {
    let server = serve(None).await;
    let mut client = server.client().await;
    assert_status(
        call_in_app(&mut client, "sales", "SaveValues", save_rows("w", &[1.0])).await,
        tonic::Code::FailedPrecondition,
        &["SaveValues", "--models-dir"],
    );
    // Functions that do not use the store are unaffected.
    let answer = call(&mut client, "FortyTwo", vec![pb::BundledRows { rows: vec![pb::Row { duals: vec![] }] }])
        .await
        .expect("answers");
    assert_eq!(answer.numbers(), [42.0]);
}

/// A guest that asks the store to keep a model far over `--model-max` is refused by the model's
/// length alone: the host never copies it out of the guest first. Four calls at once, each
/// offering 96 MiB (grown and never touched by the guest; wasmtime lets a guest hand the host at
/// most 128 MiB in one call), leave the host's peak resident memory where it was, and the host
/// serves on. `--keep-resident 1`: a slot zeroes the first `--keep-resident` MiB of a memory in
/// place when it is reset, which makes that much of a grown memory resident per slot (the cost
/// the README states for the flag); at the default 32 that would be 4 × 32 MiB here, hiding
/// whether the model itself was copied.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_over_the_cap_is_refused_without_copying_it() {
    let root = tempfile::tempdir().expect("temp dir");
    let args = ["--models-dir", "models", "--model-max", "1", "--keep-resident", "1"];
    let binary = Binary::start(root.path(), &["hostile_calls"], &args, "warn").await;
    let client = binary.client().await;
    let pid = binary.child.id().expect("running");
    let before = crate::datasci::peak_resident(pid);
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let mut client = client.clone();
            let rows = vec![pb::BundledRows { rows: vec![row(&[V::N(96.0)])] }];
            tokio::spawn(async move { call_in_app(&mut client, "app", "SaveGrown", rows).await })
        })
        .collect();
    for call in calls {
        assert_status(
            call.await.expect("join"),
            tonic::Code::ResourceExhausted,
            &["model grown is 100663296 bytes", "--model-max"],
        );
    }
    let grown = crate::datasci::peak_resident(pid).saturating_sub(before);
    assert!(grown < 64 << 20, "the host's peak resident memory grew by {} MiB", grown >> 20);
    let mut client = client.clone();
    let rows = vec![pb::BundledRows { rows: vec![row(&[V::N(0.0)])] }];
    let answer = call_in_app(&mut client, "app", "SaveGrown", rows).await.expect("an empty model fits");
    assert_eq!(answer.numbers(), [1.0]);
}
