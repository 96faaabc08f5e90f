//! ACME with the clients users run: Debian's `lego` (http-01, tls-alpn-01, and dns-01 through
//! its `exec` hook) and certbot from PyPI (http-01 standalone), against a real server on both
//! databases. `pebble-challtestsrv` (Debian `pebble`) is the DNS server Sigil's validator asks
//! (`acme.dns_resolver`): it answers every name with 127.0.0.1 and serves the TXT records the
//! dns-01 hook sets. Every certificate is verified with openssl up to Sigil's root and its
//! revocation is seen in OCSP. The tools are installed here when missing, as `.ci/run` does.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Once;

use reqwest::Method;
use serde_json::Value;
use sigil_tests::{Options, TestServer, backends, free_port};

fn ensure_clients() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let have =
            |bin: &str| Command::new("which").arg(bin).output().is_ok_and(|o| o.status.success());
        if !have("lego") || !have("pebble-challtestsrv") {
            sigil_tests::apt_install(&["lego", "pebble"]);
        }
        if !have("certbot") {
            let st = Command::new("python3")
                .args(["-m", "pip", "install", "-q", "certbot==5.8.0"])
                .status()
                .expect("python3 with pip");
            assert!(st.success(), "pip install certbot failed");
        }
    });
}

/// pebble-challtestsrv as a DNS server on 127.0.0.1 (every A query: 127.0.0.1, no AAAA), with
/// its management API; stopped when dropped.
struct ChallTestSrv {
    dns: u16,
    management: u16,
    _child: tokio::process::Child,
}

impl ChallTestSrv {
    async fn start() -> Self {
        let (dns, management) = (free_port(), free_port());
        let child = tokio::process::Command::new("pebble-challtestsrv")
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("pebble-challtestsrv");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", management)).await.is_ok() {
                return Self { dns, management, _child: child };
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("pebble-challtestsrv did not start");
    }
}

/// A server with ACME on, validating on the given ports through `dns`'s DNS.
async fn server(
    db: &sigil_tests::TestDb,
    http01: u16,
    tlsalpn01: u16,
    dns: &ChallTestSrv,
) -> TestServer {
    let toml = format!(
        "[acme]\nenabled = true\nhttp01_port = {http01}\ntlsalpn01_port = {tlsalpn01}\n\
         dns_resolver = \"127.0.0.1:{}\"\nallow_private_targets = true\n",
        dns.dns
    );
    TestServer::start_with(db, Options { toml, ..Default::default() }).await
}

