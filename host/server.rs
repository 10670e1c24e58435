//! Serving the connector on a listener until a shutdown signal, letting calls in flight finish.

use std::future::Future;

use tokio::net::TcpListener;
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
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
