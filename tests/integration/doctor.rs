//! `sse-wasm doctor`, run as a process over certificate sets made here: a good set (both key
//! formats) passes and prints Qlik's settings, a host running with it answers a real mutual-TLS
//! call as Qlik, and each broken set (expired, foreign CA, swapped key, wrong host name, missing
//! file, wrong usage) fails with the file and what to do.

use std::path::Path;
use std::process::Command;

use rcgen::{ExtendedKeyUsagePurpose, KeyPair};
use sse_wasm::server::{ServeOptions, TlsFiles};
use sse_wasm::wasm::Limits;

use crate::tls::{Authority, leaf, server_key};
use crate::util::TestServer;

/// The host's folder and Qlik's, as one export makes them: one CA, a server pair, a client pair.
struct Sets {
    host: tempfile::TempDir,
    qlik: tempfile::TempDir,
}

fn sets(authority: &Authority, pkcs1: bool) -> Sets {
    let (host, qlik) = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    let (key, key_pem) = server_key(pkcs1);
    write(host.path(), "root_cert.pem", &authority.pem);
    write(host.path(), "sse_server_cert.pem", &authority.sign(&key, true));
    write(host.path(), "sse_server_key.pem", &key_pem);
    let client = KeyPair::generate().expect("key");
    write(qlik.path(), "root_cert.pem", &authority.pem);
    write(qlik.path(), "sse_client_cert.pem", &authority.sign(&client, false));
    write(qlik.path(), "sse_client_key.pem", &client.serialize_pem());
    Sets { host, qlik }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

/// A free loopback address (nothing listens there once this returns).
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// Runs the doctor; its success and everything it printed.
fn doctor(sets: &Sets, host: &str, listen: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
        .args(["doctor", "--certs-dir"])
        .arg(sets.host.path())
        .arg("--qlik-certs")
        .arg(sets.qlik.path())
        .args(["--host", host, "--listen", listen])
        .env_remove("RUST_LOG")
        .output()
        .expect("sse-wasm doctor runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The doctor fails, naming `file` and saying each of `says`.
fn fails(sets: &Sets, host: &str, file: &str, says: &[&str]) {
    let (ok, text) = doctor(sets, host, &free_address());
    assert!(!ok, "the doctor passed:\n{text}");
    let problem = text.lines().find(|l| l.starts_with("PROBLEM") && l.contains(file)).unwrap_or_else(|| {
        panic!("no problem names {file}:\n{text}");
    });
    for part in says {
        assert!(problem.contains(part), "{part:?} not in {problem:?}\n{text}");
    }
}

#[test]
fn a_good_set_passes_in_both_key_formats_and_prints_qliks_settings() {
    for pkcs1 in [false, true] {
        let sets = sets(&Authority::new("Qlik CA"), pkcs1);
        let listen = free_address();
        let (ok, text) = doctor(&sets, "127.0.0.1", &listen);
        assert!(ok, "{text}");
        let format = if pkcs1 { "PKCS#1" } else { "PKCS#8" };
        assert!(text.contains(&format!("sse_server_key.pem: a private key, {format}")), "{text}");
        assert!(text.contains("names 127.0.0.1, the host name Qlik will use"), "{text}");
        assert!(text.contains("for client authentication") && text.contains("for server authentication"), "{text}");
        let port = listen.rsplit(':').next().expect("port");
        let line = format!("SSEPlugin=Wasm,127.0.0.1:{port},{}", sets.qlik.path().display());
        assert!(text.contains(&line), "{line} not in\n{text}");
        assert!(text.contains("Certificate file path:") && text.contains("Everything fits."), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_host_running_it_calls_it_as_qlik() {
    let good = sets(&Authority::new("Qlik CA"), false);
    let tls = TlsFiles::read(good.host.path()).expect("read");
    let options = ServeOptions { tls: Some(tls), ..ServeOptions::default() };
    let server = TestServer::start_full(&["column_operations"], Limits::default(), options).await;
    let listen = server.addr.to_string();
    let (ok, text) = tokio::task::spawn_blocking(move || doctor(&good, "localhost", &listen)).await.expect("doctor");
    assert!(ok, "{text}");
    assert!(text.contains("is in use: a host running there is called below"), "{text}");
    assert!(text.contains("a mutual-TLS GetCapabilities call") && text.contains("serves 3 function(s)"), "{text}");

    // Qlik's files from another export: the host refuses the call, and the doctor says so.
    let foreign = sets(&Authority::new("Another CA"), false);
    let listen = server.addr.to_string();
    let (ok, text) = tokio::task::spawn_blocking(move || doctor(&foreign, "localhost", &listen)).await.expect("doctor");
    assert!(!ok, "{text}");
    assert!(text.contains("GetCapabilities call") && text.contains("failed"), "{text}");
}

#[test]
fn broken_sets_fail_naming_the_file_and_what_to_do() {
    let authority = Authority::new("Qlik CA");

    // Expired.
    let expired = sets(&authority, false);
    let key = KeyPair::generate().expect("key");
    let mut params = leaf(true);
    (params.not_before, params.not_after) = (rcgen::date_time_ymd(2020, 1, 1), rcgen::date_time_ymd(2021, 1, 1));
    write(expired.host.path(), "sse_server_cert.pem", &authority.sign_with(&key, params));
    write(expired.host.path(), "sse_server_key.pem", &key.serialize_pem());
    fails(&expired, "localhost", "sse_server_cert.pem", &["expired on", "2021"]);

    // A client certificate of another CA.
    let foreign = sets(&authority, false);
    let other = Authority::new("Another CA");
    let key = KeyPair::generate().expect("key");
    write(foreign.qlik.path(), "sse_client_cert.pem", &other.sign(&key, false));
    write(foreign.qlik.path(), "sse_client_key.pem", &key.serialize_pem());
    fails(&foreign, "localhost", "sse_client_cert.pem", &["not signed by", "root_cert.pem", "Another CA"]);

    // The server's key of another pair.
    let swapped = sets(&authority, true);
    write(swapped.host.path(), "sse_server_key.pem", &KeyPair::generate().expect("key").serialize_pem());
    fails(&swapped, "localhost", "sse_server_key.pem", &["is not the key of", "sse_server_cert.pem"]);

    // A host name the certificate does not hold.
    let good = sets(&authority, false);
    fails(&good, "qlik.example.com", "sse_server_cert.pem", &["does not name qlik.example.com", "localhost"]);

    // A missing file.
    let missing = sets(&authority, false);
    std::fs::remove_file(missing.qlik.path().join("sse_client_key.pem")).expect("remove");
    fails(&missing, "localhost", "sse_client_key.pem", &["cannot read the private key", "named exactly"]);

    // A client certificate made for servers only.
    let usage = sets(&authority, false);
    let key = KeyPair::generate().expect("key");
    let mut params = leaf(false);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    write(usage.qlik.path(), "sse_client_cert.pem", &authority.sign_with(&key, params));
    write(usage.qlik.path(), "sse_client_key.pem", &key.serialize_pem());
    fails(&usage, "localhost", "sse_client_cert.pem", &["may not be used for client authentication"]);
}
