use super::*;
use crate::capture::decode::ExecProcess;
use imprint_crd::report::{ContainerBehaviorReportSpec, Executable, FileAccess};
use imprint_probes::events::{EventHeader, ProcessInfo, access, file_op, kind, net_kind};
use std::net::{IpAddr, Ipv4Addr};

struct One(Option<Arc<Baseline>>);

thread_local! {
    /// The kernel's process table as the probes would keep it (each test
    /// runs on a thread of its own).
    static KERNEL: std::cell::RefCell<HashMap<u32, ProcessInfo>> = Default::default();
}

/// Reads [`KERNEL`].
struct FakeKernel;

impl ProcessSource for FakeKernel {
    fn get(&self, pid: u32) -> Option<ProcessInfo> {
        KERNEL.with(|k| k.borrow().get(&pid).copied())
    }
}

/// What the exec probe does to the process table before it sends `event`.
fn kernel_sees(event: &Event) {
    if let Event::Exec {
        header,
        key_hash,
        process,
        ..
    } = event
    {
        KERNEL.with(|k| {
            k.borrow_mut().insert(
                header.pid,
                ProcessInfo {
                    key_hash: *key_hash,
                    cgroup_id: header.cgroup_id,
                    ppid: process.ppid,
                    uid: process.uid,
                    gid: process.gid,
                    _pad: 0,
                },
            )
        });
    }
}

/// A detector reading [`KERNEL`].
fn with_kernel(mut d: Detector) -> Detector {
    d.set_processes(Box::new(FakeKernel));
    d
}

