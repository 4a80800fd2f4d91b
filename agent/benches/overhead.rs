//! What imprint's probes add to every syscall and to every open, as a ratio
//! to an empty program on the same hooks and beside bpftrace counting
//! syscalls per cgroup (what a user would write instead), all measured in
//! one run; and what recording a syscall's argument adds (an `ioctl` loop
//! and a `socket`/`close` loop beside the `getppid` one, whose argument is
//! not recorded).
//!
//! `cargo bench -p imprint --bench overhead` (as root). Configurations are
//! interleaved round by round and the medians printed, with each program's
//! own run time from the kernel's BPF statistics (`kernel.bpf_stats_enabled`)
//! and the size of imprint's programs and of their paths as the verifier
//! translated them (`-- --paths-only` prints those alone). It
//! prints figures and compares them with the targets; it never fails on them.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod common;
use common::bpftrace::{self, Bpftrace};
use common::xlated::{Program, Route, Span};
use common::{Recorder, is_named, loaded_programs, machine, median, unified_root};

const ROUNDS: usize = 5;
const GETPPID_CALLS: u64 = 20_000_000;
const OPENS: u64 = 1_000_000;
const IOCTLS: u64 = 5_000_000;
const SOCKETS: u64 = 1_000_000;
/// Operations of the passes with BPF statistics on (they slow every program
/// run by two clock reads, so wall times come from passes with them off).
const STATS_DIVISOR: u64 = 4;

fn main() {
    common::main("overhead", worker, run);
}

/// Runs one measured loop, optionally inside a cgroup: prints `ns_per_op`.
fn worker(args: &[String]) {
    common::join_cgroup(args.get(2));
    let n: u64 = args[1].parse().unwrap();
    let start = Instant::now();
    match args[0].as_str() {
        "getppid" => {
            for _ in 0..n {
                // SAFETY: getppid has no preconditions.
                std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
            }
        }
        "ioctl" => {
            let null = std::fs::File::open("/dev/null").unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
            let mut pending: libc::c_int = 0;
            for _ in 0..n {
                // SAFETY: FIONREAD writes one int, which `pending` is.
                std::hint::black_box(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut pending) });
            }
        }
        "socket" => {
            for _ in 0..n {
                // SAFETY: a socket opened and closed at once.
                unsafe { libc::close(libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0)) };
            }
        }
        path => {
            let path = std::ffi::CString::new(path).unwrap();
            for _ in 0..n {
                // SAFETY: open/close of a NUL-terminated path.
                unsafe { libc::close(libc::open(path.as_ptr(), libc::O_RDONLY)) };
            }
        }
    }
    println!("{:.3}", start.elapsed().as_nanos() as f64 / n as f64);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Config {
    None,
    Empty,
    Recorded,
    NotRecorded,
    BpftraceEmpty,
    BpftraceCount,
}

/// bpftrace's empty program on the tracepoint its users count syscalls on.
const BPFTRACE_EMPTY: &str = "tracepoint:raw_syscalls:sys_enter { }";
/// Syscalls counted per cgroup, as a user would write it.
const BPFTRACE_COUNT: &str = "tracepoint:raw_syscalls:sys_enter { @[cgroup, args->id] = count(); }";

impl Config {
    const ALL: [Config; 6] = [
        Config::None,
        Config::Empty,
        Config::Recorded,
        Config::NotRecorded,
        Config::BpftraceEmpty,
        Config::BpftraceCount,
    ];

    fn label(self, hook: &str) -> String {
        match self {
            Config::None => "no program".into(),
            Config::Empty => format!("empty program on {hook}"),
            Config::Recorded => "imprint, cgroup recorded".into(),
            Config::NotRecorded => "imprint, cgroup not recorded".into(),
            Config::BpftraceEmpty => "bpftrace, empty on raw_syscalls".into(),
            Config::BpftraceCount => "bpftrace, @[cgroup, id] = count()".into(),
        }
    }

    fn is_bpftrace(self) -> bool {
        matches!(self, Config::BpftraceEmpty | Config::BpftraceCount)
    }
}

