//! Path normalisation with bounded cardinality.
//!
//! Paths that differ only by a process id or a random temporary name would
//! make reports grow without bound and profiles no more precise, so:
//! - `/proc/<pid>/...` and `/proc/<pid>/task/<tid>/...` become `/proc/*/...`
//!   and `/proc/*/task/*/...` (`/proc/self` reaches the probes already
//!   resolved to a pid);
//! - a path whose first component is a number (`/<pid>/...`) comes from a
//!   procfs mount that is not attached to the file system (runc reads
//!   `/proc` through such a detached mount while it sets a container up), so
//!   the walk stops at that mount's root: it becomes `/proc/*/...` too;
//! - `/dev/pts/<n>` becomes `/dev/pts/*`;
//! - below `/tmp`, `/var/tmp`, `/dev/shm` and `/run/user/<uid>`, every run of
//!   four or more digits becomes `*`, and a random-looking suffix after the
//!   last `.`, `-` or `_` (or the whole name) becomes `*`: six or more
//!   characters mixing digits, upper and lower case (`mkstemp`'s `XXXXXX`), or
//!   sixteen or more hexadecimal digits.
//!
//! Everything else is kept as the kernel resolved it.

/// Normalises one absolute path.
pub fn normalize_path(path: &str) -> String {
    let detached_proc = path
        .split('/')
        .nth(1)
        .is_some_and(|first| !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()));
    let rooted;
    let path = if detached_proc {
        rooted = format!("/proc{path}");
        rooted.as_str()
    } else {
        path
    };
    let parts: Vec<&str> = path.split('/').collect();
    let mut out: Vec<String> = Vec::with_capacity(parts.len());
    let temp = is_temp_dir(path);
    for (i, part) in parts.iter().enumerate() {
        let previous = if i > 0 { parts[i - 1] } else { "" };
        let numeric = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let replaced = match (i, previous) {
            (2, "proc") if parts[1] == "proc" && numeric => "*".to_string(),
            (4, "task") if parts[1] == "proc" && numeric => "*".to_string(),
            (3, "pts") if parts[1] == "dev" && numeric => "*".to_string(),
            _ if temp && i >= temp_depth(path) => normalize_temp_name(part),
            _ => part.to_string(),
        };
        out.push(replaced);
    }
    out.join("/")
}

fn is_temp_dir(path: &str) -> bool {
    ["/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Index of the first component below the temporary directory.
fn temp_depth(path: &str) -> usize {
    if path.starts_with("/var/tmp/") || path.starts_with("/dev/shm/") {
        3
    } else if path.starts_with("/run/user/") {
        4
    } else {
        2
    }
}

fn normalize_temp_name(name: &str) -> String {
    // A mkstemp-style random suffix.
    let (stem, suffix) = match name.rfind(['.', '-', '_']) {
        Some(i) => (&name[..=i], &name[i + 1..]),
        None => ("", name),
    };
    if looks_random(suffix) {
        return format!("{stem}*");
    }
    // Runs of four or more digits.
    let mut out = String::with_capacity(name.len());
    let mut digits = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush_digits(&mut out, &mut digits);
        out.push(c);
    }
    flush_digits(&mut out, &mut digits);
    out
}

fn flush_digits(out: &mut String, digits: &mut String) {
    if digits.len() >= 4 {
        out.push('*');
    } else {
        out.push_str(digits);
    }
    digits.clear();
}

fn looks_random(token: &str) -> bool {
    let has = |f: fn(&u8) -> bool| token.as_bytes().iter().any(f);
    let mixed =
        has(u8::is_ascii_digit) && has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase);
    let long_hex = token.len() >= 16 && token.bytes().all(|b| b.is_ascii_hexdigit());
    token.len() >= 6 && token.bytes().all(|b| b.is_ascii_alphanumeric()) && (mixed || long_hex)
}

#[cfg(test)]
mod tests {
    use super::normalize_path as n;

    #[test]
    fn proc_pids_and_tids() {
        assert_eq!(n("/proc/1234/status"), "/proc/*/status");
        assert_eq!(n("/proc/1234/task/1240/stat"), "/proc/*/task/*/stat");
        assert_eq!(
            n("/proc/sys/kernel/ngroups_max"),
            "/proc/sys/kernel/ngroups_max"
        );
        assert_eq!(n("/proc/1234"), "/proc/*");
        // runc's detached procfs mount: the walk stops at its root.
        assert_eq!(n("/7/setgroups"), "/proc/*/setgroups");
        assert_eq!(n("/7/task/7/fd/13"), "/proc/*/task/*/fd/13");
        assert_eq!(n("/etc/7/x"), "/etc/7/x");
    }

    #[test]
    fn terminals() {
        assert_eq!(n("/dev/pts/3"), "/dev/pts/*");
        assert_eq!(n("/dev/null"), "/dev/null");
    }

    #[test]
    fn temporary_names() {
        assert_eq!(n("/tmp/tmp.a8Xk2QzP1"), "/tmp/tmp.*");
        assert_eq!(n("/tmp/build-1700000000/out.o"), "/tmp/build-*/out.o");
        assert_eq!(n("/var/tmp/cache12345.db"), "/var/tmp/cache*.db");
        assert_eq!(n("/dev/shm/sem.Xy12ab"), "/dev/shm/sem.*");
        assert_eq!(n("/tmp/plain/file"), "/tmp/plain/file");
        assert_eq!(n("/run/user/1000/bus"), "/run/user/1000/bus");
        assert_eq!(
            n("/var/tmp/job/backup.tar.sha256"),
            "/var/tmp/job/backup.tar.sha256"
        );
        assert_eq!(n("/tmp/cache/0123456789abcdef0123"), "/tmp/cache/*");
    }

    #[test]
    fn ordinary_paths_are_kept() {
        assert_eq!(n("/etc/nginx/nginx.conf"), "/etc/nginx/nginx.conf");
        assert_eq!(
            n("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            "/usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(n("/"), "/");
    }
}
