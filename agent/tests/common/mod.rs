//! Helpers for the integration tests: they run the real `imprint` binary as
//! root, with the real probes, on real processes.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The imprint binary under test.
pub fn imprint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imprint"))
}

/// The fixture example (built by `cargo test` with the examples).
pub fn fixture() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe.parent().and_then(Path::parent).expect("target dir");
    let path = target.join("examples").join("fixture");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test` (builds examples)",
        path.display()
    );
    path
}

/// The intruder example: harmless intrusion techniques.
pub fn intruder() -> PathBuf {
    fixture().with_file_name("intruder")
}

/// A fresh folder outside /tmp (where temporary names are normalised), as
/// an absolute path without symlinks.
pub fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("work")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

/// Fails clearly when the tests are not run as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "imprint's integration tests load BPF programs: run them as root"
    );
}

/// Runs `imprint record -o DIR -- command...`, returns its output and the report.
pub fn record(dir: &Path, command: &[&str]) -> (Output, Value) {
    let output = imprint()
        .args(["record", "--output"])
        .arg(dir)
        .arg("--")
        .args(command)
        .output()
        .expect("running imprint record");
    let report = only_report(dir);
    (output, report)
}

/// The single report file in `dir`.
pub fn only_report(dir: &Path) -> Value {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "expected one report in {}: {files:?}",
        dir.display()
    );
    read_json(&files[0])
}

/// Parses a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Syscall names of a report.
pub fn syscalls(report: &Value) -> Vec<String> {
    strings(&report["spec"]["syscalls"]["names"])
}

/// The access list of `path` in a report, if the path is there.
pub fn file_access(report: &Value, path: &str) -> Option<Vec<String>> {
    report["spec"]["files"]
        .as_array()?
        .iter()
        .find(|f| f["path"] == path)
        .map(|f| strings(&f["access"]))
}

/// A JSON array of strings as a Vec.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the report has an executable run with exactly these arguments.
pub fn has_exec(report: &Value, args: &[&str]) -> bool {
    report["spec"]["executables"]
        .as_array()
        .is_some_and(|execs| execs.iter().any(|e| strings(&e["args"]) == args))
}

/// The capability entry named `name`.
pub fn capability<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    report["spec"]["capabilities"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

/// Whether the report has a network entry with these fields.
pub fn has_endpoint(
    report: &Value,
    direction: &str,
    protocol: &str,
    address: &str,
    port: u16,
) -> bool {
    report["spec"]["network"].as_array().is_some_and(|entries| {
        entries.iter().any(|e| {
            e["direction"] == direction
                && e["protocol"] == protocol
                && e["address"] == address
                && e["port"] == port
        })
    })
}

/// The mount point of the unified cgroup hierarchy.
pub fn unified_root() -> PathBuf {
    imprint::cgroups::Hierarchy::detect()
        .expect("a cgroup2 mount")
        .root()
        .to_path_buf()
}

/// A cgroup of the test's own below the unified root, removed with
/// everything below it on drop (and its parent, when the test made it and
/// nothing else uses it).
pub struct TestCgroup {
    /// Its directory.
    pub path: PathBuf,
    /// Its path below the unified root, without the leading slash.
    pub name: String,
    made_parent: Option<PathBuf>,
}

impl TestCgroup {
    /// `imprint-test-TAG-PID` right below the root.
    pub fn new(tag: &str) -> Self {
        Self::at(&format!("imprint-test-{tag}-{}", std::process::id()))
    }

    /// The cgroup at `relative` below the root (parents made as needed).
    pub fn at(relative: &str) -> Self {
        let path = unified_root().join(relative);
        let parent = path.parent().expect("below the root").to_path_buf();
        let made_parent = (!parent.exists()).then(|| parent.clone());
        std::fs::create_dir_all(&path).unwrap();
        TestCgroup {
            path,
            name: relative.to_string(),
            made_parent,
        }
    }

    /// Starts `sh -c script` inside the cgroup.
    pub fn spawn(&self, script: &str) -> std::process::Child {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", script]);
        self.enter_on_exec(&mut command).spawn().unwrap()
    }

    /// Makes `command` join this cgroup before it execs.
    pub fn enter_on_exec<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        let procs = self.path.join("cgroup.procs");
        // SAFETY: only a write(2) through std's File between fork and exec.
        unsafe { command.pre_exec(move || std::fs::write(&procs, "0")) }
    }
}

impl Drop for TestCgroup {
    /// Kills whatever still runs in the cgroup (a test that failed before
    /// stopping its workers), then removes it.
    fn drop(&mut self) {
        let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
        if let Ok(hierarchy) = imprint::cgroups::Hierarchy::detect() {
            hierarchy.remove_tree(&self.name);
        }
        if let Some(parent) = &self.made_parent {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// `unshare --cgroup --mount` running `sh -c 'mount -t cgroup2 none "$1" &&
/// SCRIPT' sh MOUNT`: a cgroup namespace rooted at the cgroup the command
/// starts in (a kind node's view), with its cgroup2 mount at `mount` (made
/// here); add the script's further arguments ("$2"...) to the command.
pub fn in_cgroup_namespace(script: &str, mount: &Path) -> Command {
    std::fs::create_dir_all(mount).unwrap();
    let mut command = Command::new("unshare");
    command.args([
        "--cgroup",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
    ]);
    command
        .arg(format!(r#"mount -t cgroup2 none "$1" && {script}"#))
        .arg("sh")
        .arg(mount);
    command
}

/// A free loopback port (bound and released: nothing else here takes it
/// in between).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