/// A resolver whose baseline can change, with its generation.
struct Changing {
    baseline: Arc<std::sync::Mutex<Option<Arc<Baseline>>>>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Resolve for Changing {
    fn resolve(&mut self, id: u64, made: Option<(&str, u64)>) -> Option<Watch> {
        One(self.baseline.lock().unwrap().clone()).resolve(id, made)
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Resolve for One {
    fn resolve(&mut self, id: u64, _: Option<(&str, u64)>) -> Option<Watch> {
        (id == 5).then(|| Watch {
            key: "c".into(),
            settled: true,
            provisional: false,
            subject: Subject {
                cgroup: Some("/test".into()),
                namespace: Some("shop".into()),
                ..Subject::default()
            },
            baseline: self.0.clone(),
            started: false,
        })
    }
}

fn header(kind: u32, pid: u32) -> EventHeader {
    EventHeader {
        kind,
        pid,
        cgroup_id: 5,
        timestamp_ns: 1,
    }
}

fn exec(pid: u32, ppid: u32, path: &str, args: &[&str], key: u64) -> Event {
    Event::Exec {
        header: header(kind::EXEC, pid),
        path: path.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        euid: 0,
        file_mode: 0o755,
        cap_bset: 0,
        cap_gained: 0,
        key_hash: key,
        truncated: false,
        process: ExecProcess {
            ppid,
            ..ExecProcess::default()
        },
    }
}

fn open(pid: u32, path: &str, bits: u32) -> Event {
    Event::File {
        header: header(kind::FILE, pid),
        op: file_op::OPEN,
        access: bits,
        path: path.into(),
        truncated: false,
    }
}

fn syscall(pid: u32, nr: u32) -> Event {
    Event::Syscall {
        header: header(kind::SYSCALL, pid),
        nr,
    }
}

fn syscall_arg(pid: u32, nr: u32, value: u64) -> Event {
    Event::SyscallArg {
        header: header(kind::SYSCALL_ARG, pid),
        nr,
        value,
        overflow: false,
    }
}

fn nr(name: &str) -> u32 {
    Arch::native().unwrap().syscall_number(name).unwrap()
}

fn baseline() -> Arc<Baseline> {
    let mut spec = ContainerBehaviorReportSpec::default();
    spec.executables.push(Executable {
        path: "/bin/sh".into(),
        args: vec!["sh".into(), "/start.sh".into()],
        count: 1,
        ..Executable::default()
    });
    spec.executables.push(Executable {
        path: "/usr/bin/server".into(),
        args: vec!["server".into()],
        count: 1,
        ..Executable::default()
    });
    spec.executables.push(Executable {
        path: "/bin/sleep".into(),
        args: vec!["sleep".into(), "5".into()],
        count: 1,
        ..Executable::default()
    });
    spec.files.push(FileAccess {
        path: "/etc/server.conf".into(),
        access: [Access::Read].into(),
    });
    spec.syscalls.names = vec!["read".into(), "write".into()];
    Arc::new(Baseline::from_reports([&spec]))
}

fn detector(baseline: Option<Arc<Baseline>>) -> Detector {
    with_kernel(Detector::new(
        DetectorConfig::default(),
        Box::new(One(baseline)),
    ))
}

fn run(d: &mut Detector, events: &[Event]) -> Vec<Alert> {
    let now = Instant::now();
    events
        .iter()
        .flat_map(|e| {
            kernel_sees(e);
            d.observe(e, now)
        })
        .collect()
}

fn start() -> Vec<Event> {
    vec![
        exec(10, 1, "/bin/sh", &["sh", "/start.sh"], 1),
        exec(11, 10, "/usr/bin/server", &["server"], 2),
        open(11, "/etc/server.conf", access::READ),
        syscall(11, nr("read")),
    ]
}

#[test]
fn what_the_profile_holds_raises_nothing() {
    let mut d = detector(Some(baseline()));
    assert!(run(&mut d, &start()).is_empty());
    // Another cgroup is not watched at all.
    let mut other = exec(50, 1, "/usr/bin/apt-get", &["apt-get"], 9);
    if let Event::Exec { header, .. } = &mut other {
        header.cgroup_id = 6;
    }
    assert!(run(&mut d, &[other]).is_empty());
}

#[test]
fn a_new_program_names_its_process_and_ancestry() {
    let mut d = detector(Some(baseline()));
    run(&mut d, &start());
    let alerts = run(&mut d, &[exec(12, 11, "/usr/bin/id", &["id"], 3)]);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.rule, "unexpected-exec");
    assert!(a.outside_profile);
    assert_eq!(a.process.as_ref().unwrap().pid, 12);
    let chain: Vec<(u32, &str)> = a.ancestry.iter().map(|x| (x.pid, x.exe.as_str())).collect();
    assert_eq!(chain, [(11, "/usr/bin/server"), (10, "/bin/sh")]);
    assert_eq!(a.subject.namespace.as_deref(), Some("shop"));
    // Once per cooldown.
    assert!(run(&mut d, &[exec(13, 11, "/usr/bin/id", &["id"], 3)]).is_empty());
}

#[test]
fn a_known_program_with_arguments_of_a_new_shape_is_an_anomaly() {
    let mut d = detector(Some(baseline()));
    run(&mut d, &start());
    // Off by default.
    let off = run(
        &mut d,
        &[exec(16, 11, "/usr/bin/server", &["server", "-x"], 9)],
    );
    assert!(off.is_empty(), "{off:?}");
    let config = DetectorConfig {
        switches: RuleSwitches::new(&[], &["unexpected-exec-arguments".into()]).unwrap(),
        ..DetectorConfig::default()
    };
    let mut d = with_kernel(Detector::new(config, Box::new(One(Some(baseline())))));
    run(&mut d, &start());
    // Another number: the same shape.
    assert!(run(&mut d, &[exec(12, 11, "/bin/sleep", &["sleep", "60"], 5)]).is_empty());
    let alerts = run(
        &mut d,
        &[exec(
            13,
            11,
            "/usr/bin/server",
            &["server", "--debug", "7"],
            6,
        )],
    );
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].rule, "unexpected-exec-arguments");
    assert!(alerts[0].outside_profile);
    assert!(
        alerts[0]
            .message
            .ends_with(r#"/usr/bin/server ["server","--debug","<num>"]"#),
        "{}",
        alerts[0].message
    );
    // Once per cooldown for that shape; another shape alerts again.
    assert!(
        run(
            &mut d,
            &[exec(
                14,
                11,
                "/usr/bin/server",
                &["server", "--debug", "8"],
                7
            )]
        )
        .is_empty()
    );
    assert_eq!(
        run(
            &mut d,
            &[exec(15, 11, "/usr/bin/server", &["server", "-v"], 8)]
        )
        .len(),
        1
    );
    // From a profile: the shapes it lists, and any arguments for a program
    // it lists without shapes (a profile of an earlier release).
    let mut profile = imprint_crd::profile::ContainerProfile {
        executables: vec!["/bin/sh".into(), "/usr/bin/server".into()],
        ..Default::default()
    };
    profile.exec_arguments = vec![imprint_crd::profile::ExecArguments {
        path: "/bin/sh".into(),
        any: false,
        shapes: vec![vec!["sh".into(), "/start.sh".into()]],
    }];
    let b = Baseline::from_profile(&profile);
    assert!(b.has_execution("/bin/sh", &["sh".into(), "/start.sh".into()]));
    assert!(!b.has_execution("/bin/sh", &["sh".into(), "-c".into(), "id".into()]));
    assert!(b.has_execution("/usr/bin/server", &["server".into(), "-v".into()]));
}

/// A detector whose resolver's baseline (none at first) and generation
/// the test changes.
#[allow(clippy::type_complexity)]
fn changing() -> (
    Detector,
    Arc<std::sync::Mutex<Option<Arc<Baseline>>>>,
    Arc<std::sync::atomic::AtomicU64>,
) {
    let baseline = Arc::new(std::sync::Mutex::new(None));
    let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let d = with_kernel(Detector::new(
        DetectorConfig::default(),
        Box::new(Changing {
            baseline: baseline.clone(),
            generation: generation.clone(),
        }),
    ));
    (d, baseline, generation)
}

#[test]
fn a_new_generation_of_the_resolver_places_containers_again_at_once() {
    let (mut d, baseline, generation) = changing();
    run(&mut d, &start());
    // No profile yet: a new program is no anomaly.
    assert!(run(&mut d, &[exec(12, 11, "/usr/bin/id", &["id"], 3)]).is_empty());
    // The profile starts guarding: the same second, the next event is
    // judged against it (without a new generation, not for a minute).
    *baseline.lock().unwrap() = Some(self::baseline());
    assert!(run(&mut d, &[exec(13, 11, "/usr/bin/whoami", &["whoami"], 4)]).is_empty());
    generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let alerts = run(&mut d, &[exec(14, 11, "/usr/bin/uname", &["uname"], 5)]);
    assert_eq!(
        alerts.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
        ["unexpected-exec"]
    );
}

#[test]
fn a_quiet_container_counts_as_guarded_once_its_profile_guards() {
    let (mut d, baseline, generation) = changing();
    run(&mut d, &start());
    d.refresh(Instant::now());
    assert_eq!(d.guarded_containers(), 0);
    // The profile guards; the container sends nothing more (the kernel
    // sends each item once).
    *baseline.lock().unwrap() = Some(self::baseline());
    generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(d.guarded_containers(), 0, "not placed again yet");
    d.refresh(Instant::now());
    assert_eq!(d.guarded_containers(), 1);
}

#[test]
fn a_builtin_rule_speaks_for_the_event_and_the_profile_silences_what_it_learnt() {
    let mut d = detector(Some(baseline()));
    run(&mut d, &start());
    let alerts = run(
        &mut d,
        &[
            exec(12, 11, "/usr/bin/apt-get", &["apt-get", "install", "x"], 3),
            exec(13, 11, "/bin/sh", &["sh", "-c", "id"], 4),
            open(13, "/etc/shadow", access::READ),
            open(13, "/etc/motd", access::WRITE | access::CREATE),
            syscall(13, nr("ptrace")),
            syscall(13, nr("getuid")),
        ],
    );
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "package-manager",
            "shell-spawned-by-server",
            "shadow-file-read",
            "write-below-system-dir",
            "ptrace",
            "unexpected-syscall"
        ]
    );
    // The shell the profile started (same argv) is not an alert.
    assert!(run(&mut d, &[exec(14, 11, "/bin/sh", &["sh", "/start.sh"], 1)]).is_empty());
}

