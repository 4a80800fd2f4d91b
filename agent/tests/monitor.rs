//! `imprint monitor` against real processes, with the real probes: a
//! workload checked against its own recorded baseline, and every built-in
//! rule triggered for real next to a near miss that must stay silent.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

/// Runs `imprint monitor [extra...] -o ALERTS -- sh -c script`; returns
/// its output and the alerts.
fn monitor(dir: &Path, extra: &[String], script: &str) -> (Output, Vec<Value>) {
    let alerts = dir.join(format!("alerts-{}.jsonl", unique()));
    let output = imprint()
        .arg("monitor")
        .args(extra)
        .arg("--output")
        .arg(&alerts)
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .expect("running imprint monitor");
    let lines = std::fs::read_to_string(&alerts).unwrap_or_default();
    let alerts = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (output, alerts)
}

/// Records `sh -c script` into a fresh folder below `dir`; the report's path.
fn record_baseline(dir: &Path, script: &str) -> PathBuf {
    let out = dir.join(format!("baseline-{}", unique()));
    let output = imprint()
        .args(["record", "--output"])
        .arg(&out)
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .expect("running imprint record");
    assert!(output.status.success(), "{output:?}");
    let file = std::fs::read_dir(&out).unwrap().next().unwrap().unwrap();
    file.path()
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// (rule, the observed item's main field) of each alert, sorted.
fn rules_and_items(alerts: &[Value]) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            let o = &a["observed"];
            let item = match o["kind"].as_str().unwrap_or_default() {
                "exec" | "file" => o["path"].as_str().unwrap_or_default().to_string(),
                "syscall" | "syscallArguments" | "capability" => {
                    o["name"].as_str().unwrap_or_default().to_string()
                }
                "network" => format!(
                    "{} {}",
                    o["direction"].as_str().unwrap_or_default(),
                    o["port"]
                ),
                other => other.to_string(),
            };
            (a["rule"].as_str().unwrap_or_default().to_string(), item)
        })
        .collect();
    items.sort();
    items
}

/// The file `/bin/sh` is (as the kernel names an exec of it).
fn shell() -> String {
    std::fs::canonicalize("/bin/sh")
        .unwrap()
        .display()
        .to_string()
}

/// Removes files the test made outside its folder, whatever happens.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn shell_quote(s: &Path) -> String {
    format!("'{}'", s.display())
}

