//! Serving the connector on a listener until a shutdown signal, letting calls in flight finish.

use std::future::Future;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use crate::engine::Engine;
use crate::pb::connector_server::ConnectorServer;
use crate::registry::SharedRegistry;
use crate::service::ConnectorService;

/// Serves `registry` on `listener` until `shutdown` resolves; then stops accepting and waits for
/// the calls in flight.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    registry: SharedRegistry,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let service = ConnectorServer::new(ConnectorService::new(engine, registry))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(usize::MAX);
    // Nagle's algorithm would hold small answers back for the peer's delayed ACK (~40 ms a call).
    // The builder's `tcp_nodelay` only reaches sockets tonic accepts itself, so set it here.
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    });
    tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(incoming, shutdown).await?;
    Ok(())
}
