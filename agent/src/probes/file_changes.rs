//! The table the syscall probe uses to hand file changes to the files probe:
//! one byte per syscall number of the running architecture, built from the
//! syscall names (numbers from the `syscalls` crate), so the C side needs
//! no syscall numbers of its own.

use imprint_probes::events::{MAX_SYSCALLS, change, file_op};

use crate::names::Arch;

/// Syscalls that change files, with the operation and the argument layout.
/// Architectures without a legacy call (aarch64 has no `unlink`) skip it.
const FILE_CHANGES: [(&str, u32, u8); 16] = [
    ("unlink", file_op::UNLINK, change::PATH),
    ("unlinkat", file_op::UNLINK, change::UNLINKAT),
    ("rmdir", file_op::RMDIR, change::PATH),
    ("mkdir", file_op::MKDIR, change::PATH),
    ("mkdirat", file_op::MKDIR, change::DIRFD_PATH),
    ("rename", file_op::RENAME_FROM, change::PATH_PAIR),
    ("renameat", file_op::RENAME_FROM, change::DIRFD_PAIR),
    ("renameat2", file_op::RENAME_FROM, change::DIRFD_PAIR),
    ("chmod", file_op::CHMOD, change::PATH),
    ("fchmod", file_op::CHMOD, change::FD),
    ("fchmodat", file_op::CHMOD, change::DIRFD_PATH),
    ("fchmodat2", file_op::CHMOD, change::DIRFD_PATH),
    ("chown", file_op::CHOWN, change::PATH),
    ("lchown", file_op::CHOWN, change::PATH),
    ("fchown", file_op::CHOWN, change::FD),
    ("fchownat", file_op::CHOWN, change::DIRFD_PATH),
];

/// The table for `arch`.
pub fn table(arch: Arch) -> [u8; MAX_SYSCALLS] {
    let mut table = [0u8; MAX_SYSCALLS];
    for (name, op, layout) in FILE_CHANGES {
        if let Some(nr) = arch
            .syscall_number(name)
            .filter(|nr| (*nr as usize) < MAX_SYSCALLS)
        {
            table[nr as usize] = layout | op as u8;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_sit_at_the_architecture_numbers() {
        let x86 = table(Arch::X86_64);
        assert_eq!(
            x86[87],
            change::PATH | file_op::UNLINK as u8,
            "unlink is 87 on x86_64"
        );
        assert_eq!(
            x86[263],
            change::UNLINKAT | file_op::UNLINK as u8,
            "unlinkat is 263"
        );
        assert_eq!(x86[0], 0, "read changes nothing");
        assert_eq!(x86.iter().filter(|b| **b != 0).count(), 16);
        let arm = table(Arch::Aarch64);
        assert_eq!(
            arm[35],
            change::UNLINKAT | file_op::UNLINK as u8,
            "unlinkat is 35 on aarch64"
        );
        assert_eq!(
            arm.iter().filter(|b| **b != 0).count(),
            9,
            "no legacy calls on aarch64"
        );
    }
}