/// Runs a command to completion; its output.
async fn run(cmd: &mut tokio::process::Command) -> (bool, String) {
    let o = cmd.output().await.expect("the client runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

/// The chain in `pem_file` (leaf first) verifies with openssl up to its last certificate;
/// returns the leaf's text.
fn verifies(pem_file: &Path) -> String {
    crate::acme::verifies(&std::fs::read_to_string(pem_file).unwrap())
}

/// The inventory's view of the certificate naming `name`.
async fn in_inventory(s: &TestServer, name: &str) -> Value {
    let list: Value = s
        .admin(Method::GET, &format!("/api/v1/certificates?q={name}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sans"].to_string().contains(name))
        .unwrap_or_else(|| panic!("{name} not in the inventory: {list}"))
        .clone()
}

fn lego(s: &TestServer, dir: &Path, domain: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("lego");
    c.env("LEGO_CA_CERTIFICATES", s.data_dir().join("tls/ca.pem"))
        .args(["--server", &format!("{}/acme/tls-server/directory", s.url)])
        .args(["--email", "ops@example.org", "--accept-tos", "--domains", domain])
        .args(["--path", dir.to_str().unwrap()]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lego_gets_certificates_over_http_01_tls_alpn_01_and_dns_01_and_revokes_one() {
    ensure_clients();
    for db in backends().await {
        let dns = ChallTestSrv::start().await;
        let (http01, tlsalpn01) = (free_port(), free_port());
        let s = server(&db, http01, tlsalpn01, &dns).await;
        let work = tempfile::tempdir().unwrap();
        let hook = work.path().join("hook.sh");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\n# lego's exec DNS hook: present|cleanup FQDN VALUE\n\
                 case \"$1\" in\n  present) curl -sf -d \"{{\\\"host\\\":\\\"$2\\\",\\\"value\\\":\\\"$3\\\"}}\" \
                 http://127.0.0.1:{m}/set-txt ;;\n  cleanup) curl -sf -d \"{{\\\"host\\\":\\\"$2\\\"}}\" \
                 http://127.0.0.1:{m}/clear-txt ;;\nesac\n",
                m = dns.management
            ),
        )
        .unwrap();
        Command::new("chmod").args(["755", hook.to_str().unwrap()]).status().unwrap();
        let (h, t, d) = (
            format!("127.0.0.1:{http01}"),
            format!("127.0.0.1:{tlsalpn01}"),
            format!("127.0.0.1:{}", dns.dns),
        );
        let cases = [
            ("http.lego.test", vec!["--http", "--http.port", h.as_str()]),
            ("tls.lego.test", vec!["--tls", "--tls.port", t.as_str()]),
            (
                "dns.lego.test",
                vec!["--dns", "exec", "--dns.disable-cp", "--dns.resolvers", d.as_str()],
            ),
        ];
        for (domain, flags) in &cases {
            let dir = work.path().join(domain);
            let (ok, out) = run(lego(&s, &dir, domain)
                .args(flags)
                .arg("run")
                .env("EXEC_PATH", &hook)
                .env("EXEC_PROPAGATION_TIMEOUT", "10")
                .env("EXEC_POLLING_INTERVAL", "1"))
            .await;
            assert!(ok, "{}: lego {domain}:\n{out}", db.backend);
            let text = verifies(&dir.join(format!("certificates/{domain}.crt")));
            assert!(text.contains(&format!("DNS:{domain}")), "{text}");
            let cert = in_inventory(&s, domain).await;
            assert!(cert["metadata"]["acme_account"].is_string(), "{cert}");
            assert!(s.ocsp_text(&cert).await.contains("Cert Status: good"));
        }
        // lego revokes the http-01 one; OCSP says so.
        let dir = work.path().join("http.lego.test");
        let (ok, out) = run(lego(&s, &dir, "http.lego.test").arg("revoke")).await;
        assert!(ok, "lego revoke:\n{out}");
        let cert = in_inventory(&s, "http.lego.test").await;
        assert!(s.ocsp_text(&cert).await.contains("Cert Status: revoked"));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certbot_gets_a_certificate_over_http_01_standalone_and_revokes_it() {
    ensure_clients();
    for db in backends().await {
        let dns = ChallTestSrv::start().await;
        let http01 = free_port();
        let s = server(&db, http01, free_port(), &dns).await;
        let work = tempfile::tempdir().unwrap();
        let dirs = |c: &mut tokio::process::Command| {
            for (flag, d) in
                [("--config-dir", "config"), ("--work-dir", "work"), ("--logs-dir", "logs")]
            {
                c.args([flag, work.path().join(d).to_str().unwrap()]);
            }
        };
        let directory = format!("{}/acme/tls-server/directory", s.url);
        let mut c = tokio::process::Command::new("certbot");
        c.env("REQUESTS_CA_BUNDLE", s.data_dir().join("tls/ca.pem"))
            .args(["certonly", "--standalone", "--non-interactive", "--agree-tos"])
            .args(["-m", "ops@example.org", "-d", "certbot.test", "--server", &directory])
            .args(["--http-01-port", &http01.to_string(), "--http-01-address", "127.0.0.1"]);
        dirs(&mut c);
        let (ok, out) = run(&mut c).await;
        assert!(ok, "{}: certbot:\n{out}", db.backend);
        let live = work.path().join("config/live/certbot.test");
        let text = verifies(&live.join("fullchain.pem"));
        assert!(text.contains("DNS:certbot.test"), "{text}");
        let cert = in_inventory(&s, "certbot.test").await;
        assert!(s.ocsp_text(&cert).await.contains("Cert Status: good"));
        let mut c = tokio::process::Command::new("certbot");
        c.env("REQUESTS_CA_BUNDLE", s.data_dir().join("tls/ca.pem"))
            .args([
                "revoke",
                "--non-interactive",
                "--no-delete-after-revoke",
                "--server",
                &directory,
            ])
            .args(["--cert-path", live.join("cert.pem").to_str().unwrap()]);
        dirs(&mut c);
        let (ok, out) = run(&mut c).await;
        assert!(ok, "certbot revoke:\n{out}");
        assert!(s.ocsp_text(&cert).await.contains("Cert Status: revoked"));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sigil_executable_validates_http_01_in_a_process_of_its_own() {
    // Found by the attack review: the in-process test servers share the test's TLS set-up, and
    // the executable's validator once had none (every http-01 check panicked). Here the real
    // executable runs alone; certbot is the client.
    ensure_clients();
    let dir = tempfile::tempdir().unwrap();
    let http01 = free_port();
    std::fs::write(
        dir.path().join("sigil.toml"),
        format!(
            "[server]\ndata_dir = \"{}\"\n[acme]\nenabled = true\nhttp01_port = {http01}\n\
             allow_private_targets = true\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sigil_it"))
        .args(["serve", "--config", dir.path().join("sigil.toml").to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = sigil_tests::listening_url(&mut child).await.unwrap();
    let work = dir.path().join("certbot");
    let mut c = tokio::process::Command::new("certbot");
    c.env("REQUESTS_CA_BUNDLE", dir.path().join("data/tls/ca.pem"))
        .args(["certonly", "--standalone", "--non-interactive", "--agree-tos"])
        .args(["--register-unsafely-without-email", "-d", "localhost"])
        .args(["--server", &format!("{url}/acme/tls-server/directory")])
        .args(["--http-01-port", &http01.to_string(), "--http-01-address", "127.0.0.1"]);
    for (flag, d) in [("--config-dir", "config"), ("--work-dir", "work"), ("--logs-dir", "logs")] {
        c.args([flag, work.join(d).to_str().unwrap()]);
    }
    let (ok, out) = run(&mut c).await;
    assert!(ok, "certbot against the executable:\n{out}");
    let text = verifies(&work.join("config/live/localhost/fullchain.pem"));
    assert!(text.contains("DNS:localhost"), "{text}");
    child.kill().await.unwrap();
}
