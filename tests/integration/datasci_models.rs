//! The model store through gRPC: a model trained by one call (`Train`, in a load script) is used
//! by later calls of the same Qlik app (`Model_Predict`, `Model_Probability` in charts), never by
//! another app; names, size caps and the operator's read-only shared folder are enforced; a
//! model survives a restart, and writers racing on one name leave a whole model; a host without a
//! store says which flag it needs.

use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sse_wasm::server::{ServeOptions, serve_metrics};
use sse_wasm::wasm::Limits;
use sse_wasm::wasm::{ModelLimits, ModelStore};

use crate::datasci_analytics::{Cell, assert_close, native_lines, request};
use crate::metrics::{get, sample};
use crate::util::*;

/// The data-science engine with the prediction functions, keeping models in `store`.
async fn serve(store: &Path, shared: Option<&Path>, limits: ModelLimits) -> TestServer {
    let models = Arc::new(ModelStore::open(store, shared, limits).expect("the store opens"));
    let options = ServeOptions { models: Some(models), ..ServeOptions::default() };
    let server = TestServer::start_shared(&["datasci"], Limits::default(), options).await;
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/analytics/prediction.py");
    std::fs::copy(library, server.dir.path().join("prediction.py")).expect("copy the library");
    eventually("the model functions are served", || async {
        let served = function_names(&server).await;
        ["Train", "Model_Predict", "Model_Probability", "Models"].iter().all(|n| served.iter().any(|s| s == n))
    })
    .await;
    server
}

/// Customers: three features, a class (churned or stayed) that depends on them.
struct Data {
    features: Vec<String>,
    classes: Vec<&'static str>,
    /// The features and the class as the reference reads them: `a b c 0|1` per line.
    native: String,
}

