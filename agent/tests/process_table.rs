//! The kernel keeps the process table (fork and exec probes, the
//! `processes` map): a fork loop sends nothing per fork, and the table
//! still names each process's parent and program (a fork's is its
//! parent's), exited ones included.

mod common;

use std::time::Duration;

use common::require_root;
use imprint::capture::decode::{Event, decode};
use imprint::cgroups::Hierarchy;
use imprint::detect::process::ProcessSource;
use imprint::probes::{ProbeConfig, Probes};

/// Loops of `/bin/true` run in the recorded cgroup.
const LOOPS: usize = 500;

#[tokio::test]
async fn forks_fill_the_kernels_table_and_send_nothing() {
    require_root();
    let hierarchy = Hierarchy::detect().unwrap();
    let path = format!("imprint-process-table-{}", std::process::id());
    let dir = hierarchy.create(&path).unwrap();
    let id = hierarchy.id_of(&path).unwrap();
    let mut probes = Probes::load(
        &ProbeConfig {
            record_all: false,
            capability_hook: Default::default(),
            ignore: Vec::new(),
            track_processes: true,
        },
        hierarchy.root(),
    )
    .unwrap();
    probes.record_cgroup(&dir, id).unwrap();
    let mut ring = probes.take_events().unwrap();
    let table = probes.take_processes().expect("the process table");

    let work = tempfile::tempdir().unwrap();
    let pidfile = work.path().join("sleep.pid");
    let forkfile = work.path().join("subshell.pid");
    let procs = dir.join("cgroup.procs");
    let script = format!(
        "i=0; while [ $i -lt {LOOPS} ]; do /bin/true; i=$((i+1)); done; \
         /bin/sleep 0.2 & echo $! > {}; (i=0) & echo $! > {}; wait",
        pidfile.display(),
        forkfile.display()
    );
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}; exec /bin/sh -c '{script}'",
            procs.display()
        ))
        .spawn()
        .unwrap();
    let shell = child.id().unwrap();
    assert!(child.wait().await.unwrap().success());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut events = Vec::new();
    while let Some(record) = ring.next() {
        events.push(decode(&record).unwrap());
    }
    let execs_of = |name: &str| {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Exec { path, key_hash, .. } if path.ends_with(name) => Some(*key_hash),
                _ => None,
            })
            .collect::<Vec<u64>>()
    };
    assert_eq!(execs_of("/true").len(), 1, "one exec event for the loop");
    assert!(
        events.len() < LOOPS / 2,
        "{LOOPS} forks and execs sent {} records",
        events.len()
    );

    // The shell, as it executed in the cgroup: its parent is this test.
    let sh = table.get(shell).expect("the shell is in the table");
    assert_eq!(sh.ppid, std::process::id());
    assert_eq!(sh.cgroup_id, id);
    let by_shell: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Exec {
                header, key_hash, ..
            } if header.pid == shell => Some(*key_hash),
            _ => None,
        })
        .collect();
    assert_eq!(by_shell, [sh.key_hash], "{sh:?}");

    // `sleep` has exited; the table still names its parent and program.
    let sleep_pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sleep = table.get(sleep_pid).expect("the exited sleep is kept");
    assert_eq!(sleep.ppid, shell);
    assert_eq!(execs_of("/sleep"), [sleep.key_hash]);
    assert_eq!(sleep.cgroup_id, id);

    // A subshell that only forked runs its parent's program.
    let subshell: u32 = std::fs::read_to_string(&forkfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let forked = table.get(subshell).expect("the forked subshell is kept");
    assert_eq!((forked.ppid, forked.key_hash), (shell, sh.key_hash));
    drop(probes);
    let _ = std::fs::remove_dir(&dir);
}
