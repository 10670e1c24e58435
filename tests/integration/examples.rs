//! The example guests answer as Qlik's own example plugins do, through the real gRPC interface.

use prost::Message;
use sse_wasm::functions::registry::function_id;
use sse_wasm::pb;

use crate::util::{TestServer, V, bundles, call, numbers, row};

const EXAMPLES: &[&str] = &["hello_world", "column_operations", "stats", "text"];

fn strings(values: &[&'static str]) -> Vec<pb::Row> {
    values.iter().map(|&s| row(&[V::S(s)])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_list_every_function_with_stable_ids() {
    let server = TestServer::start(EXAMPLES).await;
    let caps = server.client().await.get_capabilities(pb::Empty {}).await.expect("capabilities").into_inner();
    assert!(!caps.allow_script);
    assert_eq!(caps.plugin_identifier, "sse-wasm");
    let find = |name: &str| caps.functions.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name} missing"));

    let sum = find("SumOfRows");
    assert_eq!(sum.function_id, function_id("SumOfRows"));
    assert_eq!(sum.function_type, pb::FunctionType::Tensor as i32);
    assert_eq!(sum.return_type, pb::DataType::Numeric as i32);
    let params: Vec<_> = sum.params.iter().map(|p| (p.name.as_str(), p.data_type)).collect();
    assert_eq!(params, [("col1", pb::DataType::Numeric as i32), ("col2", pb::DataType::Numeric as i32)]);

    let aggr = find("HelloWorldAggr");
    assert_eq!(aggr.function_type, pb::FunctionType::Aggregation as i32);
    assert_eq!(aggr.return_type, pb::DataType::String as i32);
    assert_eq!(find("Percentile").params.len(), 2);
    for name in [
        "HelloWorld",
        "Cache",
        "NoCache",
        "EchoTable_3",
        "SumOfColumn",
        "MaxOfColumns_2",
        "Mean",
        "Median",
        "StDev",
        "Pearson",
        "Upper",
        "Replace",
        "RegexMatch",
    ] {
        assert_eq!(find(name).function_id, function_id(name));
    }
    let mut ids: Vec<i32> = caps.functions.iter().map(|f| f.function_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), caps.functions.len(), "ids are unique");
    assert!(ids.iter().all(|&id| id >= 0));

    // A second server (a restart, or another replica) publishes the same ids.
    let again = TestServer::start(EXAMPLES).await;
    let caps_again = again.client().await.get_capabilities(pb::Empty {}).await.expect("capabilities").into_inner();
    assert_eq!(caps.functions, caps_again.functions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_operations_over_several_bundles() {
    let server = TestServer::start(&["column_operations"]).await;
    let mut client = server.client().await;

    let rows: Vec<_> = (0..1000).map(|i| row(&[V::N(f64::from(i)), V::N(0.5)])).collect();
    let answer = call(&mut client, "SumOfRows", bundles(rows, 128)).await.expect("SumOfRows");
    let expected: Vec<f64> = (0..1000).map(|i| f64::from(i) + 0.5).collect();
    assert_eq!(answer.numbers(), expected);
    assert!(answer.metadata.get(pb::CACHE).is_none());
    assert!(answer.metadata.get_bin(pb::TABLE_DESCRIPTION).is_none());

    let answer =
        call(&mut client, "SumOfColumn", bundles(numbers(&[1.0, 2.0, 3.0, 4.5]), 3)).await.expect("SumOfColumn");
    assert_eq!(answer.numbers(), [10.5]);

    let rows = vec![row(&[V::N(1.0), V::N(-7.0)]), row(&[V::N(9.0), V::N(-8.0)]), row(&[V::N(3.0), V::N(-2.0)])];
    let answer = call(&mut client, "MaxOfColumns_2", bundles(rows, 2)).await.expect("MaxOfColumns_2");
    assert_eq!(answer.rows().len(), 1);
    let maxima: Vec<f64> = answer.rows()[0].duals.iter().map(|d| d.num_data).collect();
    assert_eq!(maxima, [9.0, -2.0]);
    let description =
        answer.metadata.get_bin(pb::TABLE_DESCRIPTION).expect("table description").to_bytes().expect("base64");
    let description = pb::TableDescription::decode(description).expect("decodes");
    assert_eq!(description.name, "MaxOfColumns");
    let fields: Vec<_> = description.fields.iter().map(|f| (f.name.as_str(), f.data_type)).collect();
    assert_eq!(fields, [("Max1", pb::DataType::Numeric as i32), ("Max2", pb::DataType::Numeric as i32)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_calls_answer_as_qlik_expects() {
    let server = TestServer::start(&["column_operations", "hello_world"]).await;
    let mut client = server.client().await;
    // An aggregation over nothing still answers one row.
    assert_eq!(call(&mut client, "SumOfColumn", vec![]).await.expect("SumOfColumn").numbers(), [0.0]);
    assert_eq!(call(&mut client, "HelloWorldAggr", vec![]).await.expect("aggr").strings(), [""]);
    // A tensor over nothing answers nothing; empty bundles are fine too.
    assert!(call(&mut client, "SumOfRows", vec![]).await.expect("SumOfRows").rows().is_empty());
    let empty = vec![pb::BundledRows::default(), pb::BundledRows::default()];
    assert!(call(&mut client, "HelloWorld", empty).await.expect("HelloWorld").rows().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_world_functions() {
    let server = TestServer::start(&["hello_world"]).await;
    let mut client = server.client().await;

    let answer =
        call(&mut client, "HelloWorld", bundles(strings(&["a", "", "ünïcode ✓"]), 2)).await.expect("HelloWorld");
    assert_eq!(answer.strings(), ["a", "", "ünïcode ✓"]);

    let answer = call(&mut client, "HelloWorldAggr", bundles(strings(&["x", "y", "z"]), 2)).await.expect("aggr");
    assert_eq!(answer.strings(), ["x, y, z"]);

    let cached = call(&mut client, "Cache", bundles(strings(&["p", "q"]), 1)).await.expect("Cache");
    assert!(cached.metadata.get(pb::CACHE).is_none());
    let uncached = call(&mut client, "NoCache", bundles(strings(&["p", "q"]), 1)).await.expect("NoCache");
    assert_eq!(uncached.metadata.get(pb::CACHE).expect("qlik-cache").to_str().ok(), Some("no-store"));
    for answer in [&cached, &uncached] {
        let values = answer.strings();
        assert_eq!(values.len(), 2);
        for (value, prefix) in values.iter().zip(["p ", "q "]) {
            let stamp = value.strip_prefix(prefix).unwrap_or_else(|| panic!("{value:?}"));
            // 2026-11-21T22:04:05.123456
            assert_eq!(stamp.len(), 26, "{stamp}");
            assert_eq!((&stamp[4..5], &stamp[10..11], &stamp[19..20]), ("-", "T", "."), "{stamp}");
        }
    }

    let rows = vec![row(&[V::S("a"), V::S("b"), V::S("c")]), row(&[V::S("d"), V::S("e"), V::S("f")])];
    let answer = call(&mut client, "EchoTable_3", bundles(rows.clone(), 1)).await.expect("EchoTable_3");
    let echoed: Vec<Vec<&str>> =
        answer.rows().iter().map(|r| r.duals.iter().map(|d| d.str_data.as_str()).collect()).collect();
    assert_eq!(echoed, [["a", "b", "c"], ["d", "e", "f"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_leave_out_missing_values() {
    let server = TestServer::start(&["stats"]).await;
    let mut client = server.client().await;
    let values = numbers(&[4.0, f64::NAN, 1.0, 3.0, 2.0]);
    let one = |answer: crate::util::Answer| answer.numbers()[0];
    assert_eq!(one(call(&mut client, "Mean", bundles(values.clone(), 2)).await.expect("Mean")), 2.5);
    assert_eq!(one(call(&mut client, "Median", bundles(values.clone(), 2)).await.expect("Median")), 2.5);
    let stdev = one(call(&mut client, "StDev", bundles(values.clone(), 2)).await.expect("StDev"));
    assert!((stdev - 1.290_994_448_7).abs() < 1e-9, "{stdev}");
    let with_p: Vec<_> = [10.0, 20.0, 30.0, 40.0, 50.0].iter().map(|&v| row(&[V::N(v), V::N(0.9)])).collect();
    assert_eq!(one(call(&mut client, "Percentile", bundles(with_p, 2)).await.expect("Percentile")), 46.0);
    let pairs: Vec<_> = [(1.0, 3.0), (2.0, 5.0), (f64::NAN, 100.0), (3.0, 7.0)]
        .iter()
        .map(|&(x, y)| row(&[V::N(x), V::N(y)]))
        .collect();
    let r = one(call(&mut client, "Pearson", bundles(pairs, 3)).await.expect("Pearson"));
    assert!((r - 1.0).abs() < 1e-12, "{r}");
    assert!(one(call(&mut client, "Mean", vec![]).await.expect("Mean of nothing")).is_nan());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_functions() {
    let server = TestServer::start(&["text"]).await;
    let mut client = server.client().await;
    let answer = call(&mut client, "Upper", bundles(strings(&["straße", "abc"]), 1)).await.expect("Upper");
    assert_eq!(answer.strings(), ["STRASSE", "ABC"]);
    let rows = vec![row(&[V::S("a-b-c"), V::S("-"), V::S("+")])];
    assert_eq!(call(&mut client, "Replace", bundles(rows, 1)).await.expect("Replace").strings(), ["a+b+c"]);
    let rows = vec![row(&[V::S("order 17"), V::S(r"\d+")]), row(&[V::S("none"), V::S(r"\d+")])];
    assert_eq!(call(&mut client, "RegexMatch", bundles(rows, 1)).await.expect("RegexMatch").numbers(), [-1.0, 0.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200k_row_echo_comes_back_whole_in_order_and_in_small_messages() {
    let server = TestServer::start(&["hello_world"]).await;
    let mut client = server.client().await;
    let values: Vec<String> = (0..200_000).map(|i| format!("value number {i:>8}")).collect();
    let rows: Vec<pb::Row> =
        values.iter().map(|v| pb::Row { duals: vec![pb::Dual { num_data: 0.0, str_data: v.clone() }] }).collect();
    let answer = call(&mut client, "HelloWorld", bundles(rows, 50_000)).await.expect("echo");
    assert!(answer.messages.len() > 4, "answers are split: {} messages", answer.messages.len());
    for message in &answer.messages {
        assert!(message.encoded_len() <= 1 << 20, "a message of {} bytes", message.encoded_len());
    }
    assert_eq!(answer.strings(), values);
}
