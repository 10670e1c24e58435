//! `sse-wasm doctor`: checks a mutual-TLS set as the host will read it and the Qlik side as Qlik
//! will (Qlik's exact file names, PEM, PKCS#1 and PKCS#8 keys, each key against its certificate,
//! both chains, validity dates, usages, the host name Qlik will use), whether the listen address
//! can be bound, and, with Qlik's files and a host running, makes a real mutual-TLS
//! GetCapabilities call; then prints the `SSEPlugin=` line and the QMC's fields.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::server::TlsFiles;

/// What to check.
#[derive(Debug, Clone)]
pub struct Checkup {
    /// The host's `--certs-dir`.
    pub certs_dir: PathBuf,
    /// The folder Qlik reads (`root_cert.pem`, `sse_client_cert.pem`, `sse_client_key.pem`).
    pub qlik_certs: Option<PathBuf>,
    /// The host name Qlik will connect to.
    pub host: Option<String>,
    /// Where the host listens.
    pub listen: SocketAddr,
    /// The analytic connection's name in Qlik.
    pub name: String,
}

/// Warnings before a certificate expires, in days.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// The report: each finding printed as it is made; problems counted.
struct Report<'a, W: Write> {
    out: &'a mut W,
    problems: usize,
}

impl<W: Write> Report<'_, W> {
    fn ok(&mut self, what: impl std::fmt::Display) {
        let _ = writeln!(self.out, "ok      {what}");
    }
    fn warn(&mut self, what: impl std::fmt::Display) {
        let _ = writeln!(self.out, "warning {what}");
    }
    fn problem(&mut self, what: impl std::fmt::Display) {
        self.problems += 1;
        let _ = writeln!(self.out, "PROBLEM {what}");
    }
}

/// A certificate file read: its chain, in order.
struct Certs {
    path: PathBuf,
    chain: Vec<CertificateDer<'static>>,
}

/// Reads `dir/name` as PEM certificates, reporting what is wrong.
fn read_certs(report: &mut Report<'_, impl Write>, dir: &Path, name: &str, what: &str) -> Option<Certs> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            report.problem(format!("{}: cannot read {what}: {e}; it must be named exactly {name}", path.display()));
            return None;
        }
    };
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if chain.is_empty() {
        report.problem(format!(
            "{}: no PEM certificate in it (a file starting with -----BEGIN CERTIFICATE-----); is it the {what}?",
            path.display()
        ));
        return None;
    }
    Some(Certs { path, chain })
}

/// Reads `dir/name` as a PEM private key (PKCS#1, PKCS#8 or SEC1), reporting its format.
fn read_key(report: &mut Report<'_, impl Write>, dir: &Path, name: &str) -> Option<PrivateKeyDer<'static>> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            report.problem(format!(
                "{}: cannot read the private key: {e}; it must be named exactly {name}",
                path.display()
            ));
            return None;
        }
    };
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => {
            let format = match &key {
                PrivateKeyDer::Pkcs1(_) => "PKCS#1 (BEGIN RSA PRIVATE KEY)",
                PrivateKeyDer::Pkcs8(_) => "PKCS#8 (BEGIN PRIVATE KEY)",
                PrivateKeyDer::Sec1(_) => "SEC1 (BEGIN EC PRIVATE KEY)",
                _ => "another format",
            };
            report.ok(format!("{}: a private key, {format}", path.display()));
            Some(key)
        }
        Err(e) => {
            report.problem(format!(
                "{}: no PEM private key in it ({e:?}); expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY",
                path.display()
            ));
            None
        }
    }
}