#[test]
fn without_a_profile_only_builtin_rules_fire_and_the_runtime_start_is_not_judged() {
    let mut d = detector(None);
    // Before the first exec: the runtime setting the container up.
    let setup = [
        syscall(3, nr("mount")),
        open(3, "/etc/resolv.conf", access::WRITE | access::CREATE),
    ];
    assert!(run(&mut d, &setup).is_empty());
    assert!(run(&mut d, &start()).is_empty());
    let alerts = run(
        &mut d,
        &[syscall(11, nr("mount")), syscall(11, nr("getuid"))],
    );
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(rules, ["namespace-escape"]);
    assert!(!alerts[0].outside_profile);
}

#[test]
fn a_file_written_then_executed_is_drift() {
    let mut d = detector(None);
    run(&mut d, &start());
    let write = open(11, "/app/payload", access::WRITE | access::CREATE);
    let alerts = run(
        &mut d,
        &[write, exec(15, 11, "/app/payload", &["payload"], 7)],
    );
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(rules, ["drifted-binary"]);
}

#[test]
fn a_flood_is_ten_alerts_and_one_summary() {
    let mut d = detector(Some(baseline()));
    run(&mut d, &start());
    let now = Instant::now();
    let mut sent = 0;
    assert!(!d.holding(), "nothing held: the summaries' ticker sleeps");
    for i in 0..10_000u32 {
        let e = exec(
            100 + i,
            11,
            &format!("/opt/x{i}"),
            &["x"],
            1000 + u64::from(i),
        );
        sent += d.observe(&e, now).len();
    }
    assert_eq!(sent, 10);
    assert!(d.holding());
    assert!(d.tick(now + Duration::from_millis(500)).is_empty());
    let summaries = d.tick(now + Duration::from_secs(1));
    assert!(!d.holding());
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].count, Some(9_990));
    assert_eq!(summaries[0].rule, rules::RATE_LIMIT_RULE);
    assert_eq!(d.stats().held, 9_990);
}

