//! HTTPS with real clients: curl and `openssl s_client` against the HTTP codec and the
//! static file server wrapped in TLS (TLS 1.3 and 1.2, ALPN, SNI with verification of
//! the name, keep-alive, a 16 MiB file hash-checked, a range; curl refusing an expired
//! certificate and a certificate for another name).

mod support;

use ringcore::http::{HttpConn, Limits, Router, StaticFiles};
use ringcore::tls::TlsAcceptor;
use ringcore::BackendKind;
use std::io::Write;
use std::process::{Command, Stdio};
use support::tls::{bytes, hash, Pki};
use support::{for_each_backend, start_server, TestServer};

/// True if `tool` runs here; otherwise says why the test is skipped.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg(if tool == "openssl" {
            "version"
        } else {
            "--version"
        })
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: {tool} is not installed (apt-get install {tool})");
    }
    ok
}

fn http_server(backend: BackendKind, acc: &TlsAcceptor) -> TestServer {
    let router = Router::new().fixed("GET", "/plaintext", 200, "text/plain", b"Hello, World!");
    start_server(
        backend,
        |b| b,
        acc.wrap(HttpConn::factory(router, Limits::default())),
    )
}

/// Runs curl against `https://NAME:PORT{path}` resolved to the server; returns
/// (stdout, stderr).
fn curl(
    server: &TestServer,
    pki: &Pki,
    name: &str,
    args: &[&str],
    paths: &[&str],
) -> (Vec<u8>, String) {
    let port = server.addr.port();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "--cacert"])
        .arg(&pki.ca_pem)
        .arg("--resolve")
        .arg(format!("{name}:{port}:127.0.0.1"))
        .args(args);
    for p in paths {
        cmd.arg(format!("https://{name}:{port}{p}"));
    }
    let out = cmd.output().expect("run curl");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl failed: {err}");
    (out.stdout, err)
}

#[test]
fn curl_over_tls13_and_tls12_with_keep_alive() {
    if !have("curl") {
        return;
    }
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acc = pki.localhost_acceptor();
        let server = http_server(backend, &acc);
        for v in [
            ["--tlsv1.3", "--tls-max", "1.3"],
            ["--tlsv1.2", "--tls-max", "1.2"],
        ] {
            let mut args = v.to_vec();
            args.extend(["-w", "|%{http_version}|%{http_code}\n"]);
            // Two requests on one connection: one handshake.
            let (out, _) = curl(
                &server,
                &pki,
                "localhost",
                &args,
                &["/plaintext", "/plaintext"],
            );
            let out = String::from_utf8(out).unwrap();
            assert_eq!(out, "Hello, World!|1.1|200\n".repeat(2), "{v:?}");
        }
        assert_eq!(acc.stats().handshakes, 2, "keep-alive reused each session");
        server.stop();
    });
}

