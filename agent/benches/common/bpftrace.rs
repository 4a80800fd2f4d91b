//! A background `bpftrace` program, the tool a user would reach for to
//! count syscalls per cgroup, for the overhead benchmark to compare with.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// bpftrace running one script, its programs attached.
pub struct Bpftrace {
    child: Child,
    /// The ids of the BPF programs it loaded.
    pub programs: Vec<u64>,
}

/// Whether `bpftrace` can be run.
pub fn available() -> bool {
    Command::new("bpftrace")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The ids of the loaded BPF programs of `kind` (bpftool's `type`).
pub fn program_ids(kind: &str) -> Vec<u64> {
    super::loaded_programs()
        .iter()
        .filter(|p| p["type"] == kind)
        .filter_map(|p| p["id"].as_u64())
        .collect()
}

impl Bpftrace {
    /// Starts `bpftrace -e script` and waits until its tracepoint programs
    /// are attached (their ids are new in the kernel's list).
    pub fn start(script: &str) -> Bpftrace {
        let before = program_ids("tracepoint");
        let child = Command::new("bpftrace")
            .args(["-e", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting bpftrace");
        // Ended (SIGINT) by its drop, also when it never attaches.
        let mut tracer = Bpftrace {
            child,
            programs: Vec::new(),
        };
        // Its maps are printed at exit: read them away so it never blocks.
        let stdout = tracer.child.stdout.take().unwrap();
        let (attached, said) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("Attaching") {
                    let _ = attached.send(());
                }
            }
        });
        said.recv_timeout(Duration::from_secs(60))
            .expect("bpftrace did not attach within 60 s");
        let deadline = Instant::now() + Duration::from_secs(30);
        while tracer.programs.is_empty() {
            assert!(Instant::now() < deadline, "bpftrace loaded no program");
            std::thread::sleep(Duration::from_millis(50));
            tracer.programs = program_ids("tracepoint")
                .into_iter()
                .filter(|id| !before.contains(id))
                .collect();
        }
        // Attaching follows loading closely; give it a moment.
        std::thread::sleep(Duration::from_millis(500));
        tracer
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: signalling the child we started.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let _ = self.child.wait();
        }
    }
}
