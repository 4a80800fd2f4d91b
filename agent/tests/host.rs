//! `imprint record --duration`: every cgroup of the host, one report each.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Starts `imprint record ARGS` and waits until its probes are attached
/// (it says so on stderr); returns the child and a thread that collects
/// the whole stderr.
fn start_recorder(
    args: &[&str],
    reports: &std::path::Path,
) -> (Child, std::thread::JoinHandle<String>) {
    let mut full = vec!["record", "--output", reports.to_str().unwrap()];
    full.extend(args);
    start_imprint(&full)
}

/// Starts `imprint ARGS` (`record` or `monitor` of the whole host) and
/// waits until its probes are attached, as [`start_recorder`].
fn start_imprint(args: &[&str]) -> (Child, std::thread::JoinHandle<String>) {
    start_recording(imprint().args(args))
}

/// Starts `command` (an `imprint` recording every cgroup, however it is
/// launched) and waits until its probes are attached, as [`start_recorder`].
fn start_recording(
    command: &mut std::process::Command,
) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "imprint record ended before recording: {seen}"
        );
        seen.push_str(&line);
        if line.starts_with("recording every cgroup") {
            break;
        }
    }
    // Keep draining stderr in the background so imprint never blocks on it.
    let rest = std::thread::spawn(move || {
        let mut text = seen;
        let _ = stderr.read_to_string(&mut text);
        text
    });
    (child, rest)
}

#[test]
fn records_every_cgroup_into_its_own_report() {
    require_root();
    let (_work, dir) = workdir();
    let cgroup = TestCgroup::new("duration");
    let reports = dir.join("reports");
    let (mut recorder, stderr) = start_recorder(&["--duration", "3s"], &reports);
    let own_cgroup = format!("/imprint/self-{}", recorder.id());
    let mut worker = cgroup.spawn("cat /etc/hostname > /dev/null; ls /proc/self/ > /dev/null");
    assert!(worker.wait().unwrap().success());
    let status = recorder.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "{stderr}");

    let report = read_json(&reports.join(format!("{}.json", cgroup.name)));
    assert_eq!(
        report["spec"]["subject"]["cgroup"],
        format!("/{}", cgroup.name)
    );
    assert_eq!(
        file_access(&report, "/etc/hostname"),
        Some(vec!["read".to_string()])
    );
    assert!(
        has_exec(&report, &["cat", "/etc/hostname"]),
        "{}",
        report["spec"]["executables"]
    );
    assert!(
        stderr.contains(&format!("/{}:", cgroup.name)),
        "summary line missing: {stderr}"
    );
    // imprint's own cgroup is ignored.
    let own = std::fs::read_dir(&reports).unwrap().flatten().filter(|e| {
        std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&format!("\"{own_cgroup}\"")))
    });
    assert_eq!(own.count(), 0, "imprint recorded itself");
}

/// Recording every cgroup from a cgroup namespace (an agent in a kind node,
/// whose cgroup2 mount is the node's cgroup): the cgroups inside are
/// recorded; those outside (the other nodes', the host's), which no path
/// seen from there names, are ignored in the kernel from their first
/// syscall and counted, instead of being recorded and warned about as
/// paths that cannot be found.
#[test]
fn recording_every_cgroup_in_a_cgroup_namespace_leaves_the_rest_out() {
    require_root();
    let (_work, dir) = workdir();
    let mount = dir.join("cgroup");
    let reports = dir.join("reports");
    let view = TestCgroup::new("view");
    let inside = TestCgroup::at(&format!("{}/inside", view.name));
    let outside = TestCgroup::new("outside");
    let mut command = in_cgroup_namespace(
        r#"exec "$2" record --duration 4s --cgroup-root "$1" --output "$3""#,
        &mount,
    );
    command.arg(env!("CARGO_BIN_EXE_imprint")).arg(&reports);
    let (mut recorder, rest) = start_recording(view.enter_on_exec(&mut command));
    let script = "cat /etc/hostname > /dev/null; ls /proc/self/ > /dev/null";
    assert!(inside.spawn(script).wait().unwrap().success());
    assert!(outside.spawn(script).wait().unwrap().success());
    let status = recorder.wait().unwrap();
    let stderr = rest.join().unwrap();
    assert!(status.success(), "{stderr}");

    // Inside: its own report, under its path as seen from the namespace.
    let report = read_json(&reports.join("inside.json"));
    assert_eq!(report["spec"]["subject"]["cgroup"], "/inside");
    assert!(has_exec(&report, &["cat", "/etc/hostname"]), "{report:#}");
    // Outside: no report, no warning, counted.
    let names: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("outside")),
        "a report for a cgroup outside the view: {names:?}"
    );
    assert!(!stderr.contains("cgroup path unknown"), "{stderr}");
    let left_out: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("left out: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of cgroups left out: {stderr}"));
    assert!(left_out >= 1, "{stderr}");
}