#[test]
fn a_workload_against_its_own_baseline_alerts_on_exactly_what_it_added() {
    require_root();
    let (_work, dir) = workdir();
    let fixture = fixture();
    let f = shell_quote(&fixture);
    std::fs::write(dir.join("in.txt"), "input").unwrap();
    // A program it never ran (a copy of the fixture, made before anything
    // is recorded: not written by the workload), and a package manager's
    // name for the fixture (as busybox names its applets).
    let other = dir.join("other-program");
    std::fs::copy(&fixture, &other).unwrap();
    let apt_get = dir.join("apt-get");
    std::os::unix::fs::symlink(&fixture, &apt_get).unwrap();
    let listen = free_port();
    let d = dir.display();
    let load = format!(
        "{f} read:{d}/in.txt write:{d}/out.txt listen:127.0.0.1:{listen} sleep:20; {f} sleep:10"
    );
    let baselines: Vec<String> = (0..2)
        .flat_map(|_| {
            [
                "--baseline".to_string(),
                record_baseline(&dir, &load).display().to_string(),
            ]
        })
        .collect();

    // The same load: nothing.
    let (output, alerts) = monitor(&dir, &baselines, &load);
    assert!(output.status.success(), "{output:?}");
    assert!(alerts.is_empty(), "the recorded load alerted: {alerts:#?}");

    // The same load and seven actions it never did.
    let etc_file = PathBuf::from(format!("/etc/imprint-monitor-test-{}", std::process::id()));
    let _cleanup = Cleanup(vec![etc_file.clone()]);
    let new_port = free_port();
    let added = format!(
        "{load}; {other} sleep:1; {f} read:/etc/shadow; {f} write:{etc}; \
         {f} listen:127.0.0.1:{new_port}; {f} rare; {apt} sleep:1; {f} socket:10:2",
        other = shell_quote(&other),
        etc = etc_file.display(),
        apt = shell_quote(&apt_get),
    );
    let (output, alerts) = monitor(&dir, &baselines, &added);
    assert!(output.status.success(), "{output:?}");
    let fixture_path = fixture.display().to_string();
    let mut expected = vec![
        ("unexpected-exec".to_string(), other.display().to_string()),
        ("shadow-file-read".to_string(), "/etc/shadow".to_string()),
        (
            "write-below-system-dir".to_string(),
            etc_file.display().to_string(),
        ),
        (
            "unexpected-listener".to_string(),
            format!("listening {new_port}"),
        ),
        ("unexpected-syscall".to_string(), "personality".to_string()),
        ("package-manager".to_string(), fixture_path.clone()),
        // An IPv6 datagram socket where the baseline only opened TCP ones.
        (
            "unexpected-syscall-arguments".to_string(),
            "socket".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(rules_and_items(&alerts), expected, "{alerts:#?}");

    // Each names the process that did it, and the workload's shell above it.
    let by_rule: BTreeMap<&str, &Value> = alerts
        .iter()
        .map(|a| (a["rule"].as_str().unwrap(), a))
        .collect();
    let process_args = |rule: &str| strings(&by_rule[rule]["process"]["args"]);
    assert_eq!(
        process_args("shadow-file-read"),
        [fixture_path.as_str(), "read:/etc/shadow"]
    );
    assert_eq!(
        process_args("unexpected-syscall"),
        [fixture_path.as_str(), "rare"]
    );
    assert_eq!(
        process_args("unexpected-syscall-arguments"),
        [fixture_path.as_str(), "socket:10:2"]
    );
    let family = &by_rule["unexpected-syscall-arguments"]["observed"]["arguments"][0];
    assert_eq!(
        (&family["index"], &family["value"]),
        (&0.into(), &10.into())
    );
    assert_eq!(
        process_args("unexpected-exec")[0],
        other.display().to_string()
    );
    assert_eq!(
        process_args("package-manager")[0],
        apt_get.display().to_string()
    );
    for alert in &alerts {
        let process = &alert["process"];
        assert!(process["pid"].as_u64().unwrap() > 0, "{alert}");
        let ancestry = alert["ancestry"].as_array().unwrap();
        assert_eq!(
            strings(&ancestry[0]["args"])[..2],
            ["/bin/sh", "-c"],
            "the workload's shell is the parent: {alert}"
        );
        assert_eq!(ancestry[0]["pid"], process["ppid"], "{alert}");
        assert_eq!(alert["schema"], "imprint.dev/alert/v1");
        assert_eq!(alert["outsideProfile"], true, "{alert}");
        assert!(
            alert["subject"]["cgroup"]
                .as_str()
                .unwrap()
                .starts_with("/imprint/")
        );
    }

    // Argument shapes (a rule off by default): the workload's shell runs a
    // longer script and the fixture runs with arguments of a new shape;
    // its learnt calls (other numbers in them) are still known.
    let mut flags = baselines.clone();
    flags.extend([
        "--enable-rule".to_string(),
        "unexpected-exec-arguments".to_string(),
    ]);
    let (output, alerts) = monitor(&dir, &flags, &format!("{load}; {f} read:{d}/in.txt"));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        rules_and_items(&alerts),
        [
            ("unexpected-exec-arguments".to_string(), shell()),
            (
                "unexpected-exec-arguments".to_string(),
                fixture_path.clone()
            ),
        ],
        "{alerts:#?}"
    );
    let fixture_alert = alerts
        .iter()
        .find(|a| a["observed"]["path"] == fixture_path.as_str())
        .unwrap();
    assert_eq!(
        strings(&fixture_alert["observed"]["args"]),
        [fixture_path.clone(), format!("read:{d}/in.txt")]
    );
    assert_eq!(by_rule["unexpected-listener"]["severity"], "high");
    assert_eq!(
        by_rule["shadow-file-read"]["observed"]["access"],
        serde_json::json!(["read"])
    );
}

#[test]
fn every_builtin_rule_fires_for_real_and_its_near_miss_does_not() {
    require_root();
    let (_work, dir) = workdir();
    let f = shell_quote(&fixture());
    let i = shell_quote(&intruder());
    let d = dir.display();
    // A peer for the socket-stdio steps, owned by the test.
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_port = peer.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in peer.incoming() {
            drop(stream);
        }
    });
    // Programs made before monitoring begins (not drift): a copy in
    // /dev/shm, a copy in the work folder, `nc` and `ncdu` names for true.
    let pid = std::process::id();
    let shm = PathBuf::from(format!("/dev/shm/imprint-test-{pid}"));
    let etc_file = PathBuf::from(format!("/etc/imprint-rules-test-{pid}"));
    let _cleanup = Cleanup(vec![shm.clone(), etc_file.clone()]);
    std::fs::copy("/bin/true", &shm).unwrap();
    std::fs::copy("/bin/true", dir.join("true-copy")).unwrap();
    std::os::unix::fs::symlink("/bin/true", dir.join("nc")).unwrap();
    std::os::unix::fs::symlink("/bin/true", dir.join("ncdu")).unwrap();
    let secrets = dir.join("secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("token"), "t").unwrap();
    std::fs::write(secrets.join("ca.crt"), "c").unwrap();
    let script = [
        // Each rule, then its near miss.
        format!("{i} reverse-shell:{peer_port}"),
        format!("{i} socket-stdio:{peer_port}"),
        format!("{i} memfd-exec"),
        "/bin/true".to_string(),
        format!("{i} finit-module"),
        "ls /sys/module > /dev/null".to_string(),
        format!("{i} pty-shell"),
        "sh -c 'exit 0'".to_string(),
        "dpkg --version > /dev/null".to_string(),
        "/bin/echo apt-get install curl > /dev/null".to_string(),
        format!("{d}/nc"),
        format!("{d}/ncdu"),
        shm.display().to_string(),
        format!("{d}/true-copy"),
        format!("{i} copy-exec:/bin/true:{d}/dropped"),
        format!("{f} read:/etc/shadow read:/etc/passwd"),
        format!("{f} write:{} write:{d}/w.txt", etc_file.display()),
        format!("{f} read:{d}/secrets/kubernetes.io/serviceaccount/token"),
        format!("{f} read:{d}/secrets/kubernetes.io/serviceaccount/ca.crt"),
        format!("{i} ptrace"),
        "cat /proc/self/status > /dev/null".to_string(),
        format!("{i} unshare"),
        "unshare --help > /dev/null".to_string(),
        format!("{i} bpf"),
        "cat /proc/sys/kernel/unprivileged_bpf_disabled > /dev/null".to_string(),
        format!("{i} try-tcp:127.0.0.1:3333"),
        format!("{i} try-tcp:127.0.0.1:3306"),
        format!("{f} exec:/bin/sh:-c:exit"),
    ]
    .join(" && ");
    // Sixteen alerts in well under a second: above the default rate.
    let rate = ["--max-alerts-per-second".to_string(), "100".to_string()];
    let (output, alerts) = monitor(&dir, &rate, &script);
    assert!(output.status.success(), "{output:?}");
    let mut fired: Vec<String> = alerts
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_string())
        .collect();
    fired.sort();
    let mut expected = vec![
        "reverse-shell",
        "fileless-exec",
        "kernel-module-load",
        "terminal-shell",
        "package-manager",
        "network-tool",
        "exec-from-temp",
        "drifted-binary",
        "shadow-file-read",
        "write-below-system-dir",
        "service-account-token-read",
        "ptrace",
        "namespace-escape",
        "bpf-syscall",
        "mining-pool-port",
        "shell-spawned-by-server",
    ];
    expected.sort();
    assert_eq!(fired, expected, "{alerts:#?}");
    let item = |rule: &str| {
        let alert = alerts.iter().find(|a| a["rule"] == rule).unwrap();
        rules_and_items(std::slice::from_ref(alert))[0].1.clone()
    };
    assert_eq!(item("fileless-exec"), "/memfd:imprint-test");
    assert_eq!(item("exec-from-temp"), shm.display().to_string());
    assert_eq!(item("drifted-binary"), format!("{d}/dropped"));
    assert_eq!(
        item("write-below-system-dir"),
        etc_file.display().to_string()
    );
    assert!(item("service-account-token-read").ends_with("/token"));
    assert_eq!(item("mining-pool-port"), "outbound 3333");
    assert_eq!(item("kernel-module-load"), "finit_module");
    assert_eq!(item("namespace-escape"), "unshare");
    // No profile: nothing is "outside" one.
    assert!(alerts.iter().all(|a| a["outsideProfile"] == false));
    // A shell's terminal and socket are told apart from the shell itself.
    let shell_parent = |rule: &str| {
        let alert = alerts.iter().find(|a| a["rule"] == rule).unwrap();
        alert["ancestry"][0]["exe"].as_str().unwrap().to_string()
    };
    assert_eq!(
        shell_parent("reverse-shell"),
        intruder().display().to_string()
    );
    assert_eq!(
        shell_parent("terminal-shell"),
        intruder().display().to_string()
    );
}

