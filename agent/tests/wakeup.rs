//! The ring buffer wakes its reader for an event that follows events sent
//! without a wakeup (process lineage): the kernel by itself wakes a reader
//! only for a record right after all it has read, so without the probes'
//! forced wakeup such an event would wait for the reader's next tick.

mod common;

use std::time::Duration;

use common::require_root;
use imprint::capture::decode::{Event, decode};
use imprint::cgroups::Hierarchy;
use imprint::probes::{ProbeConfig, Probes};

/// Reads every pending record; the events decoded.
fn read_all(ring: &mut aya::maps::RingBuf<aya::maps::MapData>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(record) = ring.next() {
        if let Ok(event) = decode(&record) {
            events.push(event);
        }
    }
    events
}

#[tokio::test]
async fn an_event_after_quiet_ones_wakes_the_reader() {
    require_root();
    let hierarchy = Hierarchy::detect().unwrap();
    let path = format!("imprint-wakeup-{}", std::process::id());
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
    let mut ring = imprint::pipeline::watch(probes.take_events().unwrap()).unwrap();

    // Moves into the cgroup; a first round of `sleep` and `true` uses every
    // syscall the shell needs; in the second, after 2 s: the exit of
    // `sleep` and a fork (quiet), then the exec of `false` (an event that
    // wakes), with no other event between.
    let procs = dir.join("cgroup.procs");
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}; exec /bin/sh -c '/bin/sleep 2; /bin/true; /bin/sleep 2; /bin/false; :'",
            procs.display()
        ))
        .spawn()
        .unwrap();

    // The first round (its events woke the reader); read until `true` ran
    // and 1 s passed quietly.
    let mut started = Vec::new();
    let ran_true = |events: &[Event]| {
        events
            .iter()
            .any(|e| matches!(e, Event::Exec { path, .. } if path.ends_with("/true")))
    };
    loop {
        let wait = if ran_true(&started) { 1000 } else { 5000 };
        let Ok(guard) =
            tokio::time::timeout(Duration::from_millis(wait), ring.readable_mut()).await
        else {
            break;
        };
        let mut guard = guard.unwrap();
        started.extend(read_all(guard.get_inner_mut()));
        guard.clear_ready();
    }
    assert!(
        ran_true(&started),
        "the first round was not seen: {started:?}"
    );

    // Now only a wakeup tells the reader; `false` runs within about 1 s.
    let mut after = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), ring.readable_mut()).await {
        Ok(guard) => {
            let mut guard = guard.unwrap();
            after.extend(read_all(guard.get_inner_mut()));
            guard.clear_ready();
        }
        Err(_) => panic!(
            "no wakeup for the exec after quiet events; pending: {:?}",
            read_all(ring.get_mut())
        ),
    }
    // What the same moment sent on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    after.extend(read_all(ring.get_mut()));
    let first_loud = after
        .iter()
        .position(|e| !matches!(e, Event::Lineage { .. }));
    assert!(
        matches!(first_loud, Some(i) if i > 0
            && matches!(&after[i], Event::Exec { path, .. } if path.ends_with("/false"))),
        "quiet events, then the exec of false: {after:?}"
    );
    child.wait().await.unwrap();
    drop(probes);
    let _ = std::fs::remove_dir(&dir);
}
