//! A workload with known behavior, for imprint's integration tests and
//! benchmarks. Each argument is one step, run in order:
//!
//! - `rare`: the `personality` syscall (query only), which few programs make
//! - `write:PATH` / `read:PATH`: open for writing (create, truncate) / reading
//! - `chdir:DIR`, `mkdir:PATH`, `sleep:MS`
//! - `exec:PROG[:ARG...]`: run a child and wait for it
//! - `tcp:ADDR:PORT` / `udp:ADDR:PORT`: connect and send one byte
//! - `serve`: listen on a loopback port, connect to it and accept
//! - `listen:ADDR:PORT`: listen on ADDR:PORT, then close
//! - `chown:PATH:UID`: change the owner (needs CAP_CHOWN)
//! - `deny-time`: drop CAP_SYS_TIME from the effective set, then try to set
//!   the clock, which the kernel refuses (nothing is changed)
//! - `handle-usr1`: install a SIGUSR1 handler (it prints `SIGUSR1` when
//!   the signal arrives, before the next step)
//! - `symlink:TARGET:LINK`, `link:OLD:NEW`, `mkfifo:PATH`,
//!   `truncate:PATH`, `setxattr:PATH`, `utime:PATH`, `bind-unix:PATH`: one
//!   file change each (`setxattr` sets `user.imprint`; `bind-unix` binds a
//!   unix stream socket at PATH)
//! - `getppid:N`: N getppid() calls; `open-loop:PATH:N`: N open/close of PATH
//!   (benchmark loops, timed and printed as ns per iteration)
//! - `socket:FAMILY:TYPE[:PROTOCOL]`: open and close a socket (type with
//!   SOCK_CLOEXEC added, protocol 0 by default), numbers as in <sys/socket.h>
//! - `unshare:FLAGS`: one call; `prctl:OPTION` (no further arguments): one
//!   call, its result ignored (numbers in decimal or 0x hex)
//! - `fork`: fork a child that exits at once, and wait for it
//! - `ioctl:FIRST:N`: N ioctl calls on /dev/null with the requests FIRST,
//!   FIRST+1, ... (refused with ENOTTY)
//! - `mmap:PROT`: map one anonymous page with protection PROT (as in
//!   <sys/mman.h>: 1 read, 2 write, 4 exec), then unmap it;
//!   `mprotect:PROT`: map one read-write page, change it to PROT, unmap it
//! - `thread[:MS]`: start a thread (which sleeps MS ms, if given) and join it
//! - `say:TEXT`: write TEXT to standard error

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Set by the SIGUSR1 handler.
static GOT_USR1: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn main() -> ExitCode {
    for step in std::env::args().skip(1) {
        if GOT_USR1.swap(false, std::sync::atomic::Ordering::SeqCst) {
            println!("SIGUSR1");
        }
        if let Err(error) = run(&step) {
            eprintln!("fixture: {step}: {error}");
            return ExitCode::FAILURE;
        }
    }
    if GOT_USR1.load(std::sync::atomic::Ordering::SeqCst) {
        println!("SIGUSR1");
    }
    ExitCode::SUCCESS
}

