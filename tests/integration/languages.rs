//! The example guests written in other languages than Rust, served and called exactly like the
//! Rust ones: a scalar or tensor function, an aggregation and a string function each.

use sse_wasm::config::{Limits, ServeOptions};
use sse_wasm::pb;

use crate::util::*;

async fn server(guest: &str) -> TestServer {
    TestServer::start_shared(&[guest], Limits::default(), ServeOptions::default()).await
}

/// The names GetCapabilities lists.
async fn names(server: &TestServer) -> Vec<String> {
    let capabilities = server.client().await.get_capabilities(pb::Empty {}).await.expect("caps").into_inner();
    let mut names: Vec<String> = capabilities.functions.into_iter().map(|f| f.name).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_functions() {
    let server = server("python_example").await;
    assert_eq!(names(&server).await, ["GeometricMean", "Multiply", "TitleCase"]);
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
}
