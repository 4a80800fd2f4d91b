//! What detection costs: the fork probe (which keeps the kernel's process
//! table) on a fork-heavy loop (against no program and against an empty
//! program on the same hook, in
//! the same run; the loop's time and the kernel's own run-time statistics
//! of each program), and the latency from an action to its alert line over
//! 1,000 actions.
//!
//! `cargo bench -p imprint --bench detection` (as root). Configurations are
//! interleaved round by round and the medians printed. It prints figures
//! and compares them with the targets; it never fails on them.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

mod common;
use common::{Recorder, machine, median, unified_root};

const ROUNDS: usize = 5;
const FORKS: u64 = 20_000;
const ACTIONS: usize = 1_000;

fn main() {
    common::main("detection", worker, run);
}

/// `forks N [PROCS]`: N fork/exit/wait in the cgroup of PROCS, prints ns
/// per fork; `writes DIR N`: N files written below DIR, 5 ms apart.
fn worker(args: &[String]) {
    match args[0].as_str() {
        "forks" => {
            common::join_cgroup(args.get(2));
            let n: u64 = args[1].parse().unwrap();
            let start = Instant::now();
            for _ in 0..n {
                // SAFETY: the child only calls _exit; the parent reaps it.
                unsafe {
                    let pid = libc::fork();
                    if pid == 0 {
                        libc::_exit(0);
                    }
                    let mut status = 0;
                    libc::waitpid(pid, &mut status, 0);
                }
            }
            println!("{:.1}", start.elapsed().as_nanos() as f64 / n as f64);
        }
        "writes" => {
            let n: usize = args[2].parse().unwrap();
            for i in 0..n {
                std::fs::write(format!("{}/{i}", args[1]), "x").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        other => panic!("unknown worker {other}"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Config {
    None,
    Empty,
    Recorded,
    Tracked,
}

impl Config {
    const ALL: [Config; 4] = [
        Config::None,
        Config::Empty,
        Config::Recorded,
        Config::Tracked,
    ];

    fn name(self) -> &'static str {
        match self {
            Config::None => "no program",
            Config::Empty => "empty fork program",
            Config::Recorded => "imprint record (no process tracking)",
            Config::Tracked => "imprint monitor (fork probe, process table)",
        }
    }
}

fn run() {
    println!("# detection: {}", machine());
    forks();
    latency();
}

/// The kernel's run-time statistics of the loaded programs whose (cut)
/// names start with `prefix`: (runs, nanoseconds).
fn program_stats(prefix: &str) -> (u64, u64) {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str().is_some_and(|n| n.starts_with(prefix)))
        .map(|p| (p.run_count(), p.run_time().as_nanos() as u64))
        .fold((0, 0), |(c, t), (pc, pt)| (c + pc, t + pt))
}

/// The fork program of a configuration, by its kernel name (cut to 15
/// bytes).
fn fork_program(config: Config) -> &'static str {
    match config {
        Config::Empty => "empty_fork",
        _ => "imprint_fork",
    }
}

fn forks() {
    // Run-time statistics of every program, while this lives.
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).unwrap();
    let mut per_run: Vec<(Config, Vec<f64>)> = Vec::new();
    let unified = unified_root();
    let btf = aya::Btf::from_sys_fs().unwrap();
    let alerts = tempfile::tempdir().unwrap();
    let mut results: Vec<(Config, Vec<f64>)> =
        Config::ALL.iter().map(|c| (*c, Vec::new())).collect();
    for round in 0..ROUNDS {
        let mut order = Config::ALL;
        order.rotate_left(round % Config::ALL.len());
        for config in order {
            let mut empty = None;
            let mut recorder = None;
            match config {
                Config::None => {}
                Config::Empty => {
                    let mut ebpf = aya::Ebpf::load(imprint_probes::EMPTY_OBJECT).unwrap();
                    let p: &mut aya::programs::BtfTracePoint =
                        ebpf.program_mut("empty_fork").unwrap().try_into().unwrap();
                    p.load("sched_process_fork", &btf).unwrap();
                    p.attach().unwrap();
                    empty = Some(ebpf);
                }
                Config::Recorded => recorder = Some(Recorder::start(&unified)),
                Config::Tracked => {
                    recorder = Some(Recorder::monitor(
                        &unified,
                        &alerts.path().join(format!("alerts-{round}")),
                    ))
                }
            }
            let procs = recorder
                .as_ref()
                .map(|r| r.procs.display().to_string())
                .unwrap_or_default();
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["worker", "forks", &FORKS.to_string(), &procs])
                .output()
                .unwrap();
            let ns: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            if matches!(config, Config::Empty | Config::Tracked) {
                let (runs, total) = program_stats(fork_program(config));
                let mean = total as f64 / runs.max(1) as f64;
                match per_run.iter_mut().find(|(c, _)| *c == config) {
                    Some((_, v)) => v.push(mean),
                    None => per_run.push((config, vec![mean])),
                }
            }
            results
                .iter_mut()
                .find(|(c, _)| *c == config)
                .unwrap()
                .1
                .push(ns);
            drop(recorder);
            drop(empty);
        }
    }
    let medians: Vec<(Config, f64)> = results.iter_mut().map(|(c, v)| (*c, median(v))).collect();
    let of = |config: Config| medians.iter().find(|(c, _)| *c == config).unwrap().1;
    println!("\n## fork + exit + wait, {FORKS} per run, median of {ROUNDS} runs");
    println!("| configuration | ns per fork | added to no program |");
    println!("|---|---|---|");
    for (config, ns) in &medians {
        println!(
            "| {} | {ns:.0} | {:+.0} |",
            config.name(),
            ns - of(Config::None)
        );
    }
    let floor = of(Config::Empty) - of(Config::None);
    let probes = of(Config::Tracked) - of(Config::Recorded);
    println!(
        "fork probe and process table (monitor minus record): {probes:.0} ns per fork; an empty program on the same hook: {floor:.0} ns"
    );
    println!(
        "\n## the kernel's run time of each program (kernel.bpf_stats), median of {ROUNDS} runs"
    );
    println!("| program | ns per run |");
    println!("|---|---|");
    for (config, runs) in &mut per_run {
        println!("| {} on fork | {:.0} |", config.name(), median(runs));
    }
}