fn data(n: usize, seed: u64) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Vec<[f64; 3]> = (0..n).map(|_| [rng.r#gen::<f64>() * 10.0, rng.r#gen(), rng.r#gen::<f64>() * 3.0]).collect();
    let classes: Vec<&str> = x
        .iter()
        .map(|r| if r[0] - 4.0 * r[1] + r[2] + rng.r#gen::<f64>() * 2.0 > 4.0 { "churned" } else { "stayed" })
        .collect();
    let features = x.iter().map(|r| format!("{};{};{}", r[0], r[1], r[2])).collect();
    let native = x
        .iter()
        .zip(&classes)
        .map(|(r, c)| format!("{} {} {} {}\n", r[0], r[1], r[2], u8::from(*c == "churned")))
        .collect();
    Data { features, classes, native }
}

/// The rows of a `Train` call.
fn training(d: &Data, options: &str) -> Vec<Vec<Cell>> {
    (0..d.features.len())
        .map(|i| vec![Cell::S(d.classes[i].into()), Cell::S(d.features[i].clone()), Cell::S(options.into())])
        .collect()
}

/// The rows of a `Model_Predict` or `Model_Probability` call.
fn using(features: &[String], options: &str) -> Vec<Vec<Cell>> {
    features.iter().map(|f| vec![Cell::S(f.clone()), Cell::S(options.into())]).collect()
}

/// The reference: the same pipeline fitted natively on the training data, applied to `new`.
fn reference(trained: &Data, new: &Data, print: &str) -> Vec<String> {
    let script = format!(
        "import sys, numpy, sklearn.linear_model, sklearn.pipeline, sklearn.preprocessing\n\
         d = numpy.loadtxt(sys.stdin); n = {}\n\
         x, c = d[:n, :3], numpy.where(d[:n, 3] == 1, 'churned', 'stayed'); new = d[n:, :3]\n\
         m = sklearn.pipeline.make_pipeline(sklearn.preprocessing.StandardScaler(), \
         sklearn.linear_model.LogisticRegression(max_iter=1000)).fit(x, c)\n{print}",
        trained.features.len()
    );
    native_lines(&script, &format!("{}{}", trained.native, new.native))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_trained_in_one_call_predicts_in_the_next_of_its_app_alone() {
    let store = tempfile::tempdir().expect("temp dir");
    let server = serve(store.path(), None, ModelLimits::default()).await;
    let mut client = server.client().await;
    let (trained, new) = (data(240, 5), data(60, 6));

    // The load script trains and keeps the model; it answers the model's metrics.
    let answer =
        call_in_app(&mut client, "sales-app", "Train", request(&training(&trained, "name=churn, test_size=0")))
            .await
            .expect("train");
    let metrics: Vec<(String, String)> =
        answer.rows().iter().map(|r| (r.duals[0].str_data.clone(), r.duals[1].str_data.clone())).collect();
    assert!(metrics.iter().all(|(model, _)| model == "churn"), "{metrics:?}");
    assert!(metrics.iter().any(|(_, m)| m == "Accuracy"), "{metrics:?}");

    // A chart of the same app predicts with it, as scikit-learn does natively.
    let answer = call_in_app(&mut client, "sales-app", "Model_Predict", request(&using(&new.features, "name=churn")))
        .await
        .expect("predict");
    assert_eq!(answer.strings(), reference(&trained, &new, "for v in m.predict(new): print(v)"), "Model_Predict");
    let answer = call_in_app(
        &mut client,
        "sales-app",
        "Model_Probability",
        request(&using(&new.features, "name=churn, class=churned")),
    )
    .await
    .expect("probability");
    let expected: Vec<f64> = reference(&trained, &new, "for v in m.predict_proba(new)[:, 0]: print(v)")
        .iter()
        .map(|v| v.parse().expect("a number"))
        .collect();
    assert_close(&answer.numbers(), &expected, 1e-9, "Model_Probability");

    // Another app sees no such model, and its own of that name leaves the first one alone.
    assert_status(
        call_in_app(&mut client, "other-app", "Model_Predict", request(&using(&new.features, "name=churn"))).await,
        tonic::Code::NotFound,
        &["churn"],
    );
    let flipped = Data {
        classes: trained.classes.iter().map(|c| if *c == "churned" { "stayed" } else { "churned" }).collect(),
        ..data(240, 5)
    };
    call_in_app(&mut client, "other-app", "Train", request(&training(&flipped, "name=churn, test_size=0")))
        .await
        .expect("the other app trains its own");
    let again = call_in_app(&mut client, "sales-app", "Model_Predict", request(&using(&new.features, "name=churn")))
        .await
        .expect("predict again");
    assert_eq!(again.strings(), reference(&trained, &new, "for v in m.predict(new): print(v)"));
    let other = call_in_app(&mut client, "other-app", "Model_Predict", request(&using(&new.features, "name=churn")))
        .await
        .expect("the other app's");
    assert_ne!(other.strings(), again.strings(), "each app predicts with its own model");

    // The Models table lists an app's own models.
    let listing = call_in_app(&mut client, "sales-app", "Models", request(&[vec![Cell::S(String::new())]]))
        .await
        .expect("models");
    assert_eq!(listing.strings(), ["churn"]);
    let bytes = listing.rows()[0].duals[1].num_data;
    assert!(bytes > 100.0, "its size in bytes: {bytes}");

    // Operators see the store in the metrics.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(serve_metrics(listener, server.metrics.clone(), std::future::pending()));
    let (_, scrape) = get(address, "/metrics").await;
    let value = |name: &str| sample(&scrape, name).unwrap_or_else(|| panic!("no sample {name} in\n{scrape}"));
    assert_eq!(value("sse_wasm_models_kept"), 2.0, "one model in each app");
    assert_eq!(value("sse_wasm_model_saves_total"), 2.0);
    assert_eq!(value("sse_wasm_model_loads_total"), 4.0, "a load that found nothing is no load");
    assert!(value("sse_wasm_model_bytes") >= 2.0 * bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_size_caps_and_the_shared_folder_are_enforced() {
    let (store, shared) = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    let limits = ModelLimits { per_model: 64 << 10, per_app: 256 << 10 };
    let server = serve(store.path(), Some(shared.path()), limits).await;
    let mut client = server.client().await;
    let trained = data(200, 7);

    // A name is never a path.
    for name in ["../escape", "a/b", ".hidden", "x y"] {
        assert_status(
            call_in_app(
                &mut client,
                "app",
                "Train",
                request(&training(&trained, &format!("name={name}, test_size=0"))),
            )
            .await,
            tonic::Code::InvalidArgument,
            &["is not a model name"],
        );
    }
    assert!(!store.path().parent().expect("parent").join("escape.model").exists(), "nothing written outside");

    // A model over the cap is refused, and the model of that name stays as it was.
    call_in_app(&mut client, "app", "Train", request(&training(&trained, "name=small, test_size=0")))
        .await
        .expect("a small model fits");
    assert_status(
        call_in_app(
            &mut client,
            "app",
            "Train",
            request(&training(&trained, "name=small, method=forest, trees=200, test_size=0")),
        )
        .await,
        tonic::Code::ResourceExhausted,
        &["small", "65536", "--model-max"],
    );
    let new = data(20, 8);
    let answer = call_in_app(&mut client, "app", "Model_Predict", request(&using(&new.features, "name=small")))
        .await
        .expect("the small model is still there");
    assert_eq!(answer.strings(), reference(&trained, &new, "for v in m.predict(new): print(v)"));

    // The app's models together stay under their cap.
    let mut refused = None;
    for i in 0..40 {
        let saved = call_in_app(
            &mut client,
            "app",
            "Train",
            request(&training(&trained, &format!("name=m{i}, method=forest, trees=5, test_size=0"))),
        )
        .await;
        if let Err(status) = saved {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("the app's cap refuses a save");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("262144") && status.message().contains("--models-max-per-app"),
        "{}",
        status.message()
    );

    // The operator's shared models: every app reads them, none writes them.
    let kept = std::fs::read_dir(store.path().join("apps"))
        .expect("apps")
        .flat_map(|d| std::fs::read_dir(d.expect("app").path()).expect("models"))
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_name().is_some_and(|n| n == "small.model"))
        .expect("small.model on disk");
    std::fs::copy(&kept, shared.path().join("company.pkl")).expect("share a model");
    let before = std::fs::read(shared.path().join("company.pkl")).expect("shared");
    let answer = call_in_app(&mut client, "any-app", "Model_Predict", request(&using(&new.features, "name=company")))
        .await
        .expect("a shared model predicts in any app");
    assert_eq!(answer.strings(), reference(&trained, &new, "for v in m.predict(new): print(v)"));
    call_in_app(
        &mut client,
        "any-app",
        "Train",
        request(&training(&trained, "name=company, method=forest, trees=5, test_size=0")),
    )
    .await
    .expect("an app keeps its own model of a shared name");
    assert_eq!(std::fs::read(shared.path().join("company.pkl")).expect("shared"), before, "the shared model unchanged");
    let listing = call_in_app(&mut client, "third-app", "Models", request(&[vec![Cell::S(String::new())]]))
        .await
        .expect("models");
    assert_eq!(listing.strings(), ["company"]);
    assert_eq!(listing.rows()[0].duals[2].str_data, "yes", "listed as shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_survive_a_restart_and_racing_saves_leave_a_whole_one() {
    let store = tempfile::tempdir().expect("temp dir");
    let (trained, new) = (data(200, 9), data(30, 10));
    let server = serve(store.path(), None, ModelLimits::default()).await;
    let client = server.client().await;
    let calls = (0..4).map(|i| {
        let mut client = client.clone();
        let rows =
            training(&trained, &format!("name=shared-name, method=forest, trees={}, seed={i}, test_size=0", 5 + i));
        async move { call_in_app(&mut client, "app", "Train", request(&rows)).await }
    });
    for result in futures::future::join_all(calls).await {
        result.expect("every save succeeds");
    }
    server.stop().await.expect("stops");

    let server = serve(store.path(), None, ModelLimits::default()).await;
    let mut client = server.client().await;
    let answer = call_in_app(&mut client, "app", "Model_Predict", request(&using(&new.features, "name=shared-name")))
        .await
        .expect("the model is whole after a restart");
    assert!(answer.strings().iter().all(|c| c == "churned" || c == "stayed"), "{:?}", answer.strings());
    let mut files: Vec<String> = std::fs::read_dir(store.path().join("apps"))
        .expect("apps")
        .flat_map(|d| std::fs::read_dir(d.expect("app").path()).expect("models"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["app-id", "shared-name.model"], "no half-written file is left");

    // The operator lists the kept models and deletes one; the app's charts then say so.
    let tool = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
            .args(["models"])
            .args(args)
            .arg("--models-dir")
            .arg(store.path())
            .output()
            .expect("sse-wasm models runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, listed, _) = tool(&["list"]);
    assert!(ok && listed.lines().any(|l| l.starts_with("app\tshared-name\t")), "{listed}");
    let (ok, _, _) = tool(&["delete", "--app", "app", "shared-name"]);
    assert!(ok, "deleted");
    let (ok, _, error) = tool(&["delete", "--app", "app", "shared-name"]);
    assert!(!ok && error.contains("no model"), "{error}");
    assert_status(
        call_in_app(&mut client, "app", "Model_Predict", request(&using(&new.features, "name=shared-name"))).await,
        tonic::Code::NotFound,
        &["shared-name"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_a_model_call_names_the_flag() {
    let server = TestServer::start_shared(&["datasci"], Limits::default(), ServeOptions::default()).await;
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/analytics/prediction.py");
    std::fs::copy(library, server.dir.path().join("prediction.py")).expect("copy the library");
    eventually("the model functions are served", || async {
        function_names(&server).await.iter().any(|n| n == "Train")
    })
    .await;
    let mut client = server.client().await;
    let trained = data(50, 11);
    assert_status(
        call_in_app(&mut client, "app", "Train", request(&training(&trained, "name=churn"))).await,
        tonic::Code::FailedPrecondition,
        &["Train", "--models-dir"],
    );
    assert_status(
        call_in_app(&mut client, "app", "Model_Predict", request(&using(&trained.features, "name=churn"))).await,
        tonic::Code::FailedPrecondition,
        &["Model_Predict", "--models-dir"],
    );
}