#[test]
fn connections_listeners_and_switched_off_rules() {
    let config = DetectorConfig {
        switches: RuleSwitches::new(&["shop/unexpected-listener".into()], &[]).unwrap(),
        ..DetectorConfig::default()
    };
    let mut d = with_kernel(Detector::new(config, Box::new(One(Some(baseline())))));
    run(&mut d, &start());
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let net = |kind, port| Event::Net {
        header: header(kind::NET, 11),
        kind,
        protocol: 6,
        local: (
            lo,
            if kind == net_kind::LISTEN {
                port
            } else {
                40000
            },
        ),
        remote: (lo, if kind == net_kind::LISTEN { 0 } else { port }),
    };
    let alerts = run(
        &mut d,
        &[
            net(net_kind::CONNECT, 3333),
            net(net_kind::CONNECT, 8080),
            net(net_kind::LISTEN, 9000),
        ],
    );
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(
        rules,
        ["mining-pool-port", "unexpected-connection"],
        "the listener's rule is off in shop"
    );
}

#[test]
fn a_runtime_setting_up_an_exec_is_not_the_workload() {
    let mut d = detector(None);
    run(&mut d, &start());
    // `runc init` of a `kubectl exec -it`: joins the namespaces, then
    // executes the shell, which has a terminal.
    let runc = exec(30, 1, "/usr/bin/runc", &["runc", "init"], 40);
    let mut shell = exec(30, 1, "/bin/sh", &["sh"], 41);
    if let Event::Exec { process, .. } = &mut shell {
        process.traits = imprint_probes::events::exec_flags::TTY;
    }
    let alerts = run(
        &mut d,
        &[
            runc,
            syscall(30, nr("setns")),
            shell,
            syscall(30, nr("unshare")),
        ],
    );
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(rules, ["terminal-shell", "namespace-escape"]);
    assert_eq!(d.stats().runtime_actions, 1);
}

