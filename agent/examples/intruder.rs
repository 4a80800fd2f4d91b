//! Harmless versions of what intruders do in containers, for the tests of
//! imprint's detection rules. Each argument is one step, run in order:
//!
//! - `reverse-shell:PORT` / `socket-stdio:PORT`: connect to 127.0.0.1:PORT
//!   and run `/bin/sh -c 'exit 0'` / `/bin/true` with the socket as
//!   standard input and output
//! - `memfd-exec`: copy `/bin/true` into a memfd and execute it from there
//! - `finit-module`: call finit_module on an invalid fd (refused)
//! - `pty-shell`: run `/bin/sh -c 'exit 0'` with a pseudo-terminal as its
//!   controlling terminal
//! - `ptrace`: attach to a child (`/bin/sleep`), detach, end it
//! - `unshare`: move into a new UTS namespace
//! - `bpf`: call bpf() with an empty attribute (refused)
//! - `copy-exec:SRC:DST`: copy SRC to DST (mode 755) and run DST
//! - `try-tcp:ADDR:PORT`: connect, whether or not anything listens

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    for step in std::env::args().skip(1) {
        if let Err(error) = run(&step) {
            eprintln!("intruder: {step}: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn run(step: &str) -> std::io::Result<()> {
    let mut parts = step.split(':');
    let verb = parts.next().unwrap_or_default();
    let args: Vec<&str> = parts.collect();
    let arg = |i: usize| args.get(i).copied().unwrap_or_default();
    match verb {
        "reverse-shell" | "socket-stdio" => {
            let port: u16 = arg(0).parse().map_err(std::io::Error::other)?;
            let socket = TcpStream::connect(("127.0.0.1", port))?;
            let input = OwnedFd::from(socket.try_clone()?);
            let output = OwnedFd::from(socket);
            let mut command = if verb == "reverse-shell" {
                let mut c = Command::new("/bin/sh");
                c.args(["-c", "exit 0"]);
                c
            } else {
                Command::new("/bin/true")
            };
            succeed(
                command
                    .stdin(Stdio::from(input))
                    .stdout(Stdio::from(output)),
            )
        }
        "memfd-exec" => {
            let name = std::ffi::CString::new("imprint-test").unwrap();
            // SAFETY: memfd_create with a NUL-terminated name; the fd is owned below.
            let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: a fresh fd we own.
            let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            file.write_all(&std::fs::read("/bin/true")?)?;
            succeed(&mut Command::new(format!(
                "/proc/self/fd/{}",
                file.as_raw_fd()
            )))
        }
        "finit-module" => {
            let empty = std::ffi::CString::new("").unwrap();
            // SAFETY: an invalid fd: the kernel refuses before loading anything.
            let r = unsafe { libc::syscall(libc::SYS_finit_module, -1, empty.as_ptr(), 0) };
            refused(r)
        }
        "pty-shell" => pty_shell(),
        "ptrace" => {
            let mut child = Command::new("/bin/sleep").arg("5").spawn()?;
            let pid = child.id() as libc::pid_t;
            // SAFETY: attaching to, waiting for and detaching from our own child.
            unsafe {
                if libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut status = 0;
                libc::waitpid(pid, &mut status, libc::__WALL);
                libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
            }
            child.kill()?;
            child.wait().map(drop)
        }
        "unshare" => {
            // SAFETY: unshare(2) of the UTS namespace of this process only.
            if unsafe { libc::unshare(libc::CLONE_NEWUTS) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
        "bpf" => {
            // SAFETY: a null attribute of size 0: the kernel refuses.
            let r = unsafe { libc::syscall(libc::SYS_bpf, 0, std::ptr::null::<u8>(), 0) };
            refused(r)
        }
        "copy-exec" => {
            std::fs::copy(arg(0), arg(1))?;
            std::fs::set_permissions(arg(1), std::fs::Permissions::from_mode(0o755))?;
            succeed(&mut Command::new(arg(1)))
        }
        "try-tcp" => {
            let port: u16 = arg(1).parse().map_err(std::io::Error::other)?;
            let _ = TcpStream::connect((arg(0), port));
            Ok(())
        }
        other => Err(std::io::Error::other(format!("unknown step {other}"))),
    }
}

/// Runs a command and requires it to succeed.
fn succeed(command: &mut Command) -> std::io::Result<()> {
    let status = command.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("child: {status}")))
    }
}

/// Requires a syscall to have been refused.
fn refused(r: libc::c_long) -> std::io::Result<()> {
    if r == -1 {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "expected a refusal, got {r}"
        )))
    }
}

/// A shell whose controlling terminal is a fresh pseudo-terminal.
fn pty_shell() -> std::io::Result<()> {
    // SAFETY: posix_openpt and friends on the fd they return; ptsname's
    // buffer is copied before anything else runs in this thread.
    let (master, slave) = unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        if master < 0 || libc::grantpt(master) < 0 || libc::unlockpt(master) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let name = libc::ptsname(master);
        if name.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        (
            OwnedFd::from_raw_fd(master),
            std::ffi::CStr::from_ptr(name).to_owned(),
        )
    };
    let mut command = Command::new("/bin/sh");
    command.args(["-c", "exit 0"]);
    // SAFETY: between fork and exec only async-signal-safe calls: setsid,
    // open (the first terminal a session leader opens becomes its
    // controlling terminal), dup2, close.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(slave.as_ptr(), libc::O_RDWR);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for target in 0..3 {
                libc::dup2(fd, target);
            }
            if fd > 2 {
                libc::close(fd);
            }
            Ok(())
        });
    }
    let result = succeed(&mut command);
    drop(master);
    result
}