#[test]
fn a_connection_to_the_api_server_alerts_only_when_the_profile_never_made_one() {
    require_root();
    let (_work, dir) = workdir();
    let f = shell_quote(&fixture());
    let api = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = api.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in api.incoming() {
            drop(stream);
        }
    });
    let api_flag = ["--api-server".to_string(), format!("127.0.0.1:{port}")];
    let talks = format!("{f} tcp:127.0.0.1:{port} sleep:20");
    let quiet = format!("{f} sleep:20");
    let with_talk = record_baseline(&dir, &talks);
    let without = record_baseline(&dir, &quiet);

    let mut flags = api_flag.to_vec();
    flags.extend(["--baseline".to_string(), with_talk.display().to_string()]);
    let (output, alerts) = monitor(&dir, &flags, &talks);
    assert!(output.status.success(), "{output:?}");
    assert!(
        alerts.is_empty(),
        "a connection the profile made: {alerts:#?}"
    );

    let mut flags = api_flag.to_vec();
    flags.extend(["--baseline".to_string(), without.display().to_string()]);
    let (_, alerts) = monitor(&dir, &flags, &talks);
    let rules: Vec<String> = rules_and_items(&alerts)
        .into_iter()
        .filter(|(rule, _)| rule != "unexpected-syscall")
        .map(|(rule, item)| format!("{rule} {item}"))
        .collect();
    assert_eq!(
        rules,
        [format!("kubernetes-api-connection outbound {port}")],
        "{alerts:#?}"
    );
}