#[test]
fn a_restricted_syscall_called_with_new_arguments_is_an_anomaly() {
    // Learnt: AF_INET stream sockets, and ioctl FIONREAD only.
    let mut spec = ContainerBehaviorReportSpec::default();
    spec.executables.push(Executable {
        path: "/usr/bin/server".into(),
        args: vec!["server".into()],
        count: 1,
        ..Executable::default()
    });
    spec.syscalls.names = vec!["socket".into(), "ioctl".into()];
    let learnt = |name: &str, value: u64| imprint_crd::report::SyscallArguments {
        name: name.into(),
        calls: vec![crate::probes::arguments::decode(name, value).unwrap()],
        overflow: false,
    };
    let inet_stream = 2 | (1 << 16);
    spec.syscalls.arguments = vec![learnt("socket", inet_stream), learnt("ioctl", 0x541b)];
    let mut d = detector(Some(Arc::new(Baseline::from_reports([&spec]))));
    let mut events = vec![exec(11, 1, "/usr/bin/server", &["server"], 2)];
    events.push(syscall_arg(11, nr("socket"), inet_stream));
    // A terminal query, which a restricted ioctl always allows.
    events.push(syscall_arg(11, nr("ioctl"), 0x5401));
    assert!(run(&mut d, &events).is_empty());

    // AF_PACKET, SOCK_RAW.
    let alerts = run(&mut d, &[syscall_arg(11, nr("socket"), 17 | (3 << 16))]);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.rule, "unexpected-syscall-arguments");
    assert!(a.outside_profile);
    assert_eq!(a.process.as_ref().unwrap().pid, 11);
    let Observed::SyscallArguments { name, arguments } = &a.observed else {
        panic!("{a:?}")
    };
    assert_eq!(name, "socket");
    assert_eq!((arguments[0].value, arguments[1].value), (17, 3));

    // A profile's call as an override writes it (the family alone) covers
    // every AF_INET6 socket, as seccomp reads it: no alert for one.
    let mut profile = imprint_crd::profile::ContainerProfile {
        name: "server".into(),
        executables: vec!["/usr/bin/server".into()],
        syscalls: vec!["socket".into()],
        ..Default::default()
    };
    profile.syscall_arguments = vec![imprint_crd::report::SyscallArguments {
        name: "socket".into(),
        calls: vec![vec![imprint_crd::report::ArgumentValue {
            index: 0,
            value: 10,
            mask: Some(0xffff_ffff),
        }]],
        overflow: false,
    }];
    let mut d = detector(Some(Arc::new(Baseline::from_profile(&profile))));
    let inet6 = vec![
        exec(11, 1, "/usr/bin/server", &["server"], 2),
        syscall_arg(11, nr("socket"), 10 | (2 << 16)),
    ];
    assert!(run(&mut d, &inet6).is_empty());
    let alerts = run(&mut d, &[syscall_arg(11, nr("socket"), 2 | (1 << 16))]);
    assert_eq!(alerts.len(), 1, "AF_INET is outside it: {alerts:?}");

    // A syscall whose calls were not all learnt allows any.
    let mut open_ended = spec.clone();
    open_ended.syscalls.arguments.retain(|a| a.name != "socket");
    let mut d = detector(Some(Arc::new(Baseline::from_reports([&open_ended]))));
    events.push(syscall_arg(11, nr("socket"), 17 | (3 << 16)));
    assert!(run(&mut d, &events).is_empty());
}

/// A resolver whose one answer the test changes: a container not named
/// yet, then named, or found another node's (placed no more).
struct Scripted(Arc<std::sync::Mutex<Option<Watch>>>);

impl Resolve for Scripted {
    fn resolve(&mut self, id: u64, _: Option<(&str, u64)>) -> Option<Watch> {
        (id == 5).then(|| self.0.lock().unwrap().clone()).flatten()
    }
}

fn unnamed() -> Watch {
    Watch {
        key: "/kubepods/pod1/c1".into(),
        subject: Subject {
            cgroup: Some("/kubepods/pod1/c1".into()),
            ..Subject::default()
        },
        provisional: true,
        ..Watch::default()
    }
}

fn named() -> Watch {
    Watch {
        key: "web-1-web".into(),
        subject: Subject {
            cgroup: Some("/kubepods/pod1/c1".into()),
            namespace: Some("shop".into()),
            pod: Some("web-1".into()),
            ..Subject::default()
        },
        settled: true,
        ..Watch::default()
    }
}

/// A provisional container's package manager, and the detector with the
/// script that places it.
fn provisional_alert() -> (Detector, Arc<std::sync::Mutex<Option<Watch>>>, Instant) {
    let answer = Arc::new(std::sync::Mutex::new(Some(unnamed())));
    let mut d = with_kernel(Detector::new(
        DetectorConfig::default(),
        Box::new(Scripted(answer.clone())),
    ));
    let now = Instant::now();
    let apt = exec(12, 11, "/usr/bin/apt-get", &["apt-get", "install", "x"], 3);
    kernel_sees(&apt);
    assert!(d.observe(&apt, now).is_empty(), "sent before it was named");
    assert!(d.holding(), "a waiting alert keeps the ticks coming");
    (d, answer, now)
}

