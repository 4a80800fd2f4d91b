//! The syscalls whose integer arguments the syscall probe records, and how
//! a recorded value reads as arguments: the table the probe gets (one byte
//! per syscall number of the running architecture, from the syscall names
//! of the `syscalls` crate) and the decoding of its values.
//!
//! Only plain integers: a seccomp filter cannot look at memory a pointer
//! argument points to (and a check of it would race with the caller).

use imprint_crd::report::ArgumentValue;
use imprint_probes::events::{MAX_SYSCALLS, arg};

use crate::names::Arch;

/// The bits of an `int` argument: the kernel reads the low 32.
const INT_BITS: u64 = 0xffff_ffff;
/// socket's type without SOCK_NONBLOCK and SOCK_CLOEXEC.
const SOCKET_TYPE_BITS: u64 = INT_BITS & !0x80800;

/// Syscalls whose arguments are recorded, each with the value the probe
/// takes ([`arg`]); the position is the syscall's slot.
pub const RECORDED: [(&str, u8); 10] = [
    ("socket", arg::SOCKET),
    ("socketpair", arg::SOCKET),
    ("clone", arg::CLONE),
    ("unshare", arg::FIRST),
    ("personality", arg::FIRST),
    ("prctl", arg::FIRST),
    ("ioctl", arg::SECOND),
    // Whether memory is mapped writable and executable at once (W^X, as
    // systemd's MemoryDenyWriteExecute): only a JIT or a library asking
    // for an executable stack does.
    ("mmap", arg::PROT),
    ("mprotect", arg::PROT),
    ("pkey_mprotect", arg::PROT),
];

/// The table for `arch`.
pub fn table(arch: Arch) -> [u8; MAX_SYSCALLS] {
    let mut table = [0u8; MAX_SYSCALLS];
    for (slot, (name, kind)) in RECORDED.iter().enumerate() {
        if let Some(nr) = arch
            .syscall_number(name)
            .filter(|nr| (*nr as usize) < MAX_SYSCALLS)
        {
            table[nr as usize] = kind | ((slot as u8) << arg::SLOT_SHIFT);
        }
    }
    table
}

/// A value the probe sent for syscall `name`, as the arguments it stands
/// for (`None`: not a recorded syscall).
pub fn decode(name: &str, value: u64) -> Option<Vec<ArgumentValue>> {
    let (_, kind) = RECORDED.iter().find(|(n, _)| *n == name)?;
    let masked = |index, value: u64, mask: u64| ArgumentValue {
        index,
        value: value & mask,
        mask: Some(mask),
    };
    Some(match *kind {
        arg::SOCKET => vec![
            masked(0, value & 0xffff, INT_BITS),
            masked(1, (value >> 16) & 0xffff, SOCKET_TYPE_BITS),
            masked(2, value >> 32, INT_BITS),
        ],
        arg::CLONE => vec![masked(0, value, arg::CLONE_NAMESPACE_BITS)],
        arg::SECOND => vec![masked(1, value, INT_BITS)],
        arg::PROT => vec![masked(2, value, arg::PROT_WRITE_EXEC)],
        // personality's argument is an unsigned long, compared whole.
        _ if name == "personality" => vec![ArgumentValue {
            index: 0,
            value,
            mask: None,
        }],
        _ => vec![masked(0, value, INT_BITS)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_sit_at_the_architecture_numbers_with_their_slots() {
        let x86 = table(Arch::X86_64);
        assert_eq!(x86[41], arg::SOCKET, "socket is 41 on x86_64, slot 0");
        assert_eq!(x86[56], arg::CLONE | (2 << arg::SLOT_SHIFT), "clone is 56");
        assert_eq!(x86[16], arg::SECOND | (6 << arg::SLOT_SHIFT), "ioctl is 16");
        assert_eq!(
            x86[10],
            arg::PROT | (8 << arg::SLOT_SHIFT),
            "mprotect is 10"
        );
        assert_eq!(x86.iter().filter(|e| **e != 0).count(), RECORDED.len());
        assert!(RECORDED.len() <= arg::SLOTS);
    }

    #[test]
    fn values_read_as_the_arguments_they_stand_for() {
        // AF_NETLINK (16), SOCK_RAW (3), NETLINK_AUDIT (9).
        let socket = decode("socket", 16 | (3 << 16) | (9 << 32)).unwrap();
        assert_eq!(
            socket
                .iter()
                .map(|a| (a.index, a.value))
                .collect::<Vec<_>>(),
            [(0, 16), (1, 3), (2, 9)]
        );
        assert_eq!(socket[1].mask, Some(0xfff7_f7ff));
        let clone = decode("clone", 0x1000_0000).unwrap();
        assert_eq!(
            (clone[0].value, clone[0].mask),
            (0x1000_0000, Some(0x7e02_0000))
        );
        let ioctl = decode("ioctl", 0x5401).unwrap();
        assert_eq!((ioctl[0].index, ioctl[0].value), (1, 0x5401));
        assert_eq!(decode("personality", 0xffff_ffff).unwrap()[0].mask, None);
        // PROT_WRITE | PROT_EXEC of mprotect's third argument.
        let mprotect = decode("mprotect", 6).unwrap();
        assert_eq!(
            (mprotect[0].index, mprotect[0].value, mprotect[0].mask),
            (2, 6, Some(6))
        );
        assert_eq!(decode("read", 0), None);
    }
}
