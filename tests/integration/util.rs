//! Shared test plumbing: a server in a temp folder on 127.0.0.1:0, a client, and request helpers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use sse_wasm::functions::registry::function_id;
use sse_wasm::functions::reload::{ReloadStatus, Reloader, WatchGuard};
use sse_wasm::pb::{self, connector_client::ConnectorClient};
use sse_wasm::server::ServeOptions;
use sse_wasm::server::{CallSlots, MetricsSource, Server};
use sse_wasm::wasm::Limits;
use sse_wasm::wasm::{CacheKey, CompileCache};
use sse_wasm::{Runtime, SharedRegistry};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Where `make guests` leaves the components (and `make datasci-engine` the data-science engine,
/// `datasci`).
pub fn guest_wasm(name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/target");
    let (path, make) = match name {
        "datasci" => (target.join("datasci/datasci.wasm"), "make datasci-engine"),
        _ => (target.join("wasm32-wasip2/release").join(format!("{name}.wasm")), "make guests"),
    };
    assert!(path.is_file(), "{} is missing: run `{make}` (or `make test`, which does) first", path.display());
    path
}

/// A folder this test process has to itself, under cargo's `target/tmp`, for what every test of
/// the process shares (a compile cache, a home folder). A `TempDir` in a static is never removed
/// (statics are not dropped), so each run would leave one in the system's temp folder; instead
/// each run removes those that processes no longer running have left.
pub fn process_dir(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let prefix = format!("{name}-");
    // Whether a process runs is read from /proc; elsewhere nothing is removed.
    let entries = if Path::new("/proc/self").exists() { std::fs::read_dir(root).ok() } else { None };
    if let Some(entries) = entries {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let pid = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test process folder");
    dir
}

/// A running server with its own functions folder.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// The functions folder; deleted when the server is dropped.
    pub dir: tempfile::TempDir,
    pub registry: SharedRegistry,
    /// Reload progress of the folder watcher.
    pub status: watch::Receiver<ReloadStatus>,
    /// The server's call slots, to see how many calls run.
    pub slots: CallSlots,
    /// The compile cache's folder (outside the functions folder).
    pub cache_dir: PathBuf,
    /// What a metrics scrape of this server reads.
    pub metrics: MetricsSource,
    /// Holds the cache folder of a server that has its own.
    _cache_home: Option<tempfile::TempDir>,
    _watch: WatchGuard,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Serves the named guests (file stems under the guest target folder) with default limits.
    pub async fn start(guests: &[&str]) -> Self {
        Self::start_with(guests, Limits::default()).await
    }

    /// Serves the named guests under `limits`.
    pub async fn start_with(guests: &[&str], limits: Limits) -> Self {
        Self::start_full(guests, limits, ServeOptions::default()).await
    }

    /// Serves the named guests under `limits` and `options`.
    pub async fn start_full(guests: &[&str], limits: Limits, options: ServeOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for guest in guests {
            std::fs::copy(guest_wasm(guest), dir.path().join(format!("{guest}.wasm"))).expect("copy guest");
        }
        Self::start_in_with(dir, limits, options).await
    }

    /// Serves whatever `dir` holds.
    pub async fn start_in(dir: tempfile::TempDir, limits: Limits) -> Self {
        Self::start_in_with(dir, limits, ServeOptions::default()).await
    }

    /// Serves the named guests with a compile cache shared by every test of this process: for
    /// the large guests (Python, JavaScript) that take seconds to compile. Tests that start the
    /// same guests at once take turns, so that one compiles and the others read its cache entry.
    pub async fn start_shared(guests: &[&str], limits: Limits, options: ServeOptions) -> Self {
        type Turns = std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>;
        static TURNS: std::sync::OnceLock<Turns> = std::sync::OnceLock::new();
        let cache = shared_cache_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        for guest in guests {
            std::fs::copy(guest_wasm(guest), dir.path().join(format!("{guest}.wasm"))).expect("copy guest");
        }
        let turn =
            TURNS.get_or_init(Default::default).lock().expect("turns").entry(guests.join(",")).or_default().clone();
        let _turn = turn.lock().await;
        Self::start_cached(dir, &cache, limits, options).await
    }

    /// Serves whatever `dir` holds, under `limits` and `options`.
    pub async fn start_in_with(dir: tempfile::TempDir, limits: Limits, options: ServeOptions) -> Self {
        let home = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_cached(dir, &home.path().join("cache"), limits, options).await;
        server._cache_home = Some(home);
        server
    }

    /// Serves whatever `dir` holds, with the compile cache in `cache` (entries authenticated with
    /// this process's test key).
    pub async fn start_cached(dir: tempfile::TempDir, cache: &Path, limits: Limits, options: ServeOptions) -> Self {
        log_to_test_output();
        let engine = Runtime::new(limits).expect("engine");
        let cache_dir = cache.to_owned();
        let cache = CompileCache::new(cache, test_cache_key()).expect("cache");
        let functions = Reloader::load(engine.clone(), dir.path(), Some(cache)).await.expect("load folder");
        let registry = functions.registry();
        let status = functions.status();
        let watch = functions.watch().expect("watch");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = Server::new(engine, registry.clone(), options);
        let slots = server.slots();
        let metrics = server.metrics_source();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = signal.await;
        }));
        Self {
            addr,
            dir,
            registry,
            status,
            slots,
            cache_dir,
            metrics,
            _cache_home: None,
            shutdown: Some(shutdown),
            task: Some(task),
            _watch: watch,
        }
    }

    /// Begins a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// A new client connection.
    pub async fn client(&self) -> ConnectorClient<Channel> {
        let channel =
            Channel::from_shared(format!("http://{}", self.addr)).expect("uri").connect().await.expect("connect");
        ConnectorClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20)
    }

    /// Stops accepting, waits for calls in flight, and returns how serving ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        let task = self.task.take().expect("task");
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("server stops within 30 s").expect("join")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The compile cache shared by the servers of [`TestServer::start_shared`] in this process.
pub fn shared_cache_dir() -> PathBuf {
    static SHARED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| process_dir("shared-cache")).join("cache")
}

