//! What a competent Rust author would write without sse-wasm: a plain tonic + prost SSE server,
//! default settings, functions in native Rust over materialized `Row`s and `Dual`s.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use sse_wasm::functions::registry::function_id;
use sse_wasm::pb::{self, connector_server::Connector};
use tonic::{Request, Response, Status, Streaming};

type Answers = Pin<Box<dyn Stream<Item = Result<pb::BundledRows, Status>> + Send>>;

pub struct PlainServer;

fn number(value: f64) -> pb::Dual {
    pb::Dual { num_data: value, str_data: String::new() }
}

#[tonic::async_trait]
impl Connector for PlainServer {
    async fn get_capabilities(&self, _: Request<pb::Empty>) -> Result<Response<pb::Capabilities>, Status> {
        Ok(Response::new(pb::Capabilities::default()))
    }

    type ExecuteFunctionStream = Answers;

    async fn execute_function(
        &self,
        request: Request<Streaming<pb::BundledRows>>,
    ) -> Result<Response<Answers>, Status> {
        let header =
            request.metadata().get_bin(pb::FUNCTION_HEADER).ok_or_else(|| Status::invalid_argument("no header"))?;
        let header = <pb::FunctionRequestHeader as prost::Message>::decode(
            header.to_bytes().map_err(|_| Status::invalid_argument("base64"))?,
        )
        .map_err(|_| Status::invalid_argument("header"))?;
        let id = header.function_id;
        let mut input = request.into_inner();
        let answers: Answers = if id == function_id("SumOfColumn") {
            Box::pin(async_stream(async move {
                let mut sum = 0.0;
                while let Some(bundle) = input.message().await? {
                    for row in bundle.rows {
                        sum += row.duals[0].num_data;
                    }
                }
                Ok(vec![pb::BundledRows { rows: vec![pb::Row { duals: vec![number(sum)] }] }])
            }))
        } else if id == function_id("CountRows") {
            // The rows of any columns, counted: what carrying a call's rows costs a plain server
            // (the analytics bench's plain floor).
            Box::pin(async_stream(async move {
                let mut rows = 0;
                while let Some(bundle) = input.message().await? {
                    rows += bundle.rows.len();
                }
                Ok(vec![pb::BundledRows { rows: vec![pb::Row { duals: vec![number(rows as f64)] }] }])
            }))
        } else {
            let map: fn(pb::Row) -> pb::Row = if id == function_id("SumOfRows") {
                |row| pb::Row { duals: vec![number(row.duals[0].num_data + row.duals[1].num_data)] }
            } else if id == function_id("HelloWorld") {
                |row| row
            } else if id == function_id("DualTwice") {
                |row| {
                    let d = &row.duals[0];
                    pb::Row { duals: vec![pb::Dual { num_data: d.num_data * 2.0, str_data: d.str_data.repeat(2) }] }
                }
            } else {
                return Err(Status::not_found("unknown function"));
            };
            Box::pin(
                input
                    .map(move |bundle| bundle.map(|b| pb::BundledRows { rows: b.rows.into_iter().map(map).collect() })),
            )
        };
        Ok(Response::new(answers))
    }

    type EvaluateScriptStream = Answers;

    async fn evaluate_script(&self, _: Request<Streaming<pb::BundledRows>>) -> Result<Response<Answers>, Status> {
        Err(Status::unimplemented("no scripts"))
    }
}

/// A stream of the messages `future` answers at its end.
fn async_stream(
    future: impl std::future::Future<Output = Result<Vec<pb::BundledRows>, Status>> + Send + 'static,
) -> impl Stream<Item = Result<pb::BundledRows, Status>> + Send {
    futures::stream::once(future).flat_map(|result| match result {
        Ok(messages) => futures::stream::iter(messages.into_iter().map(Ok)).left_stream(),
        Err(status) => futures::stream::iter([Err(status)]).right_stream(),
    })
}

pub async fn serve(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .add_service(pb::connector_server::ConnectorServer::new(PlainServer))
        .serve(addr)
        .await?;
    Ok(())
}
