//! Compares the Rust mirrors with the C structs, through the BTF that clang
//! wrote into the committed object (read with `bpftool btf dump ... format raw`).

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

use super::*;
use crate::OBJECT;

/// A struct as BTF describes it: size and member bit offsets by name.
struct BtfStruct {
    size: usize,
    members: HashMap<String, usize>,
}

fn btf_structs() -> HashMap<String, BtfStruct> {
    let object = concat!(env!("CARGO_MANIFEST_DIR"), "/imprint.bpf.o");
    let output = Command::new("bpftool")
        .args(["btf", "dump", "file", object, "format", "raw"])
        .output()
        .expect("bpftool is needed for the layout test (Debian package bpftool)");
    assert!(output.status.success(), "bpftool failed: {output:?}");
    let text = String::from_utf8(output.stdout).expect("bpftool prints UTF-8");
    let mut structs = HashMap::new();
    let mut current: Option<(String, BtfStruct)> = None;
    for line in text.lines() {
        if !line.starts_with('\t') {
            if let Some((name, s)) = current.take() {
                structs.insert(name, s);
            }
            // [41] STRUCT 'exec_event' size=5432 vlen=13
            let mut words = line.split_whitespace();
            let (_, kind, name, size) = (words.next(), words.next(), words.next(), words.next());
            if kind == Some("STRUCT") {
                let name = name.unwrap_or_default().trim_matches('\'').to_string();
                let size = size
                    .and_then(|s| s.strip_prefix("size="))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                current = Some((
                    name,
                    BtfStruct {
                        size,
                        members: HashMap::new(),
                    },
                ));
            }
        } else if let Some((_, s)) = current.as_mut() {
            // 	'ppid' type_id=13 bits_offset=192
            let mut words = line.split_whitespace();
            let name = words
                .next()
                .unwrap_or_default()
                .trim_matches('\'')
                .to_string();
            if let Some(bits) = words.find_map(|w| w.strip_prefix("bits_offset=")) {
                s.members.insert(name, bits.parse().unwrap_or(usize::MAX));
            }
        }
    }
    if let Some((name, s)) = current.take() {
        structs.insert(name, s);
    }
    structs
}

macro_rules! check {
    ($structs:expr, $c_name:literal, $ty:ty, [$($field:ident),* $(,)?]) => {{
        let s = $structs
            .get($c_name)
            .unwrap_or_else(|| panic!("struct {} is not in the object's BTF", $c_name));
        assert_eq!(s.size, size_of::<$ty>(), "size of {}", $c_name);
        $(
            let bits = s.members.get(stringify!($field)).unwrap_or_else(|| {
                panic!("{}.{} is not in the object's BTF", $c_name, stringify!($field))
            });
            assert_eq!(*bits, offset_of!($ty, $field) * 8, "offset of {}.{}", $c_name, stringify!($field));
        )*
        assert_eq!(s.members.len(), [$(stringify!($field)),*].len(), "member count of {}", $c_name);
    }};
}

#[test]
fn rust_mirrors_match_the_c_structs() {
    let structs = btf_structs();
    check!(
        structs,
        "event_header",
        EventHeader,
        [kind, pid, cgroup_id, timestamp_ns]
    );
    check!(structs, "syscall_event", SyscallEvent, [header, nr, _pad]);
    check!(structs, "arg_event", ArgEvent, [header, nr, flags, value]);
    check!(structs, "arg_key", ArgKey, [cgroup_id, nr, value]);
    check!(
        structs,
        "exec_event",
        ExecEvent,
        [
            header,
            cap_bset,
            cap_gained,
            key_hash,
            ppid,
            uid,
            euid,
            gid,
            egid,
            file_mode,
            path_len,
            args_len,
            path_flags,
            args_truncated,
            exec_flags,
            _pad,
            data
        ]
    );
    check!(
        structs,
        "process_info",
        ProcessInfo,
        [key_hash, cgroup_id, ppid, uid, gid, _pad]
    );
    check!(structs, "exec_key", ExecKey, [cgroup_id, key_hash]);
    check!(
        structs,
        "file_event",
        FileEvent,
        [
            header, op, access, open_flags, dir_len, name_len, path_flags, _pad, data
        ]
    );
    check!(
        structs,
        "net_event",
        NetEvent,
        [
            header,
            kind,
            family,
            protocol,
            _pad,
            local_port,
            remote_port,
            local_addr,
            remote_addr
        ]
    );
    check!(
        structs,
        "cap_event",
        CapEvent,
        [header, cap, ret, audit, _pad]
    );
    check!(
        structs,
        "cgroup_event",
        CgroupEvent,
        [header, parent_id, path]
    );
    check!(
        structs,
        "drop_counts",
        DropCounts,
        [ringbuf, map_full, truncated, read_fails]
    );
    check!(structs, "counters", Counters, [values]);
    check!(
        structs,
        "cgroup_state",
        CgroupState,
        [
            syscalls,
            flags,
            _pad,
            arg_values,
            arg_last,
            arg_last_set,
            _pad2
        ]
    );
}

#[test]
fn embedded_object_is_an_aligned_bpf_elf() {
    assert_eq!(&OBJECT[..4], b"\x7fELF");
    assert_eq!(OBJECT.as_ptr() as usize % 8, 0);
    // e_machine of EM_BPF (247), little endian.
    assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247);
}