/// Checks that `key` belongs to `certs`' certificate.
fn key_matches(report: &mut Report<'_, impl Write>, certs: &Certs, key: &PrivateKeyDer<'static>, key_file: &str) {
    let signing = match rustls::crypto::ring::sign::any_supported_type(key) {
        Ok(signing) => signing,
        Err(e) => return report.problem(format!("{key_file}: a key of a kind TLS cannot use: {e}")),
    };
    match rustls::sign::CertifiedKey::new(certs.chain.clone(), signing).keys_match() {
        Ok(()) => report.ok(format!("{key_file} is the key of {}", certs.path.display())),
        Err(_) => report.problem(format!(
            "{key_file} is not the key of {}: the two files come from different exports; copy both from one",
            certs.path.display()
        )),
    }
}

/// The parsed first certificate of `certs` (reported when it cannot be parsed).
fn parsed<'a>(report: &mut Report<'_, impl Write>, certs: &'a Certs) -> Option<X509Certificate<'a>> {
    match X509Certificate::from_der(&certs.chain[0]) {
        Ok((_, cert)) => Some(cert),
        Err(e) => {
            report.problem(format!("{}: not a readable X.509 certificate: {e}", certs.path.display()));
            None
        }
    }
}

/// Checks that `certs` chains to `root` for `usage`, and its dates.
fn chains(report: &mut Report<'_, impl Write>, certs: &Certs, root: &Certs, server: bool) {
    let Some(cert) = parsed(report, certs) else { return };
    let file = certs.path.display();
    let validity = cert.validity();
    let days_left = (validity.not_after.timestamp() - UnixTime::now().as_secs() as i64) / 86_400;
    let anchors: Vec<_> = root.chain.iter().filter_map(|c| webpki::anchor_from_trusted_cert(c).ok()).collect();
    let end = match webpki::EndEntityCert::try_from(&certs.chain[0]) {
        Ok(end) => end,
        Err(e) => return report.problem(format!("{file}: webpki cannot read it: {e}")),
    };
    let usage = if server { webpki::KeyUsage::server_auth() } else { webpki::KeyUsage::client_auth() };
    let role = if server { "server" } else { "client" };
    let verified = end.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &certs.chain[1..],
        UnixTime::now(),
        usage,
        None,
        None,
    );
    let root_file = root.path.display();
    match verified {
        Ok(_) => report.ok(format!(
            "{file}: signed by {root_file}'s CA, for {role} authentication, valid until {} ({days_left} days)",
            validity.not_after
        )),
        Err(webpki::Error::CertExpired { .. }) => report.problem(format!(
            "{file}: expired on {}; make and export new certificates (QMC: Certificates, or your CA)",
            validity.not_after
        )),
        Err(webpki::Error::CertNotValidYet { .. }) => report
            .problem(format!("{file}: not valid before {}; check this machine's clock, or wait", validity.not_before)),
        Err(webpki::Error::UnknownIssuer) => {
            let ca =
                X509Certificate::from_der(&root.chain[0]).map_or_else(|_| "?".into(), |(_, r)| r.subject().to_string());
            report.problem(format!(
                "{file}: not signed by {root_file}'s CA ({ca}) but by {}: use the root_cert.pem of the same export",
                cert.issuer()
            ))
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(_)) => report.problem(format!(
            "{file}: may not be used for {role} authentication (its extended key usage lacks {role}Auth)"
        )),
        Err(e) => report.problem(format!("{file}: does not verify against {root_file}: {e}")),
    }
    if (0..EXPIRY_WARNING_DAYS).contains(&days_left) {
        report.warn(format!("{file} expires in {days_left} days, on {}", validity.not_after));
    }
}

/// The names a server certificate answers to as gRPC (Qlik's client) matches them: its DNS and
/// IP subject alternative names, or its common name when it has none.
fn server_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => names.push(IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")).to_string()),
                    16 => names.push(IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.extend(cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_owned));
    }
    names
}

/// Whether `host` is covered by `name` as gRPC matches: an IP address exactly (also when written
/// as a DNS name, as Qlik's certificate generator does), a DNS name case-insensitively, `*.` for
/// one leftmost label.
fn covers(name: &str, host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return name == host;
    }
    let (name, host) = (name.to_ascii_lowercase(), host.trim_end_matches('.').to_ascii_lowercase());
    match name.strip_prefix("*.") {
        Some(rest) => host.split_once('.').is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => name == host,
    }
}

