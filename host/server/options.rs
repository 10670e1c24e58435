//! How the server treats its clients: message and concurrency limits, timeouts, mutual TLS,
//! scripts on or off, the model store, capture.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::wasm::DEFAULT_CONCURRENT_CALLS;
use crate::wasm::ModelStore;

use super::capture::Capture;

/// How the server treats its clients.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Largest inbound message, in bytes.
    pub max_message_bytes: usize,
    /// Calls running at once.
    pub max_concurrent_calls: usize,
    /// How long a call waits on a client that neither sends nor reads.
    pub stall_timeout: Duration,
    /// How long the health service says NOT_SERVING, while calls are still accepted, before the
    /// listener closes.
    pub drain_delay: Duration,
    /// How long calls in flight get to finish once the listener closes.
    pub shutdown_grace: Duration,
    /// Mutual TLS material; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Whether script functions are served when a script engine is loaded.
    pub scripts: bool,
    /// The language of scripts that do not name one.
    pub script_language: Option<String>,
    /// The model store functions save trained models to and load them from, per Qlik app;
    /// `None` keeps no models.
    pub models: Option<Arc<ModelStore>>,
    /// Where what Qlik sent is captured (`--capture`); `None` captures nothing.
    pub capture: Option<Arc<Capture>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 << 20,
            max_concurrent_calls: DEFAULT_CONCURRENT_CALLS,
            stall_timeout: Duration::from_secs(60),
            drain_delay: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            tls: None,
            scripts: true,
            script_language: None,
            models: None,
            capture: None,
        }
    }
}

/// The PEM files of a mutual-TLS set-up, read at start-up.
#[derive(Clone)]
pub struct TlsFiles {
    /// The CA that signed the clients' (Qlik's) certificates.
    pub root_cert: Vec<u8>,
    /// The server's certificate chain.
    pub server_cert: Vec<u8>,
    /// The server's private key, PKCS#1 or PKCS#8.
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsFiles { .. }")
    }
}

impl TlsFiles {
    /// The three files by the names every SSE plugin uses.
    pub const PLUGIN: [&str; 3] = ["root_cert.pem", "sse_server_cert.pem", "sse_server_key.pem"];
    /// The three files by the names of Qlik Sense's certificate export from the QMC.
    pub const QMC_EXPORT: [&str; 3] = ["root.pem", "server.pem", "server_key.pem"];

    /// The names [`TlsFiles::read`] reads in `dir`: the QMC export's in a folder that has its
    /// `root.pem` and no `root_cert.pem`, else the plugins'.
    pub fn names(dir: &Path) -> [&'static str; 3] {
        let exported = !dir.join(Self::PLUGIN[0]).exists() && dir.join(Self::QMC_EXPORT[0]).exists();
        if exported { Self::QMC_EXPORT } else { Self::PLUGIN }
    }

    /// Reads the three files by the names every SSE plugin uses (`root_cert.pem`,
    /// `sse_server_cert.pem`, `sse_server_key.pem`), or, in a folder without `root_cert.pem`, by
    /// the names of Qlik Sense's certificate export from the QMC (`root.pem`, `server.pem`,
    /// `server_key.pem`), so that an exported folder serves as it is.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let names = Self::names(dir);
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read {}: {e} (--certs-dir needs {} or, as the QMC exports them, {})",
                    path.display(),
                    Self::PLUGIN.join(", "),
                    Self::QMC_EXPORT.join(", ")
                )
            })
        };
        Ok(Self { root_cert: read(names[0])?, server_cert: read(names[1])?, server_key: read(names[2])? })
    }
}
