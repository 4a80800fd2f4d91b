//! Decoding ring-buffer records into typed events, with every length
//! checked: a short or unknown record is an error, never a panic.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use imprint_probes::events::{
    ARGS_BUF, ArgEvent, CapEvent, CgroupEvent, EventHeader, ExecEvent, FileEvent, NetEvent,
    RAW_NAME_OFFSET, SyscallEvent, arg, cap_audit, exec_flags, file_op, kind, path_flags,
};

/// A record that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its kind requires.
    #[error("event of kind {kind} is {len} bytes, needs {needed}")]
    Short {
        /// Event kind.
        kind: u32,
        /// Bytes received.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// An unknown kind.
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
}

/// Who executed a program: its parent, credentials and stdio traits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecProcess {
    /// Parent's process id.
    pub ppid: u32,
    /// Real uid after the exec.
    pub uid: u32,
    /// Real gid after the exec.
    pub gid: u32,
    /// [`exec_flags`] (a terminal, socket stdio).
    pub traits: u32,
}

impl ExecProcess {
    /// The process has a controlling terminal.
    pub fn has_terminal(&self) -> bool {
        self.traits & exec_flags::TTY != 0
    }

    /// Its standard input or output is a socket.
    pub fn stdio_is_socket(&self) -> bool {
        self.traits & (exec_flags::STDIN_SOCKET | exec_flags::STDOUT_SOCKET) != 0
    }
}

/// A decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// First use of a syscall number in a cgroup.
    Syscall {
        /// Header.
        header: EventHeader,
        /// Syscall number.
        nr: u32,
    },
    /// An argument value of a recorded syscall, new in the cgroup.
    SyscallArg {
        /// Header.
        header: EventHeader,
        /// Syscall number.
        nr: u32,
        /// The value, as the probe took it ([`crate::probes::arguments`]).
        value: u64,
        /// The syscall had more distinct values than are sent (this one is
        /// the first left out).
        overflow: bool,
    },
    /// A program executed.
    Exec {
        /// Header.
        header: EventHeader,
        /// Absolute path of the executed file.
        path: String,
        /// argv.
        args: Vec<String>,
        /// Effective uid after exec.
        euid: u32,
        /// File mode bits.
        file_mode: u32,
        /// Capability bounding set after the exec.
        cap_bset: u64,
        /// Capabilities gained from the file's capabilities.
        cap_gained: u64,
        /// What makes the exec distinct in its cgroup, hashed in the kernel:
        /// its repeats are counted under this key, not sent.
        key_hash: u64,
        /// Path or args were cut.
        truncated: bool,
        /// The process that executed, as the process table needs it.
        process: ExecProcess,
    },
    /// A file opened or changed.
    File {
        /// Header.
        header: EventHeader,
        /// One of [`file_op`].
        op: u32,
        /// Access bits of an open.
        access: u32,
        /// Absolute path (lexically normalised for mutations).
        path: String,
        /// The kernel cut the path.
        truncated: bool,
    },
    /// A network endpoint used.
    Net {
        /// Header.
        header: EventHeader,
        /// One of `net_kind`.
        kind: u8,
        /// IP protocol number.
        protocol: u8,
        /// Local end.
        local: (IpAddr, u16),
        /// Remote end.
        remote: (IpAddr, u16),
    },
    /// A capability check.
    Cap {
        /// Header.
        header: EventHeader,
        /// Capability number.
        cap: u32,
        /// Granted.
        granted: bool,
        /// One of [`cap_audit`].
        audit: u32,
    },
    /// A cgroup made below a recorded one.
    CgroupMade {
        /// Header (its cgroup id is the new cgroup).
        header: EventHeader,
        /// Parent's id.
        parent_id: u64,
        /// Path in the unified hierarchy.
        path: String,
    },
    /// A recorded cgroup removed.
    CgroupRemoved {
        /// Header.
        header: EventHeader,
        /// Path in the unified hierarchy.
        path: String,
    },
}

impl Event {
    /// The header common to all events.
    pub fn header(&self) -> &EventHeader {
        match self {
            Event::Syscall { header, .. }
            | Event::SyscallArg { header, .. }
            | Event::Exec { header, .. }
            | Event::File { header, .. }
            | Event::Net { header, .. }
            | Event::Cap { header, .. }
            | Event::CgroupMade { header, .. }
            | Event::CgroupRemoved { header, .. } => header,
        }
    }

    /// Short name of the event's kind, as metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Syscall { .. } => "syscall",
            Event::SyscallArg { .. } => "syscall_arg",
            Event::Exec { .. } => "exec",
            Event::File { .. } => "file",
            Event::Net { .. } => "network",
            Event::Cap { .. } => "capability",
            Event::CgroupMade { .. } => "cgroup_made",
            Event::CgroupRemoved { .. } => "cgroup_removed",
        }
    }
}

