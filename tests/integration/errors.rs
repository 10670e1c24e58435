//! Bad requests and misbehaving functions get a precise status, and the server keeps serving.

use std::sync::Arc;

use futures::StreamExt;
use prost::Message;
use sse_wasm::functions::native::{NativeFunction, NativeInvocation};
use sse_wasm::functions::registry::{Registry, function_id};
use sse_wasm::model::{Batch, Column, DataType};
use sse_wasm::model::{FunctionDef, FunctionType, Mode};
use sse_wasm::pb::{self, connector_client::ConnectorClient};
use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::Limits;
use sse_wasm::{Runtime, serve};
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::util::{TestServer, V, assert_status, bundles, call, call_with_header, numbers, row};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_function_header_means_id_0() {
    let server = TestServer::start(&["test_functions"]).await;
    let mut client = server.client().await;
    // `IdZero_DlVtu8` hashes to id 0; a header for id 0 with no version encodes to zero bytes.
    assert_eq!(sse_wasm::functions::registry::function_id("IdZero_DlVtu8"), 0);
    assert!(pb::FunctionRequestHeader { function_id: 0, version: String::new() }.encode_to_vec().is_empty());
    let answer = call_with_header(&mut client, Some(Vec::new()), bundles(numbers(&[1.0, 2.5]), 1)).await.expect("id 0");
    assert_eq!(answer.numbers(), [2.0, 5.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_problems_are_invalid_argument_or_not_found() {
    let server = TestServer::start(&["column_operations"]).await;
    let mut client = server.client().await;
    let input = || bundles(numbers(&[1.0]), 1);

    assert_status(
        call_with_header(&mut client, None, input()).await,
        Code::InvalidArgument,
        &["qlik-functionrequestheader-bin", "missing"],
    );
    assert_status(
        call_with_header(&mut client, Some(vec![0xff, 0xff, 0xff]), input()).await,
        Code::InvalidArgument,
        &["qlik-functionrequestheader-bin", "decode"],
    );
    let unknown = pb::FunctionRequestHeader { function_id: 12345, version: String::new() }.encode_to_vec();
    assert_status(call_with_header(&mut client, Some(unknown), input()).await, Code::NotFound, &["12345"]);
    // The server is unharmed.
    assert_eq!(call(&mut client, "SumOfColumn", input()).await.expect("still serving").numbers(), [1.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_column_counts_name_the_function_and_row() {
    let server = TestServer::start(&["column_operations"]).await;
    let mut client = server.client().await;
    let rows = vec![row(&[V::N(1.0), V::N(2.0)]), row(&[V::N(1.0)])];
    assert_status(
        call(&mut client, "SumOfRows", bundles(rows, 5)).await,
        Code::InvalidArgument,
        &["SumOfRows", "row 1", "1 column(s)", "2 parameter(s)"],
    );
    let rows = vec![row(&[V::N(1.0), V::N(2.0), V::N(3.0)])];
    assert_status(
        call(&mut client, "SumOfColumn", bundles(rows, 5)).await,
        Code::InvalidArgument,
        &["SumOfColumn", "3 column(s)"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_errors_reach_qlik_with_the_function_name() {
    let server = TestServer::start(&["test_functions", "text"]).await;
    let mut client = server.client().await;
    assert_status(
        call(&mut client, "FailsOnNegative", bundles(numbers(&[1.0, -3.0]), 1)).await,
        Code::InvalidArgument,
        &["FailsOnNegative", "negative value -3"],
    );
    let rows = vec![row(&[V::S("x"), V::S("(")])];
    assert_status(
        call(&mut client, "RegexMatch", bundles(rows, 1)).await,
        Code::InvalidArgument,
        &["RegexMatch", "invalid pattern"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_only_its_own_call() {
    let server = TestServer::start(&["test_functions"]).await;
    let mut client = server.client().await;
    assert_status(
        call(&mut client, "PanicsOn13", bundles(numbers(&[1.0, 13.0]), 1)).await,
        Code::Internal,
        &["PanicsOn13", "panicked", "13 is unlucky"],
    );
    // The same function keeps working: every call gets a fresh instance.
    assert_eq!(
        call(&mut client, "PanicsOn13", bundles(numbers(&[1.0, 2.0]), 1)).await.expect("fresh instance").numbers(),
        [1.0, 2.0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_break_the_declaration_are_refused() {
    let server = TestServer::start(&["test_functions"]).await;
    let mut client = server.client().await;
    assert_status(
        call(&mut client, "ExtraRow", bundles(numbers(&[1.0, 2.0]), 2)).await,
        Code::Internal,
        &["ExtraRow", "3 rows for a batch of 2"],
    );
    assert_status(
        call(&mut client, "WrongType", bundles(numbers(&[1.0]), 1)).await,
        Code::Internal,
        &["WrongType", "STRING column where NUMERIC is declared"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duals_and_parameterless_functions() {
    let server = TestServer::start(&["test_functions"]).await;
    let mut client = server.client().await;
    let rows = vec![row(&[V::D(1.5, "a")]), row(&[V::D(f64::NAN, "")])];
    let answer = call(&mut client, "DualTwice", bundles(rows, 1)).await.expect("DualTwice");
    let rows = answer.rows();
    assert_eq!((rows[0].duals[0].num_data, rows[0].duals[0].str_data.as_str()), (3.0, "aa"));
    assert!(rows[1].duals[0].num_data.is_nan());
    // A function without parameters gets rows without columns and answers each.
    let empty_rows = vec![pb::Row::default(); 3];
    assert_eq!(call(&mut client, "FortyTwo", bundles(empty_rows, 2)).await.expect("FortyTwo").numbers(), [42.0; 3]);
}

/// A per-call function compiled into the host (as an embedder would add one) that answers its
/// first batch and then panics: a bug in host code, not a guest trap.
struct Exploding(FunctionDef);

impl NativeFunction for Exploding {
    fn def(&self) -> &FunctionDef {
        &self.0
    }
    fn invocation(&self) -> Box<dyn NativeInvocation> {
        Box::new(ExplodingCall(0))
    }
}

struct ExplodingCall(usize);

impl NativeInvocation for ExplodingCall {
    fn update(&mut self, input: Batch) -> Result<Batch, String> {
        self.0 += 1;
        assert!(self.0 < 2, "a bug in the host");
        Ok(input)
    }
    fn finish(&mut self) -> Result<Batch, String> {
        Ok(Batch { rows: 0, columns: vec![Column::Numeric(Vec::new())] })
    }
}

/// A call whose thread panics after part of its answer is sent ends with INTERNAL naming the
/// function: the client never takes the part for a whole answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_thread_panics_ends_with_internal_after_a_partial_answer() {
    let def = FunctionDef {
        name: "Exploding".into(),
        description: String::new(),
        function_type: FunctionType::Tensor,
        return_type: DataType::Numeric,
        params: vec![("x".into(), DataType::Numeric)],
        mode: Mode::PerCall,
        table: None,
        cacheable: true,
    };
    let registry = Registry::with_native(vec![Arc::new(Exploding(def))], Vec::new());
    let engine = tokio::task::spawn_blocking(|| Runtime::new(Limits::default()).expect("engine")).await.expect("join");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let registry = Arc::new(arc_swap::ArcSwap::from_pointee(registry));
    tokio::spawn(serve(listener, engine, registry, ServeOptions::default(), std::future::pending()));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await;
    let mut client = ConnectorClient::new(channel.expect("connect"));
    let header = pb::FunctionRequestHeader { function_id: function_id("Exploding"), version: String::new() };
    let with_header = |stream| {
        let mut request = tonic::Request::new(stream);
        request.metadata_mut().insert_bin(pb::FUNCTION_HEADER, MetadataValue::from_bytes(&header.encode_to_vec()));
        request
    };

    // The whole request at once.
    let whole = futures::stream::iter(bundles(numbers(&[1.0, 2.0, 3.0]), 1)).boxed();
    let mut answers = client.execute_function(with_header(whole)).await.expect("starts").into_inner();
    assert_eq!(answers.message().await.expect("first answer").expect("one").rows.len(), 1);
    assert_status(answers.message().await, Code::Internal, &["Exploding"]);

    // A request still streaming when the call's thread panics.
    let (more, more_wanted) = tokio::sync::oneshot::channel::<()>();
    let first = futures::stream::iter(bundles(numbers(&[1.0]), 1));
    let rest = futures::stream::once(more_wanted).flat_map(|_| futures::stream::iter(bundles(numbers(&[2.0]), 1)));
    let mut answers =
        client.execute_function(with_header(first.chain(rest).boxed())).await.expect("starts").into_inner();
    assert_eq!(answers.message().await.expect("first answer").expect("one").rows.len(), 1);
    more.send(()).expect("request open");
    assert_status(answers.message().await, Code::Internal, &["Exploding"]);
}