/// Runs `openssl s_client` with `args`, sends one request, returns its whole output.
fn s_client(server: &TestServer, pki: &Pki, args: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(server.addr.to_string())
        .arg("-CAfile")
        .arg(&pki.ca_pem)
        .args(["-verify_return_error", "-ign_eof"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().expect("openssl output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn openssl_s_client_alpn_sni_and_versions() {
    if !have("openssl") {
        return;
    }
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let a = pki.leaf(&["a.test"], false);
        let b = pki.leaf(&["b.test"], false);
        let acc = TlsAcceptor::builder()
            .sni_cert_files(&["a.test"], &a.cert, &a.key)
            .unwrap()
            .sni_cert_files(&["b.test"], &b.cert, &b.key)
            .unwrap()
            .build()
            .unwrap();
        let server = http_server(backend, &acc);
        for (name, ver, shown) in [
            ("a.test", "-tls1_3", "TLSv1.3"),
            ("b.test", "-tls1_3", "TLSv1.3"),
            ("b.test", "-tls1_2", "TLSv1.2"),
        ] {
            let out = s_client(
                &server,
                &pki,
                &[
                    "-servername",
                    name,
                    "-verify_hostname",
                    name,
                    "-alpn",
                    "http/1.1",
                    ver,
                ],
            );
            assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
            assert!(out.contains("Verify return code: 0 (ok)"), "{name}: {out}");
            assert!(out.contains(shown), "{ver}: {out}");
            assert!(out.contains("Hello, World!"), "{out}");
        }
        // The wrong name: the default certificate (a.test) does not verify as b.test.
        let out = s_client(
            &server,
            &pki,
            &["-servername", "c.test", "-verify_hostname", "b.test"],
        );
        assert!(!out.contains("Verify return code: 0 (ok)"), "{out}");
        // An ALPN protocol the server does not speak: refused with an alert.
        let out = s_client(&server, &pki, &["-servername", "a.test", "-alpn", "h2"]);
        assert!(out.contains("alert"), "{out}");
        assert!(!out.contains("Hello, World!"), "{out}");
        server.stop();
    });
}

#[test]
fn curl_downloads_a_big_file_and_a_range_over_tls() {
    if !have("curl") {
        return;
    }
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acc = pki.localhost_acceptor();
        let root = pki.dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let data = bytes(77, (16 << 20) + 5);
        std::fs::write(root.join("big.bin"), &data).unwrap();
        let factory = StaticFiles::factory(&root, Limits::default()).unwrap();
        let server = start_server(backend, |b| b, acc.wrap(factory));
        let (out, _) = curl(&server, &pki, "localhost", &[], &["/big.bin"]);
        assert_eq!(out.len(), data.len());
        assert_eq!(hash(&out), hash(&data), "16 MiB byte-exact under TLS");
        let (out, _) = curl(
            &server,
            &pki,
            "localhost",
            &["-r", "1000-70999"],
            &["/big.bin"],
        );
        assert_eq!(out, &data[1000..71000]);
        server.stop();
    });
}

/// curl itself refuses an expired server certificate and a certificate for another
/// name (exit 60, "SSL certificate problem" / "no alternative certificate subject
/// name matches"), and the server, which saw the client's alert, goes on serving.
#[test]
fn curl_refuses_an_expired_certificate_and_a_wrong_name() {
    if !have("curl") {
        return;
    }
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let expired = pki.leaf(&["old.test"], true);
        let good = pki.leaf(&["new.test"], false);
        let acc = TlsAcceptor::builder()
            .sni_cert_files(&["new.test"], &good.cert, &good.key)
            .unwrap()
            .sni_cert_files(&["old.test"], &expired.cert, &expired.key)
            .unwrap()
            .build()
            .unwrap();
        let server = http_server(backend, &acc);
        let port = server.addr.port();
        let refused = |name: &str| {
            let out = Command::new("curl")
                .args(["-sS", "--max-time", "60", "--cacert"])
                .arg(&pki.ca_pem)
                .arg("--resolve")
                .arg(format!("{name}:{port}:127.0.0.1"))
                .arg(format!("https://{name}:{port}/plaintext"))
                .output()
                .expect("run curl");
            assert_eq!(out.status.code(), Some(60), "curl must refuse {name}");
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        let err = refused("old.test");
        assert!(err.contains("expired"), "{err}");
        // SNI `wrong.test` matches no certificate: the server answers with its default
        // (the first, new.test), which is not valid for wrong.test.
        let err = refused("wrong.test");
        assert!(err.contains("wrong.test") || err.contains("match"), "{err}");
        // The server is fine: a good request still works.
        let (out, _) = curl(&server, &pki, "new.test", &[], &["/plaintext"]);
        assert_eq!(out, b"Hello, World!");
        server.wait_counters("refused connections closed", |c| c.open_conns == 0);
        // Each refused connection counts once: as a failed handshake, or (when the
        // server's side had finished before curl's alert came) as a handshake.
        let st = acc.stats();
        assert_eq!(st.handshakes + st.handshake_errors, 3, "{st:?}");
        server.stop();
    });
}