/// Two cgroups taking turns on one CPU, making the same syscalls, each get
/// every one of them in their own report: nothing the kernel side keeps
/// per CPU (a cache of what the last cgroup there made, say) may carry
/// one cgroup's syscalls over to the other.
#[test]
fn cgroups_taking_turns_on_one_cpu_each_get_their_syscalls() {
    require_root();
    let (_work, dir) = workdir();
    let (a, b) = (TestCgroup::new("turns-a"), TestCgroup::new("turns-b"));
    let reports = dir.join("reports");
    let (mut recorder, stderr) = start_recorder(&["--duration", "4s"], &reports);
    // The driver lives where recording every cgroup ignores it (below
    // /imprint), so no other recorded cgroup makes syscalls between the
    // turns: b's turn starts right after a's.
    let driver = TestCgroup::at(&format!("imprint/test-turns-{}", std::process::id()));
    // a, b, a, b, all on one CPU: b makes personality right after a made
    // it there, and clock_nanosleep (the sleep) after a did. Each turn is
    // a shell that moves itself ($$, its own pid) into its cgroup first.
    let fixture = fixture();
    let turn = |cgroup: &TestCgroup, steps: &str| {
        format!(
            "sh -c 'echo $$ > \"$0\"/cgroup.procs && exec \"$1\" {steps}' '{}' '{}'\n",
            cgroup.path.display(),
            fixture.display()
        )
    };
    let script = dir.join("turns.sh");
    let turns = [
        turn(&a, "rare"),
        turn(&b, "rare"),
        turn(&a, "rare sleep:10 rare"),
        turn(&b, "sleep:10 rare"),
    ];
    std::fs::write(&script, format!("set -e\n{}", turns.concat())).unwrap();
    let cpu = first_allowed_cpu();
    let mut worker = driver.spawn(&format!("exec taskset -c {cpu} sh {}", script.display()));
    assert!(worker.wait().unwrap().success());
    let status = recorder.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "{stderr}");
    for cgroup in [&a, &b] {
        let report = read_json(&reports.join(format!("{}.json", cgroup.name)));
        let names = syscalls(&report);
        for wanted in ["personality", "execve", "clock_nanosleep"] {
            assert!(
                names.iter().any(|n| n == wanted),
                "{}: {wanted} missing from {names:?}",
                cgroup.name
            );
        }
    }
}

/// The first CPU this process may run on (from /proc/self/status).
fn first_allowed_cpu() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status");
    list.trim()
        .split([',', '-'])
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a CPU number")
}

#[test]
fn ctrl_c_ends_the_recording_and_writes_every_report() {
    require_root();
    let (_work, dir) = workdir();
    let cgroup = TestCgroup::new("interrupt");
    let reports = dir.join("reports");
    let (mut recorder, stderr) = start_recorder(&["--duration", "120s"], &reports);
    let mut worker = cgroup.spawn("cat /etc/hostname > /dev/null");
    assert!(worker.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    // SAFETY: signalling the child we started.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGINT) };
    let status = recorder.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "imprint took {:?} to stop",
        started.elapsed()
    );
    assert!(status.success(), "{}", stderr.join().unwrap());
    let report = read_json(&reports.join(format!("{}.json", cgroup.name)));
    assert_eq!(
        file_access(&report, "/etc/hostname"),
        Some(vec!["read".to_string()])
    );
}

#[test]
fn a_missing_runtime_socket_is_named_and_recording_goes_on() {
    require_root();
    let (_work, dir) = workdir();
    let cgroup = TestCgroup::new("nosocket");
    let reports = dir.join("reports");
    let socket = dir.join("no-such-containerd.sock");
    let socket_arg = socket.to_str().unwrap().to_string();
    let (mut recorder, stderr) = start_recorder(
        &["--duration", "2s", "--runtime-socket", &socket_arg],
        &reports,
    );
    let mut worker = cgroup.spawn("cat /etc/hostname > /dev/null");
    assert!(worker.wait().unwrap().success());
    let status = recorder.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("container runtime unreachable")
            && stderr.contains("no-such-containerd.sock"),
        "no warning about the socket: {stderr}"
    );
    let report = read_json(&reports.join(format!("{}.json", cgroup.name)));
    assert_eq!(
        file_access(&report, "/etc/hostname"),
        Some(vec!["read".to_string()])
    );
}