/// Runs every check, printing findings to `out`; true when nothing is wrong.
pub fn run(checkup: &Checkup, out: &mut impl Write) -> anyhow::Result<bool> {
    let mut report = Report { out, problems: 0 };
    let dir = &checkup.certs_dir;
    writeln!(report.out, "The host's certificates ({}):", dir.display())?;
    // The names the host will read there.
    let [root_name, cert_name, key_name] = TlsFiles::names(dir);
    if [root_name, cert_name, key_name] == TlsFiles::QMC_EXPORT {
        report.ok(format!("named as the QMC exports them ({})", TlsFiles::QMC_EXPORT.join(", ")));
    }
    let root = read_certs(&mut report, dir, root_name, "CA certificate that signed Qlik's client certificate");
    let server = read_certs(&mut report, dir, cert_name, "server certificate");
    let server_key = read_key(&mut report, dir, key_name);
    if let (Some(server), Some(key)) = (&server, &server_key) {
        key_matches(&mut report, server, key, &dir.join(key_name).display().to_string());
    }

    let qlik = checkup.qlik_certs.as_deref().map(|qlik| {
        let _ = writeln!(report.out, "Qlik's certificates ({}):", qlik.display());
        let root = read_certs(&mut report, qlik, "root_cert.pem", "CA certificate Qlik trusts the host by");
        let client = read_certs(&mut report, qlik, "sse_client_cert.pem", "client certificate");
        let key = read_key(&mut report, qlik, "sse_client_key.pem");
        if let (Some(client), Some(key)) = (&client, &key) {
            key_matches(&mut report, client, key, &qlik.join("sse_client_key.pem").display().to_string());
        }
        (root, client, key)
    });

    if qlik.is_none() {
        report.warn(
            "no --qlik-certs: Qlik's files (root_cert.pem, sse_client_cert.pem, sse_client_key.pem) are not checked",
        );
    }
    let _ = writeln!(report.out, "Trust:");
    // Qlik checks the host's certificate against its own root_cert.pem (the host's, when Qlik's
    // folder is not given: one export holds both).
    let qlik_root = qlik.as_ref().and_then(|(root, _, _)| root.as_ref()).or(root.as_ref());
    if let (Some(server), Some(qlik_root)) = (&server, qlik_root) {
        chains(&mut report, server, qlik_root, true);
    }
    if let (Some((_, Some(client), _)), Some(root)) = (&qlik, &root) {
        chains(&mut report, client, root, false);
    }
    let names = server.as_ref().and_then(|s| parsed(&mut report, s).map(|c| server_names(&c))).unwrap_or_default();
    match (&checkup.host, &server) {
        (Some(host), Some(server)) if names.iter().any(|n| covers(n, host)) => {
            report.ok(format!("{} names {host}, the host name Qlik will use", server.path.display()))
        }
        (Some(host), Some(server)) => report.problem(format!(
            "{} does not name {host} (it names {}): Qlik refuses the connection; connect Qlik by one of \
             those names, or make a certificate for {host}",
            server.path.display(),
            names.join(", ")
        )),
        (None, Some(_)) => report
            .warn(format!("no --host given: Qlik must connect by a name the certificate holds: {}", names.join(", "))),
        _ => {}
    }

    let _ = writeln!(report.out, "The listen address ({}):", checkup.listen);
    let running = match std::net::TcpListener::bind(checkup.listen) {
        Ok(_) => {
            report.ok(format!("{} is free: the host can listen there", checkup.listen));
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            report.ok(format!("{} is in use: a host running there is called below", checkup.listen));
            true
        }
        Err(e) => {
            report.problem(format!("cannot listen on {}: {e}; choose another --listen", checkup.listen));
            false
        }
    };
    match (&qlik, running) {
        (Some((Some(_), Some(_), Some(_))), true) => {
            let qlik_dir = checkup.qlik_certs.as_deref().expect("given");
            live_call(&mut report, checkup, qlik_dir, &names)?;
        }
        (Some(_), false) => report.warn("no host listens there: start it and run doctor again to make a real call"),
        _ => {}
    }

    let host = checkup.host.clone().or_else(|| names.first().cloned()).unwrap_or_else(|| "<host>".into());
    let port = checkup.listen.port();
    let folder =
        checkup.qlik_certs.as_deref().map_or_else(|| "<Qlik's certificate folder>".into(), |p| p.display().to_string());
    writeln!(
        report.out,
        "\nQlik Sense Desktop / QlikView, settings.ini ([Settings 7], then an empty line):\n  SSEPlugin={},{host}:{port},{folder}\n\
         Qlik Sense Enterprise, QMC > Analytic connections > Create new:\n  Name: {}\n  Host: {host}\n  Port: {port}\n  \
         Certificate file path: {folder}\n  Reconnect timeout (seconds): 20\n  Request timeout (seconds): 0",
        checkup.name, checkup.name
    )?;
    match report.problems {
        0 => writeln!(report.out, "\nEverything fits.")?,
        n => writeln!(report.out, "\n{n} problem(s): see PROBLEM above.")?,
    }
    Ok(report.problems == 0)
}

