//! `imprint record -- CMD` against real processes, with the real probes.

mod common;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;

use common::*;

#[test]
fn records_what_a_process_tree_does_and_nothing_else() {
    require_root();
    let (_work, dir) = workdir();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/rel.txt"), "relative").unwrap();
    let outside_marker = dir.join("outside-marker.txt");

    // Endpoints made by the test itself, outside the recorded cgroup.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    let accepter = std::thread::spawn(move || {
        let (mut conn, _) = tcp.accept().unwrap();
        let mut byte = [0u8; 1];
        let _ = conn.read(&mut byte);
    });
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let tcp6 = TcpListener::bind("[::1]:0").unwrap();
    let tcp6_port = tcp6.local_addr().unwrap().port();
    let accepter6 = std::thread::spawn(move || {
        let (mut conn, _) = tcp6.accept().unwrap();
        let mut byte = [0u8; 1];
        let _ = conn.read(&mut byte);
    });

    // While the command runs (it has written w.txt and sleeps at the end),
    // a process outside its cgroup opens a file.
    let marker = outside_marker.clone();
    let started = dir.join("w.txt");
    let outsider = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !started.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the command never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::write(&marker, "outside").unwrap();
    });

    let reports = dir.join("reports");
    let fixture = fixture();
    let steps = [
        "rare".to_string(),
        format!("write:{}/w.txt", dir.display()),
        format!("chdir:{}/sub", dir.display()),
        "read:rel.txt".to_string(),
        "mkdir:made".to_string(),
        "exec:/bin/sh:-c:sh -c 'cat /etc/hostname' > /dev/null".to_string(),
        format!("tcp:127.0.0.1:{tcp_port}"),
        format!("udp:127.0.0.1:{udp_port}"),
        format!("tcp:::1:{tcp6_port}"),
        "serve".to_string(),
        format!("chown:{}/w.txt:1234", dir.display()),
        "deny-time".to_string(),
        "sleep:400".to_string(),
    ];
    let mut command = vec![fixture.to_str().unwrap()];
    command.extend(steps.iter().map(String::as_str));
    let (output, report) = record(&reports, &command);
    accepter.join().unwrap();
    accepter6.join().unwrap();
    outsider.join().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "imprint record failed: {output:?}");

    // Syscalls: the rare one, from the kernel's bitmap.
    let names = syscalls(&report);
    assert!(names.contains(&"personality".to_string()), "{names:?}");
    assert_eq!(report["spec"]["syscalls"]["arch"], std::env::consts::ARCH);

    // Files: absolute and relative opens, both with absolute paths.
    let written = file_access(&report, &format!("{}/w.txt", dir.display())).expect("written file");
    for access in ["write", "create", "truncate", "chown"] {
        assert!(written.contains(&access.to_string()), "{written:?}");
    }
    let read = file_access(&report, &format!("{}/sub/rel.txt", dir.display()))
        .expect("relative open, absolute path");
    assert_eq!(read, ["read"]);
    let made = file_access(&report, &format!("{}/sub/made", dir.display()))
        .expect("relative mkdir, absolute path");
    assert_eq!(made, ["mkdir"]);
    assert!(
        file_access(&report, outside_marker.to_str().unwrap()).is_none(),
        "outside process recorded"
    );

    // Every hook loads on this kernel (a hook the verifier refuses is
    // otherwise only a line in the report).
    assert!(
        report["spec"]["stats"].get("missingHooks").is_none(),
        "{}",
        report["spec"]["stats"]
    );

    // Executables: the child and the grandchild, with their arguments.
    let execs = report["spec"]["executables"].as_array().unwrap();
    let exec_of = |args: &[&str]| has_exec(&report, args);
    assert!(
        exec_of(&["/bin/sh", "-c", "sh -c 'cat /etc/hostname' > /dev/null"]),
        "{execs:?}"
    );
    assert!(exec_of(&["sh", "-c", "cat /etc/hostname"]), "{execs:?}");
    assert!(
        exec_of(&["cat", "/etc/hostname"]),
        "grandchild missing: {execs:?}"
    );
    assert!(
        execs.iter().any(|e| e["path"] == fixture.to_str().unwrap()),
        "{execs:?}"
    );

    // Network: outbound TCP and UDP to the test's endpoints; the fixture's
    // own listener, inbound accept; not the test's listener (outside).
    assert!(
        has_endpoint(&report, "outbound", "tcp", "127.0.0.1", tcp_port),
        "{}",
        report["spec"]["network"]
    );
    assert!(
        has_endpoint(&report, "outbound", "udp", "127.0.0.1", udp_port),
        "{}",
        report["spec"]["network"]
    );
    let served: u16 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("served on "))
        .and_then(|p| p.trim().parse().ok())
        .expect("fixture printed its port");
    assert!(
        has_endpoint(&report, "listening", "tcp", "127.0.0.1", served),
        "{}",
        report["spec"]["network"]
    );
    assert!(
        has_endpoint(&report, "inbound", "tcp", "127.0.0.1", served),
        "{}",
        report["spec"]["network"]
    );
    assert!(
        has_endpoint(&report, "outbound", "tcp", "127.0.0.1", served),
        "{}",
        report["spec"]["network"]
    );
    assert!(
        !has_endpoint(&report, "listening", "tcp", "127.0.0.1", tcp_port),
        "test's listener recorded"
    );

    // Capabilities: chown needed; the refused clock change denied, not
    // needed; the overcommit probe behind mmap probed, not needed.
    let chown = capability(&report, "CAP_CHOWN").expect("CAP_CHOWN");
    assert_eq!(chown["needed"], true);
    let time = capability(&report, "CAP_SYS_TIME").expect("CAP_SYS_TIME");
    assert_eq!(
        (time["needed"].as_bool(), time["denied"].as_bool()),
        (Some(false), Some(true))
    );
    if let Some(admin) = capability(&report, "CAP_SYS_ADMIN") {
        assert_eq!(
            admin["needed"], false,
            "CAP_SYS_ADMIN was only probed: {admin}"
        );
    }

    // Stats and drops.
    assert_eq!(report["spec"]["stats"]["drops"]["total"], 0);
    assert_eq!(report["spec"]["stats"]["syscalls"], names.len());
}