#[test]
fn an_alert_of_a_container_not_named_yet_waits_and_goes_with_its_names() {
    let (mut d, answer, now) = provisional_alert();
    assert!(
        d.tick(now + Duration::from_secs(1)).is_empty(),
        "still unnamed"
    );
    *answer.lock().unwrap() = Some(named());
    let alerts = d.tick(now + Duration::from_secs(2));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, "package-manager");
    assert_eq!(alerts[0].subject.pod.as_deref(), Some("web-1"));
    assert!(!d.holding());
}

#[test]
fn an_alert_of_another_nodes_container_is_dropped() {
    let (mut d, answer, now) = provisional_alert();
    *answer.lock().unwrap() = None;
    assert!(d.tick(now + Duration::from_secs(6)).is_empty());
    assert_eq!(d.stats().unplaced, 1);
    assert_eq!(d.stats().alerts.get("package-manager"), Some(&0));
    assert!(!d.holding());
}

#[test]
fn an_alert_of_a_container_never_named_goes_by_path_after_the_hold() {
    let (mut d, _answer, now) = provisional_alert();
    assert!(d.tick(now + HOLD_UNNAMED / 2).is_empty());
    let alerts = d.tick(now + HOLD_UNNAMED);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].subject.pod, None);
    assert_eq!(
        alerts[0].subject.cgroup.as_deref(),
        Some("/kubepods/pod1/c1")
    );
}

#[test]
fn the_summary_of_a_provisional_containers_held_alerts_waits_with_them() {
    let answer = Arc::new(std::sync::Mutex::new(Some(unnamed())));
    let mut d = with_kernel(Detector::new(
        DetectorConfig::default(),
        Box::new(Scripted(answer.clone())),
    ));
    let now = Instant::now();
    // 15 package installs in one second: 10 alerts, 5 held back.
    for n in 0..15u32 {
        let package = format!("p{n}");
        let apt = exec(
            20 + n,
            11,
            &format!("/opt/{n}/apt-get"),
            &["apt-get", "install", &package],
            30 + u64::from(n),
        );
        kernel_sees(&apt);
        assert!(d.observe(&apt, now).is_empty());
    }
    // The second is over: its summary is due, but the container is not
    // named yet.
    assert!(
        d.tick(now + Duration::from_millis(1500)).is_empty(),
        "sent by path before it was named"
    );
    *answer.lock().unwrap() = Some(named());
    let alerts = d.tick(now + Duration::from_secs(2));
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(
        rules.iter().filter(|r| **r == "package-manager").count(),
        10
    );
    assert_eq!(
        rules
            .iter()
            .filter(|r| **r == rules::RATE_LIMIT_RULE)
            .count(),
        1
    );
    assert!(
        alerts
            .iter()
            .all(|a| a.subject.pod.as_deref() == Some("web-1"))
    );
}

/// [`Scripted`], whose cgroup can be gone: then only a path given places it.
struct Vanishing(
    Arc<std::sync::Mutex<Option<Watch>>>,
    Arc<std::sync::atomic::AtomicBool>,
);

impl Resolve for Vanishing {
    fn resolve(&mut self, id: u64, made: Option<(&str, u64)>) -> Option<Watch> {
        let gone = self.1.load(std::sync::atomic::Ordering::Relaxed);
        if gone && made.is_none() {
            return None;
        }
        Scripted(self.0.clone()).resolve(id, made)
    }
}

#[test]
fn a_waiting_alert_of_a_cgroup_gone_since_is_placed_by_its_path() {
    let answer = Arc::new(std::sync::Mutex::new(Some(unnamed())));
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut d = with_kernel(Detector::new(
        DetectorConfig::default(),
        Box::new(Vanishing(answer.clone(), gone.clone())),
    ));
    let now = Instant::now();
    let apt = exec(12, 11, "/usr/bin/apt-get", &["apt-get", "install", "x"], 3);
    kernel_sees(&apt);
    assert!(d.observe(&apt, now).is_empty());
    // The cgroup is gone (no scan finds it) before the container is named.
    gone.store(true, std::sync::atomic::Ordering::Relaxed);
    *answer.lock().unwrap() = Some(named());
    let alerts = d.tick(now + Duration::from_secs(2));
    assert_eq!(alerts.len(), 1, "dropped as if another node's");
    assert_eq!(alerts[0].subject.pod.as_deref(), Some("web-1"));
}
