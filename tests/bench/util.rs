//! Shared benchmark plumbing: guests, servers on loopback, statistics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use sse_wasm::functions::registry::function_id;
use sse_wasm::pb::{self, connector_client::ConnectorClient};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// The CPU model, for the report.
pub fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// Where `make guests` leaves a guest.
pub fn guest(name: &str) -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/target/wasm32-wasip2/release").join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run `make guests` first", path.display());
    path
}

/// `bytes` with a custom section holding `tag`: the same component, a different content hash.
pub fn tagged(mut bytes: Vec<u8>, tag: u64) -> Vec<u8> {
    let name = b"tag";
    let payload = tag.to_le_bytes();
    bytes.push(0);
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&payload);
    bytes
}

/// Writes aside and renames into place, as deploy tools do.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_file_name(".bench.tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

pub async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<ConnectorClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
    Ok(ConnectorClient::new(channel).max_decoding_message_size(256 << 20).max_encoding_message_size(256 << 20))
}

/// Calls `name` with one numeric row; the first number answered, or the status code.
pub async fn call_one(client: &mut ConnectorClient<Channel>, name: &str) -> Result<f64, tonic::Code> {
    let header = pb::FunctionRequestHeader { function_id: function_id(name), version: String::new() };
    let rows = vec![pb::BundledRows {
        rows: vec![pb::Row { duals: vec![pb::Dual { num_data: 1.0, str_data: String::new() }] }],
    }];
    let mut request = tonic::Request::new(futures::stream::iter(rows));
    request.metadata_mut().insert_bin(pb::FUNCTION_HEADER, MetadataValue::from_bytes(&header.encode_to_vec()));
    let mut stream = client.execute_function(request).await.map_err(|s| s.code())?.into_inner();
    let mut first = None;
    while let Some(message) = stream.message().await.map_err(|s| s.code())? {
        first = first.or(message.rows.first().and_then(|r| r.duals.first()).map(|d| d.num_data));
    }
    first.ok_or(tonic::Code::DataLoss)
}

/// Median and maximum of `samples`.
pub fn median_max(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

/// How long each of `calls` calls of `call`, made one after another, took.
pub async fn one_at_a_time<F, Fut>(call: &F, calls: usize) -> Result<Vec<Duration>, tonic::Status>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = std::time::Instant::now();
        call().await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// The `p` quantile (0 to 1) of `samples`, in µs; sorts them.
pub fn micros_at(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Calls per second of `streams` concurrent loops, each awaiting `call` again and again for
/// `window`, and the seconds they took in all.
pub async fn calls_per_second<F, Fut>(streams: usize, window: Duration, call: F) -> anyhow::Result<(f64, f64)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut calls = 0u64;
                while started.elapsed() < window {
                    call().await?;
                    calls += 1;
                }
                Ok::<_, tonic::Status>(calls)
            })
        })
        .collect();
    let mut calls = 0;
    for task in tasks {
        calls += task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((calls as f64 / elapsed, elapsed))
}