fn run(step: &str) -> std::io::Result<()> {
    let mut parts = step.split(':');
    let verb = parts.next().unwrap_or_default();
    let args: Vec<&str> = parts.collect();
    let arg = |i: usize| args.get(i).copied().unwrap_or_default();
    match verb {
        "handle-usr1" => {
            extern "C" fn handler(_: libc::c_int) {
                GOT_USR1.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            // SAFETY: installs a handler that only stores to an atomic.
            let previous =
                unsafe { libc::signal(libc::SIGUSR1, handler as *const () as libc::sighandler_t) };
            if previous == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
        "symlink" => std::os::unix::fs::symlink(arg(0), arg(1)),
        "link" => std::fs::hard_link(arg(0), arg(1)),
        "mkfifo" => {
            let path = std::ffi::CString::new(arg(0))?;
            // SAFETY: a NUL-terminated path.
            check(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }.into())
        }
        "truncate" => {
            let path = std::ffi::CString::new(arg(0))?;
            // SAFETY: a NUL-terminated path.
            check(unsafe { libc::truncate(path.as_ptr(), 0) }.into())
        }
        "setxattr" => {
            let path = std::ffi::CString::new(arg(0))?;
            // SAFETY: NUL-terminated name and path, a 1-byte value.
            check(
                unsafe {
                    libc::setxattr(
                        path.as_ptr(),
                        c"user.imprint".as_ptr(),
                        b"1".as_ptr().cast(),
                        1,
                        0,
                    )
                }
                .into(),
            )
        }
        "utime" => {
            let path = std::ffi::CString::new(arg(0))?;
            // SAFETY: a NUL-terminated path; null times mean now.
            check(unsafe { libc::utimes(path.as_ptr(), std::ptr::null()) }.into())
        }
        "bind-unix" => std::os::unix::net::UnixListener::bind(arg(0)).map(drop),
        "socket" => {
            // SAFETY: plain integers; the descriptor is closed at once.
            let fd = unsafe {
                libc::socket(
                    number(arg(0))? as libc::c_int,
                    number(arg(1))? as libc::c_int | libc::SOCK_CLOEXEC,
                    if arg(2).is_empty() {
                        0
                    } else {
                        number(arg(2))? as libc::c_int
                    },
                )
            };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: our own descriptor.
            unsafe { libc::close(fd) };
            Ok(())
        }
        "unshare" => {
            // SAFETY: plain integer flags.
            check(unsafe { libc::unshare(number(arg(0))? as libc::c_int) }.into())
        }
        "fork" => {
            // SAFETY: the child only exits.
            match unsafe { libc::fork() } {
                -1 => Err(std::io::Error::last_os_error()),
                0 => {
                    // SAFETY: the child ends at once, touching nothing.
                    unsafe { libc::_exit(0) }
                }
                child => {
                    let mut status = 0;
                    // SAFETY: waits for our own child.
                    unsafe { libc::waitpid(child, &mut status, 0) };
                    Ok(())
                }
            }
        }
        "prctl" => {
            // SAFETY: an option that takes no pointer (the caller's choice).
            unsafe { libc::prctl(number(arg(0))? as libc::c_int, 0, 0, 0, 0) };
            Ok(())
        }
        "ioctl" => {
            let null = std::fs::File::open("/dev/null")?;
            let first = number(arg(0))?;
            for request in first..first + number(arg(1))? {
                // SAFETY: /dev/null refuses every request (ENOTTY) without
                // reading the null argument.
                unsafe {
                    libc::ioctl(
                        std::os::fd::AsRawFd::as_raw_fd(&null),
                        request as libc::Ioctl,
                        0,
                    )
                };
            }
            Ok(())
        }
        "mmap" | "mprotect" => {
            let prot = number(arg(0))? as libc::c_int;
            let first = if verb == "mmap" {
                prot
            } else {
                libc::PROT_READ | libc::PROT_WRITE
            };
            // SAFETY: a fresh anonymous page, unmapped before returning,
            // never read or written.
            unsafe {
                let page = libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    first,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if page == libc::MAP_FAILED {
                    return Err(std::io::Error::last_os_error());
                }
                let changed = if verb == "mprotect" {
                    check(libc::mprotect(page, 4096, prot).into())
                } else {
                    Ok(())
                };
                libc::munmap(page, 4096);
                changed
            }
        }
        "say" => writeln!(std::io::stderr(), "{}", arg(0)),
        "thread" => {
            let nap = arg(0).parse().ok().map(std::time::Duration::from_millis);
            std::thread::spawn(move || nap.map(std::thread::sleep))
                .join()
                .map(|_| ())
                .map_err(|_| std::io::Error::other("the thread panicked"))
        }
        "rare" => {
            // SAFETY: personality(0xffffffff) only queries.
            let r = unsafe { libc::personality(0xffff_ffff) };
            check(r as libc::c_long)
        }
        "write" => std::fs::File::create(arg(0))?.write_all(b"x"),
        "read" => std::fs::File::open(arg(0))?
            .read_to_end(&mut Vec::new())
            .map(|_| ()),
        "chdir" => std::env::set_current_dir(arg(0)),
        "mkdir" => std::fs::create_dir(arg(0)),
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_millis(
                arg(0).parse().unwrap_or(0),
            ));
            Ok(())
        }
        "exec" => {
            let status = Command::new(arg(0)).args(&args[1..]).status()?;
            if status.success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!("child: {status}")))
            }
        }
        "tcp" => {
            let addr: SocketAddr = socket_addr(&args)?;
            TcpStream::connect(addr)?.write_all(b"x")
        }
        "udp" => {
            let addr: SocketAddr = socket_addr(&args)?;
            let bind = if addr.is_ipv6() {
                "[::1]:0"
            } else {
                "127.0.0.1:0"
            };
            UdpSocket::bind(bind)?.send_to(b"x", addr).map(|_| ())
        }
        "listen" => TcpListener::bind(socket_addr(&args)?).map(drop),
        "serve" => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            let client =
                std::thread::spawn(move || TcpStream::connect(("127.0.0.1", port)).map(|_| ()));
            let (_conn, _) = listener.accept()?;
            client
                .join()
                .map_err(|_| std::io::Error::other("client thread"))??;
            println!("served on {port}");
            Ok(())
        }
        "chown" => {
            let path = std::ffi::CString::new(arg(0))?;
            let uid: u32 = arg(1).parse().map_err(std::io::Error::other)?;
            // SAFETY: chown(2) on a NUL-terminated path.
            check(unsafe { libc::chown(path.as_ptr(), uid, u32::MAX) }.into())
        }
        "deny-time" => {
            caps::drop(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_TIME,
            )
            .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: reading the clock into our timespec, then trying to set
            // it to the same value without the capability: the kernel refuses.
            let r = unsafe {
                libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
                libc::clock_settime(libc::CLOCK_REALTIME, &now)
            };
            match (r, std::io::Error::last_os_error().raw_os_error()) {
                (-1, Some(libc::EPERM)) => Ok(()),
                _ => Err(std::io::Error::other("setting the clock was not refused")),
            }
        }
        "getppid" => {
            let n: u64 = arg(0).parse().unwrap_or(1);
            let start = Instant::now();
            for _ in 0..n {
                // SAFETY: getppid has no preconditions.
                std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
            }
            println!(
                "getppid_ns {:.2}",
                start.elapsed().as_nanos() as f64 / n as f64
            );
            Ok(())
        }
        "open-loop" => {
            let path = std::ffi::CString::new(arg(0))?;
            let n: u64 = arg(1).parse().unwrap_or(1);
            let start = Instant::now();
            for _ in 0..n {
                // SAFETY: open/close on a NUL-terminated path.
                unsafe {
                    let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
            }
            println!(
                "open_close_ns {:.2}",
                start.elapsed().as_nanos() as f64 / n as f64
            );
            Ok(())
        }
        other => Err(std::io::Error::other(format!("unknown step {other}"))),
    }
}

fn socket_addr(args: &[&str]) -> std::io::Result<SocketAddr> {
    // ADDR may be an IPv6 address with colons: the port is the last part.
    let (port, host) = args
        .split_last()
        .ok_or_else(|| std::io::Error::other("missing port"))?;
    let host = host.join(":");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    format!(
        "{}:{port}",
        if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        }
    )
    .parse()
    .map_err(std::io::Error::other)
}

fn check(r: libc::c_long) -> std::io::Result<()> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A number in decimal or 0x hex.
fn number(text: &str) -> std::io::Result<u64> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|e| std::io::Error::other(format!("{text}: {e}")))
}