#[test]
fn a_flood_of_execs_is_one_alert_per_program_and_summaries() {
    require_root();
    let (_work, dir) = workdir();
    let baseline = record_baseline(&dir, "/bin/true");
    let mut programs = Vec::new();
    for n in 0..30 {
        let program = dir.join(format!("p{n}"));
        std::fs::copy("/bin/true", &program).unwrap();
        programs.push(program.display().to_string());
    }
    // 10,000 executions of one program it never ran, then 30 programs it
    // never ran at once.
    let script = format!(
        "i=0; while [ $i -lt 10000 ]; do {d}/p0; i=$((i+1)); done; {all}",
        d = dir.display(),
        all = programs[1..].join("; ")
    );
    let started = std::time::Instant::now();
    let (output, alerts) = monitor(
        &dir,
        &["--baseline".to_string(), baseline.display().to_string()],
        &script,
    );
    let elapsed = started.elapsed();
    assert!(output.status.success(), "{output:?}");
    let execs: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["rule"] == "unexpected-exec")
        .collect();
    let summaries: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["rule"] == "alert-rate-limit")
        .collect();
    let p0 = execs
        .iter()
        .filter(|a| a["observed"]["path"] == programs[0].as_str())
        .count();
    assert_eq!(p0, 1, "10,000 runs of one program are one alert");
    let held: u64 = summaries.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    // Every program alerted or was counted in a summary; at most 10 a second.
    assert_eq!(execs.len() as u64 + held, 30, "{alerts:#?}");
    assert!(
        !summaries.is_empty(),
        "29 programs at once exceed 10 a second"
    );
    // SAFETY: getrusage of the children this test waited for.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    eprintln!(
        "# flood: 10,000 execs + 29 programs in {:.1} s: {} alerts, {} held back; \
         largest child peak RSS {} MiB",
        elapsed.as_secs_f64(),
        alerts.len(),
        held,
        usage.ru_maxrss / 1024
    );
}

#[test]
fn a_bad_baseline_is_a_clear_error_and_nothing_runs() {
    require_root();
    let (_work, dir) = workdir();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{ not a report").unwrap();
    let marker = dir.join("ran");
    let output = imprint()
        .args(["monitor", "--baseline"])
        .arg(&bad)
        .args(["--", "/bin/touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.json"), "{stderr}");
    assert!(!marker.exists(), "the command ran without its baseline");
    let output = imprint()
        .args([
            "monitor",
            "--disable-rule",
            "no-such-rule",
            "--",
            "/bin/true",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-rule"));
}