/// Copies a `T` out of the front of `bytes` after checking the length.
fn read<T: Copy>(bytes: &[u8], kind: u32, needed: usize) -> Result<T, DecodeError> {
    if bytes.len() < needed {
        return Err(DecodeError::Short {
            kind,
            len: bytes.len(),
            needed,
        });
    }
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let n = bytes.len().min(size_of::<T>());
    // SAFETY: T is a plain #[repr(C)] struct of integers and byte arrays, for
    // which all bit patterns (including zero for the part not copied) are valid.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), value.as_mut_ptr().cast::<u8>(), n);
        Ok(value.assume_init())
    }
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: EventHeader = read(bytes, 0, size_of::<EventHeader>())?;
    match header.kind {
        kind::SYSCALL => {
            let e: SyscallEvent = read(bytes, header.kind, size_of::<SyscallEvent>())?;
            Ok(Event::Syscall { header, nr: e.nr })
        }
        kind::SYSCALL_ARG => {
            let e: ArgEvent = read(bytes, header.kind, size_of::<ArgEvent>())?;
            Ok(Event::SyscallArg {
                header,
                nr: e.nr,
                value: e.value,
                overflow: e.flags & arg::OVERFLOW != 0,
            })
        }
        kind::EXEC => {
            let fixed = offset_of!(ExecEvent, data);
            let partial: ExecEvent = read(bytes, header.kind, fixed)?;
            let args_len = usize::from(partial.args_len).min(ARGS_BUF);
            let path_len = usize::from(partial.path_len);
            let e: ExecEvent = read(bytes, header.kind, fixed + args_len + path_len)?;
            let path_end = (args_len + path_len).min(e.data.len());
            let path = join_components(&e.data[args_len..path_end]);
            let args = e.data[..args_len]
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Ok(Event::Exec {
                header,
                path,
                args,
                euid: e.euid,
                file_mode: e.file_mode,
                cap_bset: e.cap_bset,
                cap_gained: e.cap_gained,
                key_hash: e.key_hash,
                truncated: e.path_flags & path_flags::TRUNCATED != 0 || e.args_truncated != 0,
                process: ExecProcess {
                    ppid: e.ppid,
                    uid: e.uid,
                    gid: e.gid,
                    traits: e.exec_flags,
                },
            })
        }
        kind::FILE => {
            let fixed = offset_of!(FileEvent, data);
            let partial: FileEvent = read(bytes, header.kind, fixed)?;
            let dir_len = usize::from(partial.dir_len);
            let name_len = usize::from(partial.name_len);
            let needed = if name_len > 0 {
                fixed + RAW_NAME_OFFSET + name_len
            } else {
                fixed + dir_len
            };
            let e: FileEvent = read(bytes, header.kind, needed)?;
            let dir = join_components(&e.data[..dir_len.min(e.data.len())]);
            let name = (name_len > 0).then(|| {
                let end = (RAW_NAME_OFFSET + name_len).min(e.data.len());
                String::from_utf8_lossy(&e.data[RAW_NAME_OFFSET..end]).into_owned()
            });
            let path = match (e.op, name) {
                (file_op::OPEN, _) | (_, None) => dir,
                (_, Some(name)) if name.starts_with('/') => normalize_lexically(&name),
                (_, Some(name)) => normalize_lexically(&format!("{dir}/{name}")),
            };
            Ok(Event::File {
                header,
                op: e.op,
                access: e.access,
                path,
                truncated: e.path_flags & path_flags::TRUNCATED != 0,
            })
        }
        kind::NET => {
            let e: NetEvent = read(bytes, header.kind, size_of::<NetEvent>())?;
            let v6 = e.family == 10;
            Ok(Event::Net {
                header,
                kind: e.kind,
                protocol: e.protocol,
                local: (address(&e.local_addr, v6), u16::from_be(e.local_port)),
                remote: (address(&e.remote_addr, v6), u16::from_be(e.remote_port)),
            })
        }
        kind::CAP => {
            let e: CapEvent = read(bytes, header.kind, size_of::<CapEvent>())?;
            Ok(Event::Cap {
                header,
                cap: e.cap.max(0) as u32,
                granted: e.ret == 0,
                audit: e.audit,
            })
        }
        kind::CGROUP_MKDIR | kind::CGROUP_RMDIR => {
            let e: CgroupEvent = read(bytes, header.kind, size_of::<CgroupEvent>())?;
            let end = e.path.iter().position(|b| *b == 0).unwrap_or(e.path.len());
            let path = String::from_utf8_lossy(&e.path[..end]).into_owned();
            Ok(if header.kind == kind::CGROUP_MKDIR {
                Event::CgroupMade {
                    header,
                    parent_id: e.parent_id,
                    path,
                }
            } else {
                Event::CgroupRemoved { header, path }
            })
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// Joins leaf-first, NUL-ended components into an absolute path.
pub fn join_components(bytes: &[u8]) -> String {
    let parts: Vec<_> = bytes
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty() && *p != b"/")
        .collect();
    if parts.is_empty() {
        return "/".into();
    }
    let mut path = String::new();
    for part in parts.iter().rev() {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(part));
    }
    path
}

/// Resolves `.` and `..` and repeated separators without touching the file
/// system (the path is the process's view, possibly in another mount namespace).
pub fn normalize_lexically(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

fn address(bytes: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        let addr = Ipv6Addr::from(*bytes);
        match addr.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(addr),
        }
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    }
}