#[test]
fn the_command_exit_status_is_kept() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (output, report) = record(dir.path(), &["/bin/sh", "-c", "exit 7"]);
    assert_eq!(output.status.code(), Some(7));
    assert!(syscalls(&report).contains(&"exit_group".to_string()));
}

#[test]
fn cgroups_made_below_the_command_are_followed() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "d={}$(sed -n 's/^0:://p' /proc/self/cgroup)/child && mkdir $d && echo $$ > $d/cgroup.procs && exec cat /etc/hostname",
        unified_root().display()
    );
    let (output, report) = record(dir.path(), &["/bin/sh", "-c", &script]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        has_exec(&report, &["cat", "/etc/hostname"]),
        "{}",
        report["spec"]["executables"]
    );
    assert_eq!(
        file_access(&report, "/etc/hostname"),
        Some(vec!["read".to_string()])
    );
}

#[test]
fn strace_sees_no_syscall_the_report_misses() {
    require_root();
    let (_work, dir) = workdir();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/rel.txt"), "x").unwrap();
    let fixture = fixture();
    let steps = |tag: &str| {
        vec![
            fixture.to_str().unwrap().to_string(),
            "rare".into(),
            format!("write:{}/w-{tag}.txt", dir.display()),
            format!("chdir:{}/sub", dir.display()),
            "read:rel.txt".into(),
            "exec:/bin/sh:-c:ls / > /dev/null".into(),
            "serve".into(),
            format!("mkdir:{}/d-{tag}", dir.display()),
        ]
    };
    let trace = dir.join("strace.out");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args(steps("strace"))
        .status()
        .expect("strace (Debian package strace) is needed");
    assert!(status.success());
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut seen: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let rest = line.split_once(' ')?.1.trim_start();
            let rest = rest.strip_prefix("<... ").unwrap_or(rest);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && !rest.starts_with("+++") && !rest.starts_with("---"))
                .then_some(name)
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert!(seen.len() > 20, "strace parsing: {seen:?}");

    let reports = dir.join("reports");
    let args = steps("imprint");
    let (output, report) = record(
        &reports,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(output.status.success(), "{output:?}");
    let recorded = syscalls(&report);
    let missing: Vec<_> = seen.iter().filter(|s| !recorded.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "strace saw syscalls the report lacks: {missing:?}\nreport: {recorded:?}"
    );
}