/// A container that makes a child cgroup (systemd in a container, Docker in
/// Docker) is one report: what runs in the child is the container's, not
/// the host's, and not a report of its own.
#[test]
fn a_child_cgroup_folds_into_its_container() {
    require_root();
    let (_work, dir) = workdir();
    let id = format!("{:064x}", u128::from(std::process::id()) << 64 | 0xc0ffee);
    let base = format!(
        "imprint-test-nested-{}/kubepods/burstable/pod8a7c4a3e-1b2c-4d5e-9f00-{:012x}",
        std::process::id(),
        std::process::id()
    );
    let container = TestCgroup::at(&format!("{base}/{id}"));
    let child = TestCgroup::at(&format!("{base}/{id}/init.scope"));
    let reports = dir.join("reports");
    let (mut recorder, stderr) = start_recorder(&["--duration", "3s"], &reports);
    let mut parent_work = container.spawn("cat /etc/hostname > /dev/null");
    let mut child_work = child.spawn("ls /proc/self/ > /dev/null");
    assert!(parent_work.wait().unwrap().success() && child_work.wait().unwrap().success());
    let status = recorder.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "{stderr}");

    let stem = container.name.replace('/', "_");
    let report = read_json(&reports.join(format!("{stem}.json")));
    assert_eq!(
        report["spec"]["subject"]["cgroup"],
        format!("/{}", container.name)
    );
    assert_eq!(report["spec"]["subject"]["containerId"], id);
    assert!(
        has_exec(&report, &["cat", "/etc/hostname"]) && has_exec(&report, &["ls", "/proc/self/"]),
        "the child's behavior is the container's: {}",
        report["spec"]["executables"]
    );
    let child_reports = std::fs::read_dir(&reports)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("init.scope"))
        .count();
    assert_eq!(child_reports, 0, "no report of its own for the child");
    drop(child);
}

/// A cgroup that existed before recording began was not seen from its
/// start (the runtime's start-up syscalls are missing): its report says
/// so. One made while recording was.
#[test]
fn a_report_says_whether_its_start_was_observed() {
    require_root();
    let (_work, dir) = workdir();
    let before = TestCgroup::new("before");
    // Busy through the whole recording (then it ends on its own).
    let mut running = before.spawn("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 0.5; done");
    let reports = dir.join("reports");
    let (mut recorder, stderr) = start_recorder(&["--duration", "3s"], &reports);
    let after = TestCgroup::new("after");
    let mut worker = after.spawn("cat /etc/hostname > /dev/null");
    assert!(worker.wait().unwrap().success());
    let status = recorder.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "{stderr}");
    let _ = running.kill();
    let _ = running.wait();

    let started = |cgroup: &TestCgroup| {
        read_json(&reports.join(format!("{}.json", cgroup.name)))["spec"]["stats"]["startObserved"]
            .clone()
    };
    assert_eq!(started(&after), serde_json::json!(true));
    assert_eq!(started(&before), serde_json::json!(false));
}

#[test]
fn monitoring_the_host_checks_each_cgroup_against_the_baseline_of_its_name() {
    require_root();
    let (_work, dir) = workdir();
    let cgroup = TestCgroup::new("monitored");
    let fixture = fixture();
    std::fs::write(dir.join("in.txt"), "input").unwrap();
    let load = format!(
        "while :; do '{}' read:{}/in.txt; sleep 0.2; done",
        fixture.display(),
        dir.display()
    );
    // Learn it, from its start: the host recorded for 3 s, a report per
    // cgroup.
    let baselines = dir.join("baselines");
    let (mut recorder, stderr) = start_recorder(&["--duration", "3s"], &baselines);
    let mut worker = cgroup.spawn(&load);
    assert!(
        recorder.wait().unwrap().success(),
        "{}",
        stderr.join().unwrap()
    );
    let stem = format!("imprint-test-monitored-{}", std::process::id());
    assert!(baselines.join(format!("{stem}.json")).exists());

    // Guard it: the same load, then two actions it never did.
    let alerts = dir.join("alerts.jsonl");
    let (mut monitor, stderr) = start_imprint(&[
        "monitor",
        "--duration",
        "4s",
        "--baseline-dir",
        baselines.to_str().unwrap(),
        "--output",
        alerts.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    let mut intruder = cgroup.spawn(&format!(
        "'{}' read:/etc/shadow; /bin/true",
        fixture.display()
    ));
    assert!(intruder.wait().unwrap().success());
    assert!(
        monitor.wait().unwrap().success(),
        "{}",
        stderr.join().unwrap()
    );
    worker.kill().unwrap();
    let _ = worker.wait();

    let path = format!("/{stem}");
    let ours: Vec<serde_json::Value> = std::fs::read_to_string(&alerts)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["subject"]["cgroup"] == path.as_str())
        .collect();
    let mut rules: Vec<(String, String)> = ours
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap().to_string(),
                a["observed"]["path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    rules.sort();
    // `unexpected-exec` fires only against a baseline: the file of its name
    // was found and used; the loop it learnt raised nothing.
    assert_eq!(
        rules,
        [
            ("shadow-file-read".to_string(), "/etc/shadow".to_string()),
            ("unexpected-exec".to_string(), "/usr/bin/true".to_string()),
        ],
        "{ours:#?}"
    );
}