/// Whether an audit class makes a granted check count as needed. An
/// unknown class counts: a profile must not break its workload.
pub fn counts_as_needed(granted: bool, audit: u32) -> bool {
    granted && audit != cap_audit::NOAUDIT
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_probes::events::net_kind;

    fn bytes_of<T>(value: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain #[repr(C)] value.
        unsafe {
            std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()).to_vec()
        }
    }

    fn header(kind: u32) -> EventHeader {
        EventHeader {
            kind,
            pid: 7,
            cgroup_id: 42,
            timestamp_ns: 1,
        }
    }

    #[test]
    fn components_join_root_first() {
        assert_eq!(join_components(b"passwd\0etc\0"), "/etc/passwd");
        assert_eq!(join_components(b""), "/");
        assert_eq!(join_components(b"/\0"), "/");
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(normalize_lexically("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(normalize_lexically("/../x"), "/x");
    }

    #[test]
    fn decodes_a_syscall_event() {
        let e = SyscallEvent {
            header: header(kind::SYSCALL),
            nr: 39,
            _pad: 0,
        };
        assert_eq!(
            decode(&bytes_of(&e)).unwrap(),
            Event::Syscall {
                header: header(kind::SYSCALL),
                nr: 39
            }
        );
    }

    #[test]
    fn decodes_a_short_exec_with_its_argv_before_its_path() {
        let mut e = ExecEvent {
            header: header(kind::EXEC),
            cap_bset: 1,
            cap_gained: 0,
            key_hash: 99,
            ppid: 1,
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            file_mode: 0o755,
            exec_flags: 0,
            _pad: 0,
            path_len: 7,
            args_len: 6,
            path_flags: 0,
            args_truncated: 0,
            data: [0; ARGS_BUF
                + imprint_probes::events::PATH_BUF
                + imprint_probes::events::NAME_BUF],
        };
        e.data[..13].copy_from_slice(b"ls\0-l\0ls\0bin\0");
        let fixed = offset_of!(ExecEvent, data);
        let sent = &bytes_of(&e)[..fixed + 13];
        match decode(sent).unwrap() {
            Event::Exec {
                path,
                args,
                key_hash,
                ..
            } => {
                assert_eq!(path, "/bin/ls");
                assert_eq!(args, ["ls", "-l"]);
                assert_eq!(key_hash, 99);
            }
            other => panic!("{other:?}"),
        }
        // One byte short of what its lengths say: an error, not a panic.
        assert!(matches!(
            decode(&sent[..sent.len() - 1]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn decodes_a_short_open_and_a_relative_mutation() {
        let mut e = FileEvent {
            header: header(kind::FILE),
            op: file_op::OPEN,
            access: 3,
            open_flags: 0,
            dir_len: 11,
            name_len: 0,
            path_flags: 0,
            _pad: [0; 3],
            data: [0; imprint_probes::events::PATH_BUF + 512],
        };
        e.data[..11].copy_from_slice(b"passwd\0etc\0");
        let bytes = bytes_of(&e);
        let short = &bytes[..offset_of!(FileEvent, data) + 11];
        match decode(short).unwrap() {
            Event::File { path, access, .. } => {
                assert_eq!((path.as_str(), access), ("/etc/passwd", 3))
            }
            other => panic!("{other:?}"),
        }
        e.op = file_op::UNLINK;
        e.data[..8].copy_from_slice(b"tmp\0\0\0\0\0");
        e.dir_len = 4;
        e.name_len = 8;
        e.data[RAW_NAME_OFFSET..RAW_NAME_OFFSET + 9].copy_from_slice(b"../x/./y\0");
        match decode(&bytes_of(&e)).unwrap() {
            Event::File { path, op, .. } => {
                assert_eq!((path.as_str(), op), ("/x/y", file_op::UNLINK))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(decode(&[1, 0, 0]), Err(DecodeError::Short { .. })));
        let e = SyscallEvent {
            header: header(kind::SYSCALL),
            nr: 1,
            _pad: 0,
        };
        assert!(matches!(
            decode(&bytes_of(&e)[..26]),
            Err(DecodeError::Short { kind: 1, .. })
        ));
        assert_eq!(
            decode(&bytes_of(&header(99))),
            Err(DecodeError::UnknownKind(99))
        );
    }

    #[test]
    fn decodes_ipv4_mapped_and_ports() {
        let mut e = NetEvent {
            header: header(kind::NET),
            kind: net_kind::CONNECT,
            family: 10,
            protocol: 6,
            _pad: 0,
            local_port: 0,
            remote_port: 8080u16.to_be(),
            local_addr: [0; 16],
            remote_addr: [0; 16],
        };
        e.remote_addr[10] = 0xff;
        e.remote_addr[11] = 0xff;
        e.remote_addr[12..].copy_from_slice(&[127, 0, 0, 1]);
        match decode(&bytes_of(&e)).unwrap() {
            Event::Net { remote, .. } => assert_eq!(remote, ("127.0.0.1".parse().unwrap(), 8080)),
            other => panic!("{other:?}"),
        }
    }
}