/// Runs the worker, returns ns per operation.
fn measure(op: &str, n: u64, procs: Option<&Path>) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let procs = procs.map(|p| p.display().to_string()).unwrap_or_default();
    let output = Command::new(exe)
        .args(["worker", op, &n.to_string(), &procs])
        .output()
        .unwrap();
    assert!(output.status.success(), "worker failed: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// Which loaded programs a configuration's run time is read from.
#[derive(Clone)]
enum Programs {
    /// By name (the kernel keeps 15 characters of it).
    Named(&'static str),
    /// By id (bpftrace's).
    Ids(Vec<u64>),
}

impl Programs {
    fn includes(&self, program: &serde_json::Value) -> bool {
        match self {
            Programs::Named(name) => is_named(program, name),
            Programs::Ids(ids) => program["id"].as_u64().is_some_and(|id| ids.contains(&id)),
        }
    }
}

/// Run time and count, summed over the programs, from `bpftool -j prog show`.
fn prog_stats(which: &Programs) -> Option<(u64, u64)> {
    let chosen: Vec<_> = loaded_programs()
        .into_iter()
        .filter(|p| which.includes(p))
        .collect();
    (!chosen.is_empty()).then(|| {
        chosen.iter().fold((0, 0), |(time, count), p| {
            (
                time + p["run_time_ns"].as_u64().unwrap_or(0),
                count + p["run_cnt"].as_u64().unwrap_or(0),
            )
        })
    })
}

/// The paths whose length the bench prints, per program: a name and the
/// source lines (by their text) the path passes and never passes.
const PATHS: &[(&str, &[(&str, Route)])] = &[
    (
        "imprint_sys_enter",
        &[
            ("cgroup not recorded", NOT_RECORDED),
            (
                "known syscall, no argument recorded (getppid)",
                Route {
                    via: &["if (*word & bit)"],
                    avoid: &[
                        "ARG_VALUES_MAX",
                        "imprint_file_change(",
                        "__sync_fetch_and_or",
                    ],
                },
            ),
            (
                "known syscall, argument as last time (ioctl)",
                Route {
                    via: &["state->arg_last[slot] == value", "if (*word & bit)"],
                    avoid: &[
                        "bpf_get_current_cgroup_id",
                        "imprint_file_change(",
                        "__sync_fetch_and_or",
                    ],
                },
            ),
        ],
    ),
    (
        "imprint_exit_openat",
        &[
            ("cgroup not recorded", NOT_RECORDED),
            (
                "recorded, open seen before (de-duplication hit)",
                Route {
                    via: &["bpf_map_lookup_elem(&opens_seen"],
                    avoid: &["(&scratch, &zero)"],
                },
            ),
        ],
    ),
];

/// A cgroup without local storage: the storage pointer tested, no lookup.
const NOT_RECORDED: Route = Route {
    via: &["!cgrp->bpf_cgrp_storage"],
    avoid: &["bpf_cgrp_storage_get("],
};

/// A loaded program's size and the lengths of its paths in `PATHS`, as the
/// verifier translated it (`bpftool prog dump xlated`): figures the VM's
/// noise does not move.
struct Shape {
    instructions: usize,
    paths: Vec<(&'static str, Result<Span, String>)>,
}

fn shape(name: &str, paths: &'static [(&'static str, Route<'static>)]) -> Option<Shape> {
    let id = loaded_programs().iter().find(|p| is_named(p, name))?["id"].as_u64()?;
    let program = Program::load(id)?;
    Some(Shape {
        instructions: program.len(),
        paths: paths
            .iter()
            .map(|(what, route)| (*what, program.span(route)))
            .collect(),
    })
}

/// Prints each program's size and its paths' lengths.
fn print_shapes(shapes: &[(&str, Option<Shape>)]) {
    println!("imprint's programs as translated by the verifier (bpftool prog dump xlated):");
    for (name, shape) in shapes {
        let Some(shape) = shape else {
            println!("  {name:<34}      - (not found)");
            continue;
        };
        println!("  {name:<34} {:>6} instructions", shape.instructions);
        for (what, span) in &shape.paths {
            match span {
                Ok(Span { fewest, most }) => {
                    let figure = match most {
                        Some(most) if most == fewest => format!("{fewest}"),
                        Some(most) => format!("{fewest}-{most}"),
                        None => format!("{fewest}- (a loop)"),
                    };
                    println!("    path: {what:<50} {figure:>9} instructions");
                }
                Err(e) => println!("    path: {what:<50}         - ({e})"),
            }
        }
    }
}

struct Series {
    /// ns per operation, per round.
    wall: HashMap<Config, Vec<f64>>,
    /// ns per program run (bpf_stats), per round.
    body: HashMap<Config, Vec<f64>>,
}

/// One measured loop: the operation the worker runs, how many times, and
/// the hook and programs of the empty and imprint configurations.
struct Workload {
    name: &'static str,
    op: String,
    n: u64,
    hook: &'static str,
    empty: &'static str,
    imprint: &'static str,
}

fn run() {
    // `-- --paths-only`: the programs' sizes and paths alone, no timing.
    if std::env::args().any(|a| a == "--paths-only") {
        let _recorder = Recorder::start(&unified_root());
        let shapes: Vec<_> = PATHS
            .iter()
            .map(|(name, paths)| (*name, shape(name, paths)))
            .collect();
        print_shapes(&shapes);
        return;
    }
    let stats_file = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_before = std::fs::read_to_string(stats_file).unwrap_or_default();
    let set_stats = |on: bool| {
        std::fs::write(stats_file, if on { "1" } else { "0" }).expect("kernel.bpf_stats_enabled")
    };
    let unified = unified_root();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("opened");
    std::fs::write(&file, "x").unwrap();
    let file = file.to_str().unwrap().to_string();
    let with_bpftrace = bpftrace::available();
    let configs: Vec<Config> = Config::ALL
        .into_iter()
        .filter(|c| with_bpftrace || !c.is_bpftrace())
        .collect();

    let btf = aya::Btf::from_sys_fs().unwrap();
    let enter = |name, op: &str, n| Workload {
        name,
        op: op.to_string(),
        n,
        hook: "tp_btf/sys_enter",
        empty: "empty_sys_enter",
        imprint: "imprint_sys_enter",
    };
    let workloads = [
        enter("getppid", "getppid", GETPPID_CALLS),
        Workload {
            name: "open/close",
            op: file.clone(),
            n: OPENS,
            hook: "sys_exit_openat",
            empty: "empty_exit_openat",
            imprint: "imprint_exit_openat",
        },
        enter("ioctl (argument recorded)", "ioctl", IOCTLS),
        enter(
            "socket/close (socket's arguments recorded)",
            "socket",
            SOCKETS,
        ),
    ];
    let mut results: Vec<Series> = workloads
        .iter()
        .map(|_| Series {
            wall: HashMap::new(),
            body: HashMap::new(),
        })
        .collect();
    let mut shapes: Vec<(&str, Option<Shape>)> = Vec::new();
    let mut recorded_events = Vec::new();

    for round in 0..ROUNDS {
        let mut order = configs.clone();
        order.rotate_left(round % configs.len());
        for config in order {
            // Set up the configuration: nothing, an empty program, imprint
            // or bpftrace.
            let mut empty = None;
            let mut recorder = None;
            let mut tracer = None;
            match config {
                Config::None => {}
                Config::Empty => {
                    let mut ebpf = aya::Ebpf::load(imprint_probes::EMPTY_OBJECT).unwrap();
                    let p: &mut aya::programs::BtfTracePoint = ebpf
                        .program_mut("empty_sys_enter")
                        .unwrap()
                        .try_into()
                        .unwrap();
                    p.load("sys_enter", &btf).unwrap();
                    p.attach().unwrap();
                    let p: &mut aya::programs::TracePoint = ebpf
                        .program_mut("empty_exit_openat")
                        .unwrap()
                        .try_into()
                        .unwrap();
                    p.load().unwrap();
                    p.attach("syscalls", "sys_exit_openat").unwrap();
                    empty = Some(ebpf);
                }
                Config::Recorded | Config::NotRecorded => {
                    recorder = Some(Recorder::start(&unified));
                    if shapes.is_empty() {
                        shapes = PATHS
                            .iter()
                            .map(|(name, paths)| (*name, shape(name, paths)))
                            .collect();
                    }
                }
                Config::BpftraceEmpty => tracer = Some(Bpftrace::start(BPFTRACE_EMPTY)),
                Config::BpftraceCount => tracer = Some(Bpftrace::start(BPFTRACE_COUNT)),
            }
            for (i, w) in workloads.iter().enumerate() {
                let programs = match (config, &tracer) {
                    (Config::None, _) => None,
                    (Config::Empty, _) => Some(Programs::Named(w.empty)),
                    (_, Some(t)) => Some(Programs::Ids(t.programs.clone())),
                    _ => Some(Programs::Named(w.imprint)),
                };
                let procs = match (config, &recorder) {
                    (Config::Recorded, Some(r)) => Some(r.procs.as_path()),
                    _ => None,
                };
                set_stats(false);
                let ns = measure(&w.op, w.n, procs);
                results[i].wall.entry(config).or_default().push(ns);
                let Some(programs) = programs else { continue };
                set_stats(true);
                let before = prog_stats(&programs);
                measure(&w.op, w.n / STATS_DIVISOR, procs);
                if let (Some((t0, c0)), Some((t1, c1))) = (before, prog_stats(&programs))
                    && c1 > c0
                {
                    results[i]
                        .body
                        .entry(config)
                        .or_default()
                        .push((t1 - t0) as f64 / (c1 - c0) as f64);
                }
                set_stats(false);
            }
            drop(tracer);
            // What the recorded cgroup's loops sent: a handful of events if
            // every repeated call ends at its de-duplication.
            if let (Config::Recorded, Some(r)) = (config, recorder.take()) {
                let report = r.stop();
                recorded_events.push(
                    report["spec"]["stats"]["events"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                );
            }
            drop(recorder);
            drop(empty);
        }
    }
    let _ = std::fs::write(stats_file, stats_before.trim());

    println!("imprint probe overhead: {ROUNDS} rounds, configurations interleaved, medians");
    println!("(wall times with BPF statistics off; program run times from a pass with them on;");
    println!(" x empty: the cost added over no program, as a multiple of the empty program's)");
    println!("machine: {}", machine());
    if !with_bpftrace {
        println!("bpftrace is not installed: its configurations are left out");
    }
    let mut added_ns = HashMap::new();
    for (i, w) in workloads.iter().enumerate() {
        let series = &mut results[i];
        let base = median(series.wall.get_mut(&Config::None).unwrap());
        let empty_added = median(series.wall.get_mut(&Config::Empty).unwrap()) - base;
        println!();
        println!("{} loop, {} operations, ns per operation:", w.name, w.n);
        let floor = series
            .body
            .get_mut(&Config::Empty)
            .map(|b| median(b))
            .unwrap_or(0.0);
        println!(
            "  {:<34} {:>9} {:>9} {:>8} {:>13} {:>12}",
            "configuration", "median", "added", "x empty", "program run", "minus empty"
        );
        for &config in &configs {
            let wall = median(series.wall.get_mut(&config).unwrap());
            added_ns.insert((i, config), wall - base);
            let body = series.body.get_mut(&config).map(|b| median(b));
            let (added, ratio) = if config == Config::None {
                ("-".into(), "-".into())
            } else {
                (
                    format!("{:+.1}", wall - base),
                    format!("{:.2}", (wall - base) / empty_added),
                )
            };
            let over = body
                .map(|b| format!("{:+.1}", b - floor))
                .unwrap_or_else(|| "-".into());
            let body = body
                .map(|b| format!("{b:.1}"))
                .unwrap_or_else(|| "-".into());
            println!(
                "  {:<34} {:>9.1} {:>9} {:>8} {:>13} {:>12}",
                config.label(w.hook),
                wall,
                added,
                ratio,
                body,
                over
            );
        }
    }
    // A program's own cost: its run time minus the empty program's, which is
    // what the statistics' own clock reads add to every run.
    let body = |i: usize, c: Config, r: &mut Vec<Series>| {
        let floor = r[i]
            .body
            .get_mut(&Config::Empty)
            .map(|b| median(b))
            .unwrap_or(0.0);
        r[i].body
            .get_mut(&c)
            .map(|b| median(b) - floor)
            .unwrap_or(f64::NAN)
    };
    let added = |i: usize, c: Config| added_ns.get(&(i, c)).copied().unwrap_or(f64::NAN);
    println!();
    print_shapes(&shapes);
    let operations: u64 = workloads.iter().map(|w| w.n + w.n / STATS_DIVISOR).sum();
    println!(
        "  events the recorded cgroup sent per round (its {operations} operations): median {:.0}",
        median(&mut recorded_events)
    );
    println!();
    println!("targets:");
    let ratio = |i: usize, c: Config| added(i, c) / added(i, Config::Empty);
    let mut targets = vec![
        (
            "getppid: imprint recorded, added / empty hook's added <= 1.15x",
            ratio(0, Config::Recorded),
            1.15,
        ),
        (
            "open/close: imprint recorded, added / empty hook's added <= 1.5x",
            ratio(1, Config::Recorded),
            1.5,
        ),
    ];
    let above_floor = added(0, Config::Recorded) - added(0, Config::Empty);
    let bpftrace_above = added(0, Config::BpftraceCount) - added(0, Config::BpftraceEmpty);
    if with_bpftrace {
        // As "at most": imprint's cost above its floor over a quarter of
        // bpftrace's above its own.
        targets.push((
            "getppid: imprint's cost above the floor / bpftrace's <= 0.25",
            above_floor / bpftrace_above,
            0.25,
        ));
    }
    for (what, value, limit) in targets {
        println!(
            "  {:<68} {:>7.2}  {}",
            what,
            value,
            if value <= limit { "met" } else { "MISSED" }
        );
    }
    if with_bpftrace {
        println!(
            "  (getppid, above the floor: imprint recorded {above_floor:+.1} ns, bpftrace counting {bpftrace_above:+.1} ns)"
        );
    }
    // The argument capture: a recorded ioctl (same request every time: a
    // lookup that finds it) against a recorded getppid (no argument).
    let argument =
        body(2, Config::Recorded, &mut results) - body(0, Config::Recorded, &mut results);
    println!(
        "  {:<68} {:>7.1}  (recorded ioctl body minus recorded getppid body)",
        "argument capture, ns per recorded call with an argument", argument
    );
}
