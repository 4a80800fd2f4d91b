//! The table the syscall probe uses to hand file changes to the files probe:
//! one byte per syscall number of the running architecture, built from the
//! syscall names (numbers from the `syscalls` crate), so the C side needs
//! no syscall numbers of its own.

use imprint_probes::events::{MAX_SYSCALLS, change, file_op};

use crate::names::Arch;

/// Syscalls that change files, with the operation and the argument layout.
/// Architectures without a legacy call (aarch64 has no `unlink`) skip it.
const FILE_CHANGES: [(&str, u32, u8); 37] = [
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
    ("symlink", file_op::SYMLINK, change::PATH_ARG1),
    ("symlinkat", file_op::SYMLINK, change::DIRFD_ARG1),
    ("link", file_op::LINK, change::PATH_ARG1),
    ("linkat", file_op::LINK, change::DIRFD_ARG2),
    ("mknod", file_op::MKNOD, change::PATH),
    ("mknodat", file_op::MKNOD, change::DIRFD_PATH),
    ("bind", file_op::MKNOD, change::UNIX_BIND),
    ("truncate", file_op::TRUNCATE, change::PATH),
    ("ftruncate", file_op::TRUNCATE, change::FD),
    ("setxattr", file_op::XATTR, change::PATH),
    ("lsetxattr", file_op::XATTR, change::PATH),
    ("fsetxattr", file_op::XATTR, change::FD),
    ("setxattrat", file_op::XATTR, change::DIRFD_PATH),
    ("removexattr", file_op::XATTR, change::PATH),
    ("lremovexattr", file_op::XATTR, change::PATH),
    ("fremovexattr", file_op::XATTR, change::FD),
    ("removexattrat", file_op::XATTR, change::DIRFD_PATH),
    ("utime", file_op::UTIME, change::PATH),
    ("utimes", file_op::UTIME, change::PATH),
    ("futimesat", file_op::UTIME, change::DIRFD_PATH),
    // A null name: the file behind the dirfd itself.
    ("utimensat", file_op::UTIME, change::DIRFD_PATH),
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
        assert_eq!(
            x86[266],
            change::DIRFD_ARG1 | file_op::SYMLINK as u8,
            "symlinkat is 266: its dirfd and name are arguments 1 and 2"
        );
        assert_eq!(
            x86[49],
            change::UNIX_BIND | file_op::MKNOD as u8,
            "bind is 49"
        );
        assert_eq!(x86.iter().filter(|b| **b != 0).count(), 37);
        let arm = table(Arch::Aarch64);
        assert_eq!(
            arm[35],
            change::UNLINKAT | file_op::UNLINK as u8,
            "unlinkat is 35 on aarch64"
        );
        assert_eq!(
            arm.iter().filter(|b| **b != 0).count(),
            24,
            "no legacy calls on aarch64 (unlink, symlink, utimes, ...)"
        );
    }
}