fn latency() {
    let dir = format!("/etc/imprint-bench-{}", std::process::id());
    std::fs::create_dir_all(&dir).unwrap();
    let mut monitor = Command::new(env!("CARGO_BIN_EXE_imprint"));
    monitor
        .args([
            "monitor",
            "--max-alerts-per-second",
            "1000000",
            "--output",
            "/dev/stdout",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["worker", "writes", &dir, &ACTIONS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: only setpgid between fork and exec.
    unsafe {
        monitor.pre_exec(|| {
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    let mut child = monitor.spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap());
    let mut latencies = Vec::new();
    for line in lines.lines() {
        let Ok(line) = line else { break };
        let received = SystemTime::now();
        let Ok(alert) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if alert["rule"] != "write-below-system-dir" {
            continue;
        }
        let Some(time) = alert["time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        else {
            continue;
        };
        let at = SystemTime::UNIX_EPOCH
            + std::time::Duration::from_nanos(time.timestamp_nanos_opt().unwrap_or(0) as u64);
        latencies.push(
            received
                .duration_since(at)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0),
        );
    }
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "\n## alert latency: a write below /etc to its JSON line, {} alerts of {ACTIONS} actions",
        latencies.len()
    );
    println!(
        "p50 {:.1} ms (goal <= 50), p99 {:.1} ms (goal <= 200), max {:.1} ms: {}",
        at(0.5),
        at(0.99),
        at(1.0),
        if at(0.5) <= 50.0 && at(0.99) <= 200.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