/// The file of this test process's compile cache key: the binary, given it with the shared
/// cache, reads the entries the in-process servers wrote.
pub fn test_cache_key_file() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| process_dir("cache-key").join("key")).clone()
}

/// The compile cache key of this test process (made at random on first use).
pub fn test_cache_key() -> CacheKey {
    static KEY: std::sync::OnceLock<CacheKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| CacheKey::load_or_create(&test_cache_key_file()).expect("cache key")).clone()
}

/// A value as Qlik sends it.
#[derive(Clone, Debug)]
pub enum V {
    N(f64),
    S(&'static str),
    D(f64, &'static str),
}

pub fn row(values: &[V]) -> pb::Row {
    pb::Row {
        duals: values
            .iter()
            .map(|v| match *v {
                V::N(n) => pb::Dual { num_data: n, str_data: String::new() },
                V::S(s) => pb::Dual { num_data: 0.0, str_data: s.to_owned() },
                V::D(n, s) => pb::Dual { num_data: n, str_data: s.to_owned() },
            })
            .collect(),
    }
}

/// Rows of one numeric column.
pub fn numbers(values: &[f64]) -> Vec<pb::Row> {
    values.iter().map(|&n| row(&[V::N(n)])).collect()
}

/// Splits rows into bundles of `size` rows, as the engine does.
pub fn bundles(rows: Vec<pb::Row>, size: usize) -> Vec<pb::BundledRows> {
    rows.chunks(size).map(|chunk| pb::BundledRows { rows: chunk.to_vec() }).collect()
}

/// What a call answered.
#[derive(Debug)]
pub struct Answer {
    pub metadata: MetadataMap,
    pub messages: Vec<pb::BundledRows>,
}

impl Answer {
    pub fn rows(&self) -> Vec<&pb::Row> {
        self.messages.iter().flat_map(|m| &m.rows).collect()
    }
    pub fn numbers(&self) -> Vec<f64> {
        self.rows().iter().map(|r| r.duals[0].num_data).collect()
    }
    pub fn strings(&self) -> Vec<String> {
        self.rows().iter().map(|r| r.duals[0].str_data.clone()).collect()
    }
    /// The field names of the TableDescription header a table function answers with.
    pub fn table_fields(&self) -> Vec<String> {
        let header = self.metadata.get_bin(pb::TABLE_DESCRIPTION).expect("a TableDescription");
        let table = pb::TableDescription::decode(header.to_bytes().expect("base64")).expect("decodes");
        table.fields.into_iter().map(|f| f.name).collect()
    }
}

/// Adds Qlik's common header (an app id, a user, the row count).
fn common_header(metadata: &mut MetadataMap, cardinality: i64) {
    app_header(metadata, "test-app", cardinality);
}

/// Adds Qlik's common header naming `app`.
fn app_header(metadata: &mut MetadataMap, app: &str, cardinality: i64) {
    let common = pb::CommonRequestHeader {
        app_id: app.into(),
        user_id: "UserDirectory=TEST; UserId=tester".into(),
        cardinality,
    };
    metadata.insert_bin(pb::COMMON_HEADER, MetadataValue::from_bytes(&common.encode_to_vec()));
}

/// Calls the function named `name` (by its stable id) with `messages`.
pub async fn call(
    client: &mut ConnectorClient<Channel>,
    name: &str,
    messages: Vec<pb::BundledRows>,
) -> Result<Answer, Status> {
    let header = pb::FunctionRequestHeader { function_id: function_id(name), version: String::new() };
    call_with_header(client, Some(header.encode_to_vec()), messages).await
}

/// Calls the function named `name` as the Qlik app `app` calls it.
pub async fn call_in_app(
    client: &mut ConnectorClient<Channel>,
    app: &str,
    name: &str,
    messages: Vec<pb::BundledRows>,
) -> Result<Answer, Status> {
    let header = pb::FunctionRequestHeader { function_id: function_id(name), version: String::new() };
    let rows: usize = messages.iter().map(|m| m.rows.len()).sum();
    let mut request = request(pb::FUNCTION_HEADER, Some(header.encode_to_vec()), messages);
    app_header(request.metadata_mut(), app, rows as i64);
    answer(client.execute_function(request).await?).await
}

/// Evaluates `script` (Qlik's EvaluateScript) with `params` (name, type) over `messages`.
pub async fn evaluate(
    client: &mut ConnectorClient<Channel>,
    script: &str,
    function_type: pb::FunctionType,
    return_type: pb::DataType,
    params: &[(&str, pb::DataType)],
    messages: Vec<pb::BundledRows>,
) -> Result<Answer, Status> {
    let header = script_header(script, function_type, return_type, params);
    evaluate_with_header(client, Some(header), messages).await
}

/// Qlik's ScriptRequestHeader for `script` with `params` (name, type), encoded.
fn script_header(
    script: &str,
    function_type: pb::FunctionType,
    return_type: pb::DataType,
    params: &[(&str, pb::DataType)],
) -> Vec<u8> {
    let params = params.iter().map(|(name, t)| pb::Parameter { data_type: *t as i32, name: (*name).to_owned() });
    pb::ScriptRequestHeader {
        script: script.to_owned(),
        function_type: function_type as i32,
        return_type: return_type as i32,
        params: params.collect(),
    }
    .encode_to_vec()
}

/// Evaluates `script` as an aggregation over `bundles` bundles of `rows` numbers each, made as
/// they are sent (so the client holds one at a time, however much it sends).
pub async fn evaluate_streamed(
    client: &mut ConnectorClient<Channel>,
    script: &str,
    bundles: usize,
    rows: usize,
) -> Result<Answer, Status> {
    let (numeric, aggregation) = (pb::DataType::Numeric, pb::FunctionType::Aggregation);
    let header = script_header(script, aggregation, numeric, &[("x", numeric)]);
    let messages = futures::stream::iter(0..bundles)
        .map(move |b| pb::BundledRows { rows: (0..rows).map(|r| row(&[V::N((b * rows + r) as f64)])).collect() });
    let request = streamed_request(pb::SCRIPT_HEADER, Some(header), bundles * rows, messages);
    answer(client.evaluate_script(request).await?).await
}

/// Evaluates with a raw script header value (`None`: no header at all).
pub async fn evaluate_with_header(
    client: &mut ConnectorClient<Channel>,
    header: Option<Vec<u8>>,
    messages: Vec<pb::BundledRows>,
) -> Result<Answer, Status> {
    let request = request(pb::SCRIPT_HEADER, header, messages);
    answer(client.evaluate_script(request).await?).await
}

/// Calls with a raw function header value (`None`: no header at all).
pub async fn call_with_header(
    client: &mut ConnectorClient<Channel>,
    header: Option<Vec<u8>>,
    messages: Vec<pb::BundledRows>,
) -> Result<Answer, Status> {
    let request = request(pb::FUNCTION_HEADER, header, messages);
    answer(client.execute_function(request).await?).await
}

/// A request streaming `messages`, with `header` under `key` and Qlik's common header.
fn request(
    key: &'static str,
    header: Option<Vec<u8>>,
    messages: Vec<pb::BundledRows>,
) -> Request<impl futures::Stream<Item = pb::BundledRows>> {
    let rows: usize = messages.iter().map(|m| m.rows.len()).sum();
    streamed_request(key, header, rows, futures::stream::iter(messages))
}

/// A request streaming `messages` (`rows` rows in all), with `header` under `key` and Qlik's
/// common header.
fn streamed_request<S>(key: &'static str, header: Option<Vec<u8>>, rows: usize, messages: S) -> Request<S> {
    let mut request = Request::new(messages);
    if let Some(header) = header {
        request.metadata_mut().insert_bin(key, MetadataValue::from_bytes(&header));
    }
    common_header(request.metadata_mut(), rows as i64);
    request
}

/// Reads a whole answer stream.
async fn answer(response: tonic::Response<tonic::Streaming<pb::BundledRows>>) -> Result<Answer, Status> {
    let metadata = response.metadata().clone();
    let mut stream = response.into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.next().await {
        messages.push(message?);
    }
    Ok(Answer { metadata, messages })
}

/// The names GetCapabilities lists, sorted.
pub async fn function_names(server: &TestServer) -> Vec<String> {
    let caps = server.client().await.get_capabilities(pb::Empty {}).await.expect("capabilities").into_inner();
    let mut names: Vec<String> = caps.functions.into_iter().map(|f| f.name).collect();
    names.sort();
    names
}

/// Asserts that `result` failed with `code` and a message containing every one of `parts`.
#[track_caller]
pub fn assert_status<T>(result: Result<T, Status>, code: tonic::Code, parts: &[&str]) {
    let Err(status) = result else { panic!("expected {code:?}, the call succeeded") };
    assert_eq!(status.code(), code, "status: {status:?}");
    for part in parts {
        assert!(status.message().contains(part), "{:?} does not mention {part:?}", status.message());
    }
}

/// Polls `condition` every 10 ms until it holds; panics after 20 s naming `what`.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The lines a child process writes to its (piped) stderr, collected as they come.
pub fn collect_stderr(child: &mut tokio::process::Child) -> Arc<std::sync::Mutex<Vec<String>>> {
    use tokio::io::AsyncBufReadExt;

    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let collected = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            collected.lock().expect("lines").push(line);
        }
    });
    lines
}

