//! The agent's Alertmanager client against a real Alertmanager (Debian's
//! `prometheus-alertmanager`, installed by `e2e/runtime/install-deps.sh`)
//! on loopback: alerts arrive over http and over https with a private CA;
//! an https server that CA did not sign gets nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use imprint::publish::alertmanager::{Alertmanager, AlertmanagerError};
use serde_json::{Value, json};

/// An Alertmanager this test started (ended by its pid when dropped).
struct Running {
    child: Child,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl` of `url`, trusting `ca` for https.
fn curl(url: &str, ca: Option<&Path>) -> Option<String> {
    let mut command = Command::new("curl");
    command.args(["-fsS", "--max-time", "5", url]);
    if let Some(ca) = ca {
        command.arg("--cacert").arg(ca);
    }
    let output = command.stderr(Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Starts Alertmanager on loopback in `dir`, over https with
/// `dir/tls/server.*` when `tls`.
fn start(dir: &Path, tls: bool) -> Running {
    let binary = "prometheus-alertmanager";
    assert!(
        Command::new(binary).arg("--version").output().is_ok(),
        "{binary} is missing: run e2e/runtime/install-deps.sh as root"
    );
    std::fs::write(
        dir.join("alertmanager.yml"),
        "route: {receiver: kept}\nreceivers: [{name: kept}]\n",
    )
    .unwrap();
    let port = free_port();
    let mut command = Command::new(binary);
    command
        .arg(format!(
            "--config.file={}",
            dir.join("alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let scheme = if tls {
        let tls_dir = dir.join("tls");
        std::fs::write(
            dir.join("web.yml"),
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                tls_dir.join("server.pem").display(),
                tls_dir.join("server.key").display()
            ),
        )
        .unwrap();
        command.arg(format!(
            "--web.config.file={}",
            dir.join("web.yml").display()
        ));
        "https"
    } else {
        "http"
    };
    let running = Running {
        child: command.spawn().unwrap(),
        url: format!("{scheme}://127.0.0.1:{port}"),
    };
    let ca = tls.then(|| dir.join("tls/ca.pem"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(&format!("{}/-/ready", running.url), ca.as_deref()).is_none() {
        assert!(Instant::now() < deadline, "Alertmanager did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    running
}

/// A throwaway CA and a certificate it signed for 127.0.0.1, in `dir`.
fn certificates(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/tls-server.sh");
    let status = Command::new(script)
        .arg(dir)
        .arg("127.0.0.1")
        .status()
        .unwrap();
    assert!(status.success());
}

/// The alert names Alertmanager holds.
fn held(running: &Running, ca: Option<&Path>) -> Vec<String> {
    let text = curl(&format!("{}/api/v2/alerts", running.url), ca).expect("listing alerts");
    let alerts: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut names: Vec<String> = alerts
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn alert(name: &str) -> Value {
    json!({"labels": {"alertname": name, "rule": "terminal-shell", "severity": "high"},
           "annotations": {"summary": "a test alert"}})
}

fn dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[tokio::test]
async fn alerts_reach_alertmanager_over_http_and_https_with_a_private_ca() {
    // http.
    let (_keep, plain_dir) = dir();
    let plain = start(&plain_dir, false);
    let client = Alertmanager::new(&plain.url.parse().unwrap(), None).unwrap();
    client.post(&[alert("over-http")]).await.unwrap();
    assert_eq!(held(&plain, None), ["over-http"]);

    // https, trusting the CA that signed its certificate.
    let (_keep, tls_dir) = dir();
    certificates(&tls_dir.join("tls"));
    let secure = start(&tls_dir, true);
    let ca = tls_dir.join("tls/ca.pem");
    let url: hyper::Uri = secure.url.parse().unwrap();
    let client = Alertmanager::new(&url, Some(&ca)).unwrap();
    client.post(&[alert("over-https")]).await.unwrap();
    assert_eq!(held(&secure, Some(&ca)), ["over-https"]);

    // Another CA, or the system's roots: the server is not trusted and
    // gets nothing.
    let (_keep, other_dir) = dir();
    certificates(&other_dir);
    let other = Alertmanager::new(&url, Some(&other_dir.join("ca.pem"))).unwrap();
    let error = other.post(&[alert("untrusted")]).await.unwrap_err();
    assert!(
        matches!(&error, AlertmanagerError::Unreachable(why) if why.contains("certificate")),
        "{error}"
    );
    let system = Alertmanager::new(&url, None).unwrap();
    assert!(system.post(&[alert("untrusted")]).await.is_err());
    assert_eq!(held(&secure, Some(&ca)), ["over-https"]);
}