/// Calls GetCapabilities over mutual TLS as Qlik would, with Qlik's files.
fn live_call(
    report: &mut Report<'_, impl Write>,
    checkup: &Checkup,
    qlik: &Path,
    names: &[String],
) -> anyhow::Result<()> {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let read = |name: &str| std::fs::read(qlik.join(name));
    let (root_pem, cert_pem, key_pem) =
        (read("root_cert.pem")?, read("sse_client_cert.pem")?, read("sse_client_key.pem")?);
    // The name TLS checks here: one of the certificate's DNS names (this client, unlike Qlik's,
    // does not take an IP address written as a DNS name); the host name was checked above.
    let Some(domain) = names.iter().find(|n| n.parse::<IpAddr>().is_err() && !n.starts_with('*')) else {
        report.warn("the certificate has no DNS name this check can connect by; the real call is skipped");
        return Ok(());
    };
    let mut target = checkup.listen;
    if target.ip().is_unspecified() {
        target.set_ip(if target.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
        });
    }
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root_pem))
        .identity(Identity::from_pem(cert_pem, key_pem))
        .domain_name(domain.clone());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let answer = runtime.block_on(async {
        let channel = Channel::from_shared(format!("https://{target}"))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await?;
        let mut client = crate::wire::pb::connector_client::ConnectorClient::new(channel);
        anyhow::Ok(client.get_capabilities(crate::wire::pb::Empty {}).await?.into_inner())
    });
    match answer {
        Ok(capabilities) => report.ok(format!(
            "a mutual-TLS GetCapabilities call to {target} as Qlik ({}): {} {} serves {} function(s), scripts {}",
            domain,
            capabilities.plugin_identifier,
            capabilities.plugin_version,
            capabilities.functions.len(),
            if capabilities.allow_script { "on" } else { "off" }
        )),
        Err(e) => report.problem(format!(
            "a mutual-TLS GetCapabilities call to {target} with Qlik's files failed: {e:#}; is the host running \
             with --certs-dir {}?",
            checkup.certs_dir.display()
        )),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn names_match_as_grpc_matches_them() {
        assert!(covers("qlik.example.com", "QLIK.example.com"));
        assert!(covers("*.example.com", "qlik.example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(covers("10.0.0.5", "10.0.0.5"), "an IP written as a DNS name, as Qlik's generator does");
        assert!(!covers("*.0.0.5", "10.0.0.5"));
        assert!(!covers("other.example.com", "qlik.example.com"));
    }
}
