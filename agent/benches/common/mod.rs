//! What the benchmarks share: a background recorder, the cgroup root,
//! medians and the machine's description.

#![allow(dead_code)] // each benchmark uses its own part

pub mod bpftrace;
pub mod xlated;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A benchmark's entry: `worker ARGS...` runs `worker` (the measured
/// loop, started by `run` in a cgroup of its choosing); `--list` (what
/// `cargo bench -- --list` asks) does nothing; else `run`, as root.
pub fn main(name: &str, worker: fn(&[String]), run: fn()) {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        worker(&args[2..]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the {name} benchmark loads BPF programs: run it as root"
    );
    run();
}

/// Moves the calling worker into the cgroup whose `cgroup.procs` is
/// `procs`, when one is given (an empty argument: none).
pub fn join_cgroup(procs: Option<&String>) {
    if let Some(procs) = procs.filter(|p| !p.is_empty()) {
        std::fs::write(procs, "0").expect("joining the cgroup");
    }
}

/// A background `imprint record -- sleep` whose probes stay attached.
pub struct Recorder {
    /// The `imprint record` process.
    pub child: Child,
    /// `cgroup.procs` of the recorded cgroup.
    pub procs: PathBuf,
    /// Where the report is written.
    pub out: tempfile::TempDir,
}

impl Recorder {
    /// Starts recording a fresh cgroup below `unified` (the cgroup2 root).
    pub fn start(unified: &Path) -> Recorder {
        let out = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_imprint"));
        command.args(["record", "--output"]).arg(out.path());
        Recorder::spawn(unified, out, command)
    }

    /// Starts `imprint monitor` (detection: processes tracked, built-in
    /// rules) of a fresh cgroup below `unified`; alerts to `alerts`.
    pub fn monitor(unified: &Path, alerts: &Path) -> Recorder {
        let out = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_imprint"));
        command.args(["monitor", "--output"]).arg(alerts);
        Recorder::spawn(unified, out, command)
    }

    fn spawn(unified: &Path, out: tempfile::TempDir, mut command: Command) -> Recorder {
        let child = command
            .args(["--", "sleep", "3600"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let procs = unified
            .join(format!("imprint/record-{}", child.id()))
            .join("cgroup.procs");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&procs)
            .map(|t| t.trim().is_empty())
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "imprint record did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Recorder { child, procs, out }
    }
}

impl Recorder {
    /// Ends the recording (SIGINT) and reads the one report it wrote.
    pub fn stop(mut self) -> serde_json::Value {
        self.interrupt();
        let file = std::fs::read_dir(self.out.path())
            .unwrap()
            .flatten()
            .next()
            .expect("a report")
            .path();
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
    }

    /// CPU time the recorder has used so far.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces): utime is
        // the 14th field of the line, stime the 15th.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    fn interrupt(&mut self) {
        // Only a child not reaped yet: its pid is still ours.
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: signalling the child we started.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let _ = self.child.wait();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.interrupt();
    }
}

/// The loaded BPF programs as `bpftool -j prog show` lists them (none when
/// bpftool cannot be run).
pub fn loaded_programs() -> Vec<serde_json::Value> {
    Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).ok())
        .unwrap_or_default()
}

/// Whether a listed program is `name` (the kernel keeps 15 characters of a
/// program's name).
pub fn is_named(program: &serde_json::Value, name: &str) -> bool {
    program["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty() && name.starts_with(n))
}

/// The cgroup2 mount.
pub fn unified_root() -> PathBuf {
    imprint::cgroups::Hierarchy::detect()
        .expect("a cgroup2 mount")
        .root()
        .to_path_buf()
}

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Kernel, CPU model and cores, for the figures' header.
pub fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("Linux {}, {cpu}, {cores} cores", kernel.trim())
}
