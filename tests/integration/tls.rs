//! Mutual TLS the way Qlik does it: certificates generated at run time; only a client whose
//! certificate chains to `root_cert.pem` gets in.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use sse_wasm::pb;
use sse_wasm::server::{ServeOptions, TlsFiles};
use sse_wasm::wasm::Limits;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::util::{TestServer, bundles, call, numbers};

/// A certificate authority that signs servers and clients.
pub(crate) struct Authority {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    pub(crate) fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let pem = params.self_signed(&key).expect("self-signed").pem();
        Self { pem, issuer: Issuer::new(params, key) }
    }

    /// A certificate (PEM) for `key`, for a server (`localhost` and 127.0.0.1, the latter as a DNS
    /// name the way Qlik's generator writes IPs) or a client.
    pub(crate) fn sign(&self, key: &KeyPair, server: bool) -> String {
        self.sign_with(key, leaf(server))
    }

    /// A certificate (PEM) for `key` as `params` describe it.
    pub(crate) fn sign_with(&self, key: &KeyPair, params: CertificateParams) -> String {
        params.signed_by(key, &self.issuer).expect("signed").pem()
    }
}

/// What [`Authority::sign`] signs: a server's names and usage, or a client's.
pub(crate) fn leaf(server: bool) -> CertificateParams {
    let names =
        if server { vec!["localhost".to_owned(), "127.0.0.1".to_owned()] } else { vec!["qlik-engine".to_owned()] };
    let mut params = CertificateParams::new(names).expect("params");
    params.distinguished_name.push(DnType::CommonName, if server { "sse-wasm" } else { "QlikClient" });
    params.extended_key_usages =
        vec![if server { ExtendedKeyUsagePurpose::ServerAuth } else { ExtendedKeyUsagePurpose::ClientAuth }];
    params
}

/// A server key as PKCS#8 (ECDSA, today's generators) or PKCS#1 (RSA, older generators).
pub(crate) fn server_key(pkcs1: bool) -> (KeyPair, String) {
    if !pkcs1 {
        let key = KeyPair::generate().expect("key");
        let pem = key.serialize_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        return (key, pem);
    }
    let rsa = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa");
    let pkcs8 = rsa.to_pkcs8_der().expect("pkcs8");
    let key =
        KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_bytes().into(), &rcgen::PKCS_RSA_SHA256).expect("rcgen key");
    let pem = rsa.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("pkcs1").to_string();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    (key, pem)
}

/// How the three files of `--certs-dir` are named.
#[derive(Clone, Copy)]
enum Names {
    /// As Qlik's plugins expect them.
    Plugin,
    /// As the QMC's certificate export writes them.
    QmcExport,
}

/// The three files the host reads from `--certs-dir`.
fn certs_dir(authority: &Authority, pkcs1: bool, names: Names) -> (tempfile::TempDir, TlsFiles) {
    let (key, key_pem) = server_key(pkcs1);
    let dir = tempfile::tempdir().expect("temp dir");
    let [root, cert, private] = match names {
        Names::Plugin => ["root_cert.pem", "sse_server_cert.pem", "sse_server_key.pem"],
        Names::QmcExport => ["root.pem", "server.pem", "server_key.pem"],
    };
    std::fs::write(dir.path().join(root), &authority.pem).expect("write");
    std::fs::write(dir.path().join(cert), authority.sign(&key, true)).expect("write");
    std::fs::write(dir.path().join(private), key_pem).expect("write");
    if let Names::QmcExport = names {
        // The export's client pair sits beside them; the host does not need it.
        std::fs::write(dir.path().join("client.pem"), "not read").expect("write");
    }
    let files = TlsFiles::read(dir.path()).expect("read certs dir");
    (dir, files)
}

async fn connect(
    server: &TestServer,
    server_ca: &str,
    client: Option<(&Authority, &KeyPair)>,
) -> Result<pb::connector_client::ConnectorClient<Channel>, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(server_ca)).domain_name("localhost");
    if let Some((authority, key)) = client {
        tls = tls.identity(Identity::from_pem(authority.sign(key, false), key.serialize_pem()));
    }
    let channel = Channel::from_shared(format!("https://{}", server.addr))
        .expect("uri")
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(pb::connector_client::ConnectorClient::new(channel))
}

async fn capabilities(client: Result<pb::connector_client::ConnectorClient<Channel>, String>) -> Result<usize, String> {
    let mut client = client?;
    let caps = client.get_capabilities(pb::Empty {}).await.map_err(|s| format!("{s:?}"))?;
    Ok(caps.into_inner().functions.len())
}

async fn check(pkcs1: bool, names: Names) {
    let qlik_ca = Authority::new("Qlik test CA");
    let (_certs, files) = certs_dir(&qlik_ca, pkcs1, names);
    let options = ServeOptions { tls: Some(files), ..ServeOptions::default() };
    let server = TestServer::start_full(&["column_operations"], Limits::default(), options).await;
    let client_key = KeyPair::generate().expect("key");

    // The right client certificate: served.
    let mut client = connect(&server, &qlik_ca.pem, Some((&qlik_ca, &client_key))).await.expect("mutual TLS");
    assert_eq!(capabilities(Ok(client.clone())).await, Ok(3));
    assert_eq!(
        call(&mut client, "SumOfColumn", bundles(numbers(&[1.0, 2.0]), 1)).await.expect("call").numbers(),
        [3.0]
    );

    // No client certificate, one from another CA, plaintext: refused.
    assert!(capabilities(connect(&server, &qlik_ca.pem, None).await).await.is_err(), "no client certificate");
    let stranger = Authority::new("Some other CA");
    assert!(
        capabilities(connect(&server, &qlik_ca.pem, Some((&stranger, &client_key))).await).await.is_err(),
        "foreign CA"
    );
    let plaintext = Channel::from_shared(format!("http://{}", server.addr)).expect("uri").connect().await;
    let plaintext = plaintext.map(pb::connector_client::ConnectorClient::new).map_err(|e| e.to_string());
    assert!(capabilities(plaintext).await.is_err(), "plaintext");

    // The server still serves the right client after the failed attempts.
    assert_eq!(capabilities(connect(&server, &qlik_ca.pem, Some((&qlik_ca, &client_key))).await).await, Ok(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_pkcs8_key() {
    check(false, Names::Plugin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_pkcs1_rsa_key() {
    check(true, Names::Plugin).await;
}

/// A folder exported from the QMC (root.pem, server.pem, server_key.pem: PKCS#1) serves as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_the_files_the_qmc_exports() {
    check(true, Names::QmcExport).await;
}

#[test]
fn a_certs_dir_missing_a_file_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("root_cert.pem"), "x").expect("write");
    let error = TlsFiles::read(dir.path()).expect_err("incomplete").to_string();
    assert!(error.contains("sse_server_cert.pem") && error.contains("server.pem"), "{error}");
}
