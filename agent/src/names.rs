//! Names of syscalls and capabilities, from the `syscalls` and `caps` crates.

use std::str::FromStr;

/// An architecture imprint knows syscall tables for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// x86-64.
    X86_64,
    /// 64-bit ARM.
    Aarch64,
}

impl Arch {
    /// The architecture imprint runs on.
    pub fn native() -> Option<Arch> {
        Arch::from_kernel_name(std::env::consts::ARCH)
    }

    /// From the kernel's / Rust's name (`x86_64`, `aarch64`).
    pub fn from_kernel_name(name: &str) -> Option<Arch> {
        match name {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// The kernel's name.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The seccomp (libseccomp, OCI, SPO) name.
    pub fn seccomp_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
        }
    }

    /// Name of syscall `nr`.
    pub fn syscall_name(self, nr: u32) -> Option<&'static str> {
        let nr = usize::try_from(nr).ok()?;
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::new(nr).map(|s| s.name()),
            Arch::Aarch64 => syscalls::aarch64::Sysno::new(nr).map(|s| s.name()),
        }
    }

    /// Number of syscall `name`.
    pub fn syscall_number(self, name: &str) -> Option<u32> {
        let nr = match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok()?.id(),
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name).ok()?.id(),
        };
        u32::try_from(nr).ok()
    }

    /// Whether `name` is a syscall of this architecture.
    pub fn has_syscall(self, name: &str) -> bool {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).is_ok(),
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name).is_ok(),
        }
    }
}

/// `CAP_*` name of capability number `n`.
pub fn capability_name(n: u32) -> Option<String> {
    caps::all()
        .into_iter()
        .find(|c| u32::from(c.index()) == n)
        .map(|c| c.to_string())
}

/// Whether `name` (with or without `CAP_`) is a capability.
pub fn capability_from_name(name: &str) -> Option<caps::Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    caps::Capability::from_str(&full).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_names_per_architecture() {
        assert_eq!(Arch::X86_64.syscall_name(0), Some("read"));
        assert_eq!(Arch::X86_64.syscall_name(110), Some("getppid"));
        assert_eq!(Arch::Aarch64.syscall_name(173), Some("getppid"));
        assert_eq!(Arch::X86_64.syscall_name(100_000), None);
        assert!(Arch::X86_64.has_syscall("openat"));
        assert!(!Arch::Aarch64.has_syscall("open"));
        assert!(!Arch::X86_64.has_syscall("no_such_call"));
    }

    #[test]
    fn capability_names() {
        assert_eq!(capability_name(0).as_deref(), Some("CAP_CHOWN"));
        assert_eq!(capability_name(21).as_deref(), Some("CAP_SYS_ADMIN"));
        assert_eq!(capability_name(999), None);
        assert_eq!(
            capability_from_name("net_bind_service"),
            Some(caps::Capability::CAP_NET_BIND_SERVICE)
        );
        assert_eq!(capability_from_name("CAP_NOPE"), None);
    }
}