/// The bytes of a built guest.
pub fn guest_bytes(name: &str) -> Vec<u8> {
    std::fs::read(guest_wasm(name)).expect("read guest")
}

/// Writes `bytes` to `path` the way deploy tools do: aside under a hidden name, then renamed.
pub fn replace_atomically(path: &Path, bytes: &[u8]) {
    let temporary = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&temporary, bytes).expect("write");
    std::fs::rename(&temporary, path).expect("rename");
}

/// Sends raw request bytes and reads answers as prost reads them: for encodings a typed client
/// cannot write (unknown fields, groups, non-minimal varints, malformed bytes).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = pb::BundledRows;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        *self
    }
    fn decoder(&mut self) -> Self {
        *self
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = Status;
    fn encode(&mut self, item: bytes::Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = pb::BundledRows;
    type Error = Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<pb::BundledRows>, Status> {
        pb::BundledRows::decode(src).map(Some).map_err(|e| Status::internal(format!("answer does not decode: {e}")))
    }
}

/// Calls `path` (`ExecuteFunction` or `EvaluateScript`) with raw message bytes and raw header
/// values (key, serialized bytes).
pub async fn call_raw(
    server: &TestServer,
    method: &'static str,
    headers: &[(&'static str, Vec<u8>)],
    messages: Vec<Vec<u8>>,
) -> Result<Answer, Status> {
    let channel =
        Channel::from_shared(format!("http://{}", server.addr)).expect("uri").connect().await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = Request::new(futures::stream::iter(messages.into_iter().map(bytes::Bytes::from)));
    for (key, value) in headers {
        request.metadata_mut().insert_bin(*key, MetadataValue::from_bytes(value));
    }
    let path = http::uri::PathAndQuery::from_static(method);
    answer(grpc.streaming(request, path, RawCodec).await?).await
}

/// The path of `ExecuteFunction`.
pub const EXECUTE_FUNCTION: &str = "/qlik.sse.Connector/ExecuteFunction";

/// A function header for `name`, serialized.
pub fn function_header(name: &str) -> Vec<u8> {
    pb::FunctionRequestHeader { function_id: function_id(name), version: String::new() }.encode_to_vec()
}

/// Sends the host's log to the test's output (shown for failed tests, or all with
/// `--nocapture`), filtered by `RUST_LOG` (e.g. `RUST_LOG=sse_wasm=debug`); silent without it.
pub fn log_to_test_output() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter(filter).try_init();
}

/// The real `sse-wasm` binary, running in a folder of its own with a `functions` folder holding
/// the guests it was given, listening on a free loopback port, its stderr lines collected.
pub struct Binary {
    pub child: tokio::process::Child,
    pub port: u16,
    pub functions: std::path::PathBuf,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts it in `root` (flags relative to it, as `make run` passes them) with `args` added.
    pub async fn start(root: &std::path::Path, guests: &[&str], args: &[&str], log_level: &str) -> Self {
        let mut binary = Self::start_unread(root, guests, args, log_level).await;
        binary.read_log();
        binary
    }

    /// Starts it as [`Binary::start`] does, but nothing reads its stderr until
    /// [`Binary::read_log`]: a log destination that has stopped taking lines.
    pub async fn start_unread(root: &std::path::Path, guests: &[&str], args: &[&str], log_level: &str) -> Self {
        let functions = root.join("functions");
        std::fs::create_dir(&functions).expect("mkdir");
        for guest in guests {
            std::fs::copy(guest_wasm(guest), functions.join(format!("{guest}.wasm"))).expect("copy");
        }
        let port = free_port().await;
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
            .current_dir(root)
            .args(["--functions-dir", "functions", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("RUST_LOG", format!("sse_wasm={log_level}"))
            .env_remove("NO_COLOR")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sse-wasm");
        Self { child, port, functions, lines: Default::default() }
    }

    /// Starts it as [`Binary::start`] does (log level `warn`), serving its metrics too; returns
    /// the metrics port with it.
    pub async fn with_metrics(root: &std::path::Path, guests: &[&str]) -> (Self, u16) {
        let metrics = free_port().await;
        let address = format!("127.0.0.1:{metrics}");
        (Self::start(root, guests, &["--metrics-listen", &address], "warn").await, metrics)
    }

    /// Collects its stderr lines from now on.
    pub fn read_log(&mut self) {
        self.lines = collect_stderr(&mut self.child);
    }

    /// What reads the lines logged so far (the reader may lag behind the binary).
    pub fn log(&self) -> impl Fn() -> Vec<String> + use<> {
        let lines = self.lines.clone();
        move || lines.lock().expect("lines").clone()
    }

    /// A client of its Connector, once it answers GetCapabilities.
    pub async fn client(&self) -> sse_wasm::pb::connector_client::ConnectorClient<tonic::transport::Channel> {
        let uri = format!("http://127.0.0.1:{}", self.port);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            assert!(std::time::Instant::now() < deadline, "the binary serves within 60 s");
            if let Ok(channel) = tonic::transport::Channel::from_shared(uri.clone()).expect("uri").connect().await {
                let mut client = sse_wasm::pb::connector_client::ConnectorClient::new(channel);
                if client.get_capabilities(sse_wasm::pb::Empty {}).await.is_ok() {
                    return client;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A port on 127.0.0.1 free a moment ago, for a binary to listen on.
pub async fn free_port() -> u16 {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port()
}

/// Guest stores alive in the host whose metrics are served on `port` (calls running, instances
/// made ahead, stores left to reset while idle).
pub async fn instances_alive(port: u16) -> f64 {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (_, scrape) = crate::metrics::get(addr, "/metrics").await;
    crate::metrics::sample(&scrape, "sse_wasm_instances_in_use").expect("the gauge is served")
}

/// Appends `value` to `out` as an unsigned LEB128 number, as WebAssembly writes sizes and indices.
pub fn leb128(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        out.push(if value == 0 { byte } else { byte | 0x80 });
        if value == 0 {
            return;
        }
    }
}

/// Appends a WebAssembly section (of a module or a component) to `out`: its id, its size, `payload`.
pub fn append_section(out: &mut Vec<u8>, id: u8, payload: &[u8]) {
    out.push(id);
    leb128(payload.len(), out);
    out.extend_from_slice(payload);
}
