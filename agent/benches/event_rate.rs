//! The highest rate of new events one cgroup can produce that the recorder
//! takes with nothing lost, and the recorder's CPU per 1,000 events.
//!
//! `cargo bench -p imprint --bench event_rate` (as root). A worker in a
//! recorded cgroup makes new events at a set rate for two seconds: opens
//! of files it never opened before (90%), UDP connects to ports it never
//! used (10%) and an exec with new arguments every 1,000 events. The same
//! worker unrecorded is the baseline of what the generator itself reaches.
//! It prints figures; it never fails on them.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Recorder, machine, unified_root};

/// Seconds of events per measurement.
const SECONDS: u64 = 2;
/// Target rates, events per second; 0: as fast as the worker can.
const RATES: [u64; 6] = [10_000, 25_000, 50_000, 100_000, 200_000, 0];
/// Events made when the rate is unbounded.
const UNBOUNDED_EVENTS: u64 = 600_000;
const ROUNDS: usize = 2;

fn main() {
    common::main("event-rate", worker, run);
}

/// `worker PROCS DIR N RATE`: joins the cgroup (when PROCS is not empty),
/// makes N new events at RATE per second (0: unbounded) and prints the
/// rate reached.
fn worker(args: &[String]) {
    if !args[0].is_empty() {
        std::fs::write(&args[0], "0").expect("joining the cgroup");
    }
    let dir = Path::new(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    let rate: u64 = args[3].parse().unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let names: Vec<std::ffi::CString> = (0..n)
        .map(|i| std::ffi::CString::new(dir.join(i.to_string()).to_str().unwrap()).unwrap())
        .collect();
    let mut children: Vec<Child> = Vec::new();
    let start = Instant::now();
    for i in 0..n {
        if rate > 0 && i % 256 == 0 {
            let due = Duration::from_nanos(i * 1_000_000_000 / rate);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        if i % 1000 == 999 {
            children.push(
                Command::new("/bin/true")
                    .arg(i.to_string())
                    .spawn()
                    .unwrap(),
            );
        } else if i % 10 == 9 {
            // A port never used before (the connects cycle through 50,000).
            let port = 10_000 + (i / 10) % 50_000;
            let _ = socket.connect(("127.0.0.1", port as u16));
        } else {
            // SAFETY: open/close of a NUL-terminated path.
            unsafe { libc::close(libc::open(names[i as usize].as_ptr(), libc::O_RDONLY)) };
        }
    }
    let elapsed = start.elapsed();
    for mut child in children {
        let _ = child.wait();
    }
    println!("{}", (n as f64 / elapsed.as_secs_f64()) as u64);
}

/// One measurement: (rate reached, events received, events lost,
/// recorder CPU ms per 1,000 events); the last three only when recorded.
struct Run {
    reached: u64,
    recorded: Option<(u64, u64, f64)>,
}

fn measure(rate: u64, unified: Option<&Path>) -> Run {
    let n = if rate == 0 {
        UNBOUNDED_EVENTS
    } else {
        rate * SECONDS
    };
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        if i % 10 != 9 && i % 1000 != 999 {
            std::fs::write(dir.path().join(i.to_string()), "").unwrap();
        }
    }
    let recorder = unified.map(Recorder::start);
    std::thread::sleep(Duration::from_millis(500));
    let cpu_before = recorder.as_ref().map(Recorder::cpu);
    let procs = recorder
        .as_ref()
        .map(|r| r.procs.to_str().unwrap().to_string())
        .unwrap_or_default();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["worker", &procs])
        .arg(dir.path())
        .args([n.to_string(), rate.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let reached: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    let Some(recorder) = recorder else {
        return Run {
            reached,
            recorded: None,
        };
    };
    // What is in flight is drained well within a second.
    std::thread::sleep(Duration::from_secs(1));
    let cpu = recorder.cpu() - cpu_before.unwrap();
    let report = recorder.stop();
    let stats = &report["spec"]["stats"];
    let events = stats["events"].as_u64().unwrap_or(0);
    let lost = stats["drops"]["total"].as_u64().unwrap_or(0);
    Run {
        reached,
        recorded: Some((
            events,
            lost,
            cpu.as_secs_f64() * 1000.0 / (events.max(1) as f64 / 1000.0),
        )),
    }
}

fn run() {
    let unified = unified_root();
    println!(
        "# new events one cgroup makes vs what the recorder takes ({})",
        machine()
    );
    println!(
        "# {SECONDS} s per rate; 90% new opens, 10% new UDP connects, an exec with new arguments every 1,000"
    );
    println!(
        "| round | target/s | unrecorded reached/s | recorded reached/s | events received | lost | recorder CPU ms per 1,000 events |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut best_without_loss = [0u64; ROUNDS];
    for (round, best) in best_without_loss.iter_mut().enumerate() {
        for rate in RATES {
            let baseline = measure(rate, None);
            let run = measure(rate, Some(&unified));
            let (events, lost, cpu) = run.recorded.unwrap();
            let target = if rate == 0 {
                "unbounded".to_string()
            } else {
                rate.to_string()
            };
            println!(
                "| {} | {target} | {} | {} | {events} | {lost} | {cpu:.2} |",
                round + 1,
                baseline.reached,
                run.reached
            );
            if lost == 0 {
                *best = (*best).max(run.reached);
            }
        }
    }
    let worst = best_without_loss.iter().copied().min().unwrap_or(0);
    println!(
        "# highest rate with nothing lost, in every round: {worst} new events/s (goal: at least 50,000)"
    );
}