#[test]
fn a_hook_that_fails_to_load_is_named_and_the_rest_records() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let output = imprint()
        .args(["record", "--capability-hook", "fexit", "--output"])
        .arg(dir.path())
        .args([
            "--",
            "/bin/sh",
            "-c",
            "chown 0 /proc/self/fd/1 2>/dev/null; true",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = only_report(dir.path());
    if stderr.contains("not recorded: capability checks") {
        // No BPF trampolines on this kernel: the loss is named, the rest is there.
        assert!(stderr.contains("fexit/cap_capable"), "{stderr}");
        assert!(syscalls(&report).contains(&"exit_group".to_string()));
        assert_eq!(report["spec"]["capabilities"], serde_json::json!([]));
        // The report itself says so: an empty capability list from this
        // node is no evidence that nothing is needed.
        let missing = strings(&report["spec"]["stats"]["missingHooks"]);
        assert!(
            missing
                .iter()
                .any(|m| m.starts_with("cap_capable: capability checks")),
            "{missing:?}"
        );
    } else {
        assert!(
            report["spec"]["capabilities"]
                .as_array()
                .is_some_and(|c| !c.is_empty()),
            "{stderr}"
        );
    }
}

/// A node that is itself a container (kind) shows the agent a cgroup2 mount
/// made in a cgroup namespace: not the top of the hierarchy. Recording with
/// `--cgroup-root` at such a mount works like at the real root.
#[test]
fn records_under_a_cgroup_root_made_in_a_cgroup_namespace() {
    require_root();
    let (_work, dir) = workdir();
    let mount = dir.join("cgroup");
    let reports = dir.join("reports");
    // The namespace's root: a cgroup of the test's own, entered before unshare.
    let outer = TestCgroup::new("nsroot");
    let mut command = in_cgroup_namespace(
        r#"test -e "$1/cgroup.type" &&
           exec "$2" record --cgroup-root "$1" --output "$3" -- "$4" read:/etc/hostname"#,
        &mount,
    );
    command.arg(env!("CARGO_BIN_EXE_imprint"));
    command.arg(&reports).arg(fixture());
    let output = outer.enter_on_exec(&mut command).output().unwrap();
    drop(outer);
    assert!(
        output.status.success(),
        "record in a cgroup namespace failed: {output:?}"
    );
    let report = only_report(&reports);
    assert_eq!(
        file_access(&report, "/etc/hostname"),
        Some(vec!["read".to_string()]),
        "{report:#}"
    );
    let fixture = fixture();
    assert!(
        has_exec(&report, &[fixture.to_str().unwrap(), "read:/etc/hostname"]),
        "{report:#}"
    );
}

/// Every way of making or changing a file is seen: symbolic and hard
/// links, FIFOs, unix sockets bound to a path, truncation by path,
/// extended attributes, times. (Each would make a read-only root
/// filesystem fail the workload.)
#[test]
fn every_kind_of_file_change_is_recorded() {
    require_root();
    let (_work, dir) = workdir();
    std::fs::write(dir.join("target"), "x").unwrap();
    let d = dir.display();
    let steps = [
        format!("symlink:target:{d}/sym"),
        format!("link:{d}/target:{d}/hard"),
        format!("mkfifo:{d}/fifo"),
        format!("truncate:{d}/target"),
        format!("setxattr:{d}/target"),
        format!("utime:{d}/target"),
        format!("bind-unix:{d}/sock"),
    ];
    let fixture = fixture();
    let mut command = vec![fixture.to_str().unwrap()];
    command.extend(steps.iter().map(String::as_str));
    let (output, report) = record(&dir.join("reports"), &command);
    assert!(output.status.success(), "{output:?}");
    for (path, access) in [
        ("sym", "symlink"),
        ("hard", "link"),
        ("fifo", "mknod"),
        ("sock", "mknod"),
        ("target", "truncate"),
        ("target", "xattr"),
        ("target", "utime"),
    ] {
        let found = file_access(&report, &format!("{d}/{path}")).unwrap_or_default();
        assert!(
            found.contains(&access.to_string()),
            "{path}: {access} not in {found:?}\n{}",
            report["spec"]["files"]
        );
    }
}

/// An unprivileged process that runs a program with file capabilities
/// (`setcap`) gains privilege, which `allowPrivilegeEscalation: false`
/// (no_new_privs) refuses: the report marks that execution, and only it.
#[test]
fn an_exec_gaining_file_capabilities_is_marked() {
    require_root();
    let (_work, dir) = workdir();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let with_caps = dir.join("bind-low");
    let plain = dir.join("plain");
    std::fs::copy("/bin/true", &with_caps).unwrap();
    std::fs::copy("/bin/true", &plain).unwrap();
    let setcap = Command::new("setcap")
        .arg("cap_net_bind_service+ep")
        .arg(&with_caps)
        .status()
        .expect("setcap (libcap2-bin)");
    assert!(setcap.success());
    let script = format!("{}; {}", with_caps.display(), plain.display());
    let (output, report) = record(
        &dir.join("reports"),
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/bin/sh",
            "-c",
            &script,
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let exec = |path: &std::path::Path| {
        report["spec"]["executables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == path.to_str().unwrap())
            .cloned()
            .unwrap_or_else(|| panic!("{path:?} not run: {}", report["spec"]["executables"]))
    };
    assert_eq!(
        strings(&exec(&with_caps)["fileCapabilities"]),
        ["CAP_NET_BIND_SERVICE"]
    );
    assert!(
        exec(&plain).get("fileCapabilities").is_none(),
        "{}",
        exec(&plain)
    );
}

/// A fork/exec loop sends one event per distinct exec, not one per
/// iteration: the kernel counts the repeats, and the report still says how
/// many times each ran. An exec of the same file and arguments as root is
/// distinct (the securityContext rules depend on it).
#[test]
fn repeated_execs_are_counted_in_the_kernel_not_sent() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let script = "setpriv --reuid=65534 /bin/true loop; \
                  i=0; while [ $i -lt 3000 ]; do /bin/true loop; i=$((i+1)); done; \
                  /bin/true once; /bin/true loop";
    let (output, report) = record(dir.path(), &["/bin/sh", "-c", script]);
    assert!(output.status.success(), "{output:?}");
    let exec = |args: &[&str]| {
        report["spec"]["executables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| strings(&e["args"]) == args)
            .cloned()
            .unwrap_or_else(|| panic!("{args:?} not run: {}", report["spec"]["executables"]))
    };
    let looped = exec(&["/bin/true", "loop"]);
    assert_eq!(looped["count"], 3002, "{looped}");
    // Root ran it too, after a non-root run: the entry says so.
    assert_eq!(looped["euid"], 0, "{looped}");
    assert_eq!(exec(&["/bin/true", "once"])["count"], 1);
    // 3,000 execs of one program would be 3,000 events if each were sent.
    let events = report["spec"]["stats"]["events"].as_u64().unwrap();
    assert!(events < 1000, "{events} events for a loop of 3,000 execs");
}

/// The calls a seccomp rule can restrict by argument: the calls (family
/// and type of a socket, without SOCK_CLOEXEC; unshare's flags; prctl's
/// option; personality's value; ioctl's request) of the recorded command
/// are in its report, each once; past the bound of distinct values the
/// syscall is marked overflowed.
#[test]
fn syscall_arguments_are_recorded() {
    require_root();
    let (_work, dir) = workdir();
    let fixture = fixture();
    let steps = [
        "socket:2:1",         // AF_INET, SOCK_STREAM
        "socket:1:1",         // AF_UNIX, SOCK_STREAM
        "socket:10:2",        // AF_INET6, SOCK_DGRAM
        "socket:2:1",         // the same call again
        "unshare:0x04000000", // CLONE_NEWUTS
        "prctl:3",            // PR_GET_DUMPABLE
        "rare",               // personality(0xffffffff)
        "ioctl:0x7100:3",
        "thread",
        "mmap:7",     // read, write and execute at once
        "mprotect:5", // read and execute
    ];
    let mut command = vec![fixture.to_str().unwrap()];
    command.extend(steps);
    let (output, report) = record(&dir.join("reports"), &command);
    assert!(output.status.success(), "{output:?}");
    let arguments = &report["spec"]["syscalls"]["arguments"];
    let calls = |name: &str| -> Vec<Vec<(u64, u64)>> {
        let entry = arguments
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .unwrap_or_else(|| panic!("no arguments of {name}: {arguments}"));
        assert_eq!(entry["overflow"], serde_json::Value::Null, "{entry}");
        entry["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|call| {
                call.as_array()
                    .unwrap()
                    .iter()
                    .map(|a| (a["index"].as_u64().unwrap(), a["value"].as_u64().unwrap()))
                    .collect()
            })
            .collect()
    };
    let sockets = calls("socket");
    // Family, type and protocol (0: the family's default).
    for expected in [
        [(0, 2), (1, 1), (2, 0)],
        [(0, 1), (1, 1), (2, 0)],
        [(0, 10), (1, 2), (2, 0)],
    ] {
        assert!(
            sockets.contains(&expected.to_vec()),
            "{expected:?} not in {sockets:?}"
        );
    }
    assert_eq!(
        sockets.len(),
        sockets
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        "each call once: {sockets:?}"
    );
    assert!(calls("unshare").contains(&vec![(0, 0x0400_0000)]));
    assert!(calls("prctl").contains(&vec![(0, 3)]));
    assert!(calls("personality").contains(&vec![(0, 0xffff_ffff)]));
    let ioctls = calls("ioctl");
    for request in 0x7100..0x7103 {
        assert!(
            ioctls.contains(&vec![(1, request)]),
            "{request:#x} not in {ioctls:?}"
        );
    }
    // Only the write and execute bits of the protection (the loader maps
    // read-only, read-write and read-execute pages itself).
    let maps = calls("mmap");
    for bits in [0, 2, 4, 6] {
        assert!(maps.contains(&vec![(2, bits)]), "{bits} not in {maps:?}");
    }
    assert!(calls("mprotect").contains(&vec![(2, 4)]));
}

/// More distinct values than the probe sends per syscall: the values up to
/// the bound are in the report, and the syscall is marked overflowed (a
/// profile cannot restrict it to the values seen).
#[test]
fn too_many_argument_values_are_marked_overflowed() {
    require_root();
    let (_work, dir) = workdir();
    let fixture = fixture();
    let command = [fixture.to_str().unwrap(), "ioctl:0x7200:100"];
    let (output, report) = record(&dir.join("reports"), &command);
    assert!(output.status.success(), "{output:?}");
    let ioctl = report["spec"]["syscalls"]["arguments"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "ioctl"))
        .cloned()
        .unwrap_or_else(|| panic!("no ioctl arguments: {}", report["spec"]["syscalls"]));
    assert_eq!(ioctl["overflow"], true, "{ioctl}");
    let n = ioctl["calls"].as_array().unwrap().len();
    assert!(
        n <= imprint_probes::events::arg::VALUES_MAX,
        "{n} values sent past the bound"
    );
}
