//! The rules: built-in ones that need no profile (they fire while a
//! profile is still learnt, and on containers without one) and the
//! profile rules (what a learnt profile does not hold). Each has a stable
//! kebab-case id, a severity and a one-line description (README "Rules").

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use imprint_crd::report::{Access, Direction, NetworkEndpoint};

use super::alert::Severity;

/// One rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// Severity of its alerts.
    pub severity: Severity,
    /// One line: what it catches.
    pub description: &'static str,
    /// A learnt profile that holds the same item silences it (the
    /// workload did it while learnt).
    pub learnable: bool,
    /// On unless turned off (`false`: off unless turned on).
    pub default_on: bool,
    /// Fires only for a container with a learnt profile.
    pub needs_profile: bool,
}

const fn rule(
    id: &'static str,
    severity: Severity,
    learnable: bool,
    description: &'static str,
) -> Rule {
    Rule {
        id,
        severity,
        description,
        learnable,
        default_on: true,
        needs_profile: false,
    }
}

use Severity::{Critical, High, Low, Medium};

/// Every rule, built-in first; an event raises the first that matches.
pub const RULES: &[Rule] = &[
    rule(
        "reverse-shell",
        Critical,
        false,
        "a shell whose standard input or output is a network socket",
    ),
    rule(
        "fileless-exec",
        Critical,
        false,
        "a program executed from memory (memfd), not from a file",
    ),
    rule(
        "kernel-module-load",
        Critical,
        false,
        "init_module or finit_module called from a container",
    ),
    rule(
        "drifted-binary",
        Critical,
        true,
        "a file written or changed after the container started was executed",
    ),
    rule(
        "terminal-shell",
        High,
        false,
        "a shell with a controlling terminal (kubectl exec -it, docker exec -it)",
    ),
    rule(
        "package-manager",
        High,
        true,
        "a package manager ran (apt, apt-get, dpkg, apk, yum, dnf, rpm, pip, npm, gem)",
    ),
    rule(
        "network-tool",
        High,
        true,
        "a network tool ran (nc, ncat, netcat, socat, nmap)",
    ),
    rule(
        "exec-from-temp",
        High,
        true,
        "a program executed from /tmp, /var/tmp or /dev/shm",
    ),
    rule(
        "shadow-file-read",
        High,
        true,
        "/etc/shadow or /etc/gshadow read",
    ),
    rule(
        "write-below-system-dir",
        High,
        true,
        "a file below /etc, /usr, /bin, /sbin, /lib or /boot written or changed",
    ),
    rule(
        "ptrace",
        High,
        true,
        "ptrace used (reading or steering another process)",
    ),
    rule(
        "namespace-escape",
        High,
        true,
        "unshare, setns, mount or pivot_root after the container started",
    ),
    rule("bpf-syscall", High, true, "bpf() called from a container"),
    rule(
        "mining-pool-port",
        High,
        true,
        "a connection to a port well-known mining pools use",
    ),
    rule(
        "shell-spawned-by-server",
        Medium,
        true,
        "a shell started by a process that is not a shell",
    ),
    Rule {
        needs_profile: true,
        ..rule(
            "kubernetes-api-connection",
            Medium,
            true,
            "a connection to the Kubernetes API server, which the profile never made",
        )
    },
    rule(
        "service-account-token-read",
        Medium,
        true,
        "the Kubernetes service-account token read",
    ),
    rule(
        "unexpected-listener",
        High,
        true,
        "a listening port the profile does not hold",
    ),
    rule(
        "unexpected-exec",
        Medium,
        true,
        "a program the profile never ran",
    ),
    Rule {
        default_on: false,
        ..rule(
            EXEC_ARGUMENTS_RULE,
            Low,
            true,
            "a program the profile ran, with arguments of a shape it never used (off by default: command lines that name pods or hosts differ between replicas)",
        )
    },
    rule(
        "unexpected-file-write",
        Medium,
        true,
        "a file written or changed that the profile never wrote",
    ),
    rule(
        "unexpected-syscall",
        Medium,
        true,
        "a syscall the profile never made",
    ),
    rule(
        SYSCALL_ARGUMENTS_RULE,
        Medium,
        true,
        "a syscall the profile restricts to the calls it made, called with other arguments (a socket family, namespace flags, writable and executable memory)",
    ),
    rule(
        "unexpected-capability",
        Medium,
        true,
        "a capability the profile never needed",
    ),
    rule(
        "unexpected-connection",
        Medium,
        true,
        "an outbound connection the profile never made",
    ),
    Rule {
        default_on: false,
        ..rule(
            "unexpected-file-read",
            Low,
            true,
            "a file read that the profile never read (off by default: new programs read many files)",
        )
    },
];

/// The id of the rule for a known program run with arguments of a new
/// shape.
pub const EXEC_ARGUMENTS_RULE: &str = "unexpected-exec-arguments";

/// The id of the rule for a call with arguments the profile never used.
pub const SYSCALL_ARGUMENTS_RULE: &str = "unexpected-syscall-arguments";

/// The id of the summary of alerts held back by the rate limit.
pub const RATE_LIMIT_RULE: &str = "alert-rate-limit";

/// The rule named `id`.
pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Which rules are on, globally and per namespace.
#[derive(Clone, Debug, Default)]
pub struct RuleSwitches {
    off: HashSet<String>,
    on: HashSet<String>,
    off_in: HashMap<String, HashSet<String>>,
}

/// A switch naming no rule.
#[derive(Debug, thiserror::Error)]
#[error("no rule named {0:?} (see `imprint rules`)")]
pub struct UnknownRule(pub String);

impl RuleSwitches {
    /// Turns rules off (`RULE` or `NAMESPACE/RULE`) and on (`RULE`).
    pub fn new(off: &[String], on: &[String]) -> Result<RuleSwitches, UnknownRule> {
        let mut switches = RuleSwitches::default();
        for spec in off {
            let (namespace, id) = match spec.split_once('/') {
                Some((ns, id)) => (Some(ns), id),
                None => (None, spec.as_str()),
            };
            find(id).ok_or_else(|| UnknownRule(id.to_string()))?;
            match namespace {
                Some(ns) => {
                    switches
                        .off_in
                        .entry(ns.to_string())
                        .or_default()
                        .insert(id.to_string());
                }
                None => {
                    switches.off.insert(id.to_string());
                }
            }
        }
        for id in on {
            find(id).ok_or_else(|| UnknownRule(id.clone()))?;
            switches.on.insert(id.clone());
        }
        Ok(switches)
    }

    /// Whether `rule` is on for a container of `namespace`.
    pub fn enabled(&self, rule: &Rule, namespace: Option<&str>) -> bool {
        let on = if rule.default_on {
            !self.off.contains(rule.id)
        } else {
            self.on.contains(rule.id)
        };
        on && !namespace
            .and_then(|ns| self.off_in.get(ns))
            .is_some_and(|off| off.contains(rule.id))
    }
}

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "fish", "tcsh", "csh", "rbash",
];
const PACKAGE_MANAGERS: &[&str] = &[
    "apt", "apt-get", "aptitude", "dpkg", "apk", "yum", "dnf", "microdnf", "rpm", "zypper", "pip",
    "pip2", "pip3", "npm", "gem",
];
const NETWORK_TOOLS: &[&str] = &["nc", "ncat", "netcat", "socat", "nmap", "nping"];
/// Processes that start shells as a matter of course.
const LAUNCHERS: &[&str] = &[
    "tini",
    "dumb-init",
    "su",
    "sudo",
    "runuser",
    "env",
    "timeout",
    "nice",
    "nohup",
    "xargs",
    "make",
    "script",
    "s6-svscan",
    "supervisord",
    "runsv",
    "catatonit",
    "busybox",
];
const SYSTEM_DIRS: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot",
];
const TEMP_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm", "/run/shm"];
const MINING_PORTS: &[u16] = &[
    3333, 3334, 3335, 3336, 3357, 4444, 5555, 5556, 5588, 5730, 6099, 6666, 7777, 7778, 9999,
    14433, 14444, 45560, 45700,
];

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether the program (file or argv[0]; for a multi-call binary run as
/// itself, `busybox sh`, its applet in argv[1]) is one of `names`, with or
/// without a version or variant suffix (`pip3.11`, `nc.openbsd`).
fn named(path: &str, args: &[String], names: &[&str]) -> bool {
    let matches = |name: &str| {
        names.iter().any(|n| {
            name == *n
                || name
                    .strip_prefix(n)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    };
    let multi_call = |name: &str| matches!(name, "busybox" | "toybox");
    let argv0 = args.first().map(|a| basename(a));
    let applet = (multi_call(basename(path)) && argv0.is_none_or(multi_call))
        .then(|| args.get(1).map(|a| basename(a)))
        .flatten();
    matches(basename(path)) || argv0.is_some_and(matches) || applet.is_some_and(matches)
}

fn below(path: &str, dirs: &[&str]) -> bool {
    dirs.iter().any(|d| {
        path.strip_prefix(d)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Container runtimes: their processes set containers up from inside
/// (`runc init` joins namespaces and mounts before it executes the
/// container's program).
const RUNTIMES: &[&str] = &["runc", "crun", "youki", "runsc", "conmon"];

/// Whether `exe` is a container runtime's executable.
pub fn is_runtime(exe: &str) -> bool {
    let name = basename(exe);
    RUNTIMES.contains(&name) || name.starts_with("containerd-shim")
}

/// What the exec rules look at.
#[derive(Debug)]
pub struct ExecFacts<'a> {
    /// The executed file.
    pub path: &'a str,
    /// argv.
    pub args: &'a [String],
    /// A controlling terminal.
    pub terminal: bool,
    /// Standard input or output is a socket.
    pub socket_stdio: bool,
    /// The parent's program, when the container's process table knows it.
    pub parent_exe: Option<&'a str>,
    /// The file was written or changed since the container started.
    pub written_since_start: bool,
}

/// Whether the exec is of a shell.
pub fn is_shell(path: &str, args: &[String]) -> bool {
    named(path, args, SHELLS)
}

/// The built-in rules an exec matches, in [`RULES`] order.
pub fn exec_rules(f: &ExecFacts) -> Vec<&'static str> {
    let shell = is_shell(f.path, f.args);
    let mut ids = Vec::new();
    if shell && f.socket_stdio {
        ids.push("reverse-shell");
    }
    if f.path.starts_with("/memfd:") {
        ids.push("fileless-exec");
    }
    if f.written_since_start {
        ids.push("drifted-binary");
    }
    if shell && f.terminal {
        ids.push("terminal-shell");
    }
    if named(f.path, f.args, PACKAGE_MANAGERS) {
        ids.push("package-manager");
    }
    if named(f.path, f.args, NETWORK_TOOLS) {
        ids.push("network-tool");
    }
    if below(f.path, TEMP_DIRS) {
        ids.push("exec-from-temp");
    }
    if shell
        && let Some(parent) = f.parent_exe
        && !parent.is_empty()
        && !is_shell(parent, &[])
        && !named(parent, &[], LAUNCHERS)
    {
        ids.push("shell-spawned-by-server");
    }
    ids
}

/// The built-in rules a file access matches.
pub fn file_rules(path: &str, accesses: &[Access]) -> Vec<&'static str> {
    let mut ids = Vec::new();
    let reads = accesses.contains(&Access::Read);
    if reads && matches!(path, "/etc/shadow" | "/etc/gshadow") {
        ids.push("shadow-file-read");
    }
    if accesses.iter().any(|a| a.is_write()) && below(path, SYSTEM_DIRS) {
        ids.push("write-below-system-dir");
    }
    if reads && path.contains("/secrets/kubernetes.io/serviceaccount/") && basename(path) == "token"
    {
        ids.push("service-account-token-read");
    }
    ids
}

/// The built-in rules a first use of a syscall matches.
pub fn syscall_rules(name: &str) -> Vec<&'static str> {
    match name {
        "ptrace" => vec!["ptrace"],
        "init_module" | "finit_module" => vec!["kernel-module-load"],
        "unshare" | "setns" | "mount" | "pivot_root" | "fsmount" | "move_mount" | "open_tree" => {
            vec!["namespace-escape"]
        }
        "bpf" => vec!["bpf-syscall"],
        _ => Vec::new(),
    }
}

/// The built-in rules an endpoint matches; `api_servers`: the Kubernetes
/// API server's addresses, when known.
pub fn network_rules(endpoint: &NetworkEndpoint, api_servers: &[SocketAddr]) -> Vec<&'static str> {
    let mut ids = Vec::new();
    if endpoint.direction != Direction::Outbound {
        return ids;
    }
    if MINING_PORTS.contains(&endpoint.port) {
        ids.push("mining-pool-port");
    }
    if api_servers
        .iter()
        .any(|a| a.port() == endpoint.port && a.ip().to_string() == endpoint.address)
    {
        ids.push("kubernetes-api-connection");
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec<'a>(path: &'a str, args: &'a [String]) -> ExecFacts<'a> {
        ExecFacts {
            path,
            args,
            terminal: false,
            socket_stdio: false,
            parent_exe: None,
            written_since_start: false,
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ids_are_unique_kebab_case_and_known() {
        let mut seen = HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "{} twice", r.id);
            assert!(
                r.id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{}",
                r.id
            );
        }
        assert!(RuleSwitches::new(&["no-such-rule".into()], &[]).is_err());
    }

    #[test]
    fn exec_rules_and_their_near_misses() {
        let a = args(&["apt-get", "install", "curl"]);
        assert_eq!(
            exec_rules(&exec("/usr/bin/apt-get", &a)),
            ["package-manager"]
        );
        // An argument naming a package manager is not one running.
        let echo = args(&["echo", "apt-get", "install"]);
        assert!(exec_rules(&exec("/usr/bin/echo", &echo)).is_empty());
        let pip = args(&["pip3.11"]);
        assert_eq!(
            exec_rules(&exec("/usr/local/bin/pip3.11", &pip)),
            ["package-manager"]
        );
        assert!(exec_rules(&exec("/usr/bin/dpkg-query", &args(&["dpkg-query"]))).is_empty());
        let nc = args(&["nc", "-l"]);
        assert_eq!(
            exec_rules(&exec("/usr/bin/nc.openbsd", &nc)),
            ["network-tool"]
        );
        assert!(exec_rules(&exec("/usr/bin/ncdu", &args(&["ncdu"]))).is_empty());
        let busybox_nc = args(&["nc", "10.0.0.1", "4444"]);
        assert_eq!(
            exec_rules(&exec("/bin/busybox", &busybox_nc)),
            ["network-tool"]
        );
        let applet = args(&["/tools/busybox", "nc", "-l", "-p", "4444"]);
        assert_eq!(
            exec_rules(&exec("/tools/busybox", &applet)),
            ["network-tool"]
        );
        let sh = args(&["/tools/busybox", "sh", "-c", "id"]);
        let mut shell = exec("/tools/busybox", &sh);
        shell.terminal = true;
        assert_eq!(exec_rules(&shell), ["terminal-shell"]);
        // An argument of a multi-call binary run under an applet's name
        // is not an applet.
        let cat = args(&["cat", "nc"]);
        assert!(exec_rules(&exec("/bin/busybox", &cat)).is_empty());
        assert_eq!(
            exec_rules(&exec("/tmp/x", &args(&["x"]))),
            ["exec-from-temp"]
        );
        assert!(exec_rules(&exec("/tmpfoo/x", &args(&["x"]))).is_empty());
        assert_eq!(
            exec_rules(&exec("/memfd:x", &args(&["x"]))),
            ["fileless-exec"]
        );
        let sh = args(&["sh", "-c", "id"]);
        let mut f = exec("/bin/dash", &sh);
        assert!(
            exec_rules(&f).is_empty(),
            "a shell nobody is known to start"
        );
        f.parent_exe = Some("/usr/sbin/nginx");
        assert_eq!(exec_rules(&f), ["shell-spawned-by-server"]);
        f.parent_exe = Some("/bin/bash");
        assert!(exec_rules(&f).is_empty(), "shell from a shell (a script)");
        f.parent_exe = Some("/usr/bin/tini");
        assert!(exec_rules(&f).is_empty(), "an init starting the entrypoint");
        f.terminal = true;
        assert_eq!(exec_rules(&f), ["terminal-shell"]);
        f.terminal = false;
        f.socket_stdio = true;
        assert_eq!(exec_rules(&f), ["reverse-shell"]);
        // A non-shell with socket stdio (inetd style) is not a reverse shell.
        let cat = args(&["cat"]);
        let mut g = exec("/bin/cat", &cat);
        g.socket_stdio = true;
        assert!(exec_rules(&g).is_empty());
        g.written_since_start = true;
        assert_eq!(exec_rules(&g), ["drifted-binary"]);
    }

    #[test]
    fn file_rules_and_their_near_misses() {
        assert_eq!(
            file_rules("/etc/shadow", &[Access::Read]),
            ["shadow-file-read"]
        );
        assert!(file_rules("/etc/passwd", &[Access::Read]).is_empty());
        assert_eq!(
            file_rules("/etc/x", &[Access::Write, Access::Create]),
            ["write-below-system-dir"]
        );
        assert!(file_rules("/etcetera/x", &[Access::Write]).is_empty());
        assert!(file_rules("/etc/x", &[Access::Read]).is_empty());
        assert_eq!(
            file_rules("/usr/bin/x", &[Access::Chmod]),
            ["write-below-system-dir"]
        );
        let token = "/run/secrets/kubernetes.io/serviceaccount/..2026_12_05/token";
        assert_eq!(
            file_rules(token, &[Access::Read]),
            ["service-account-token-read"]
        );
        let ca = "/run/secrets/kubernetes.io/serviceaccount/..2026_12_05/ca.crt";
        assert!(file_rules(ca, &[Access::Read]).is_empty());
    }

    #[test]
    fn runtimes_are_known_by_their_file() {
        assert!(is_runtime("/usr/bin/runc"));
        assert!(is_runtime("/usr/local/bin/containerd-shim-runc-v2"));
        assert!(!is_runtime("/usr/bin/runcmd"));
        assert!(!is_runtime(""));
    }

    #[test]
    fn syscall_and_network_rules() {
        assert_eq!(syscall_rules("finit_module"), ["kernel-module-load"]);
        assert_eq!(syscall_rules("setns"), ["namespace-escape"]);
        assert!(syscall_rules("process_vm_writev").is_empty());
        let api: SocketAddr = "10.96.0.1:443".parse().unwrap();
        let to = |address: &str, port| NetworkEndpoint {
            direction: Direction::Outbound,
            protocol: imprint_crd::report::Protocol::Tcp,
            address: address.into(),
            port,
            peer: None,
        };
        assert_eq!(
            network_rules(&to("10.96.0.1", 443), &[api]),
            ["kubernetes-api-connection"]
        );
        assert!(network_rules(&to("10.96.0.2", 443), &[api]).is_empty());
        assert_eq!(
            network_rules(&to("192.0.2.1", 3333), &[]),
            ["mining-pool-port"]
        );
        assert!(network_rules(&to("192.0.2.1", 3306), &[]).is_empty());
        let mut listen = to("0.0.0.0", 3333);
        listen.direction = Direction::Listening;
        assert!(
            network_rules(&listen, &[]).is_empty(),
            "a listener is not a pool"
        );
    }

    #[test]
    fn the_readme_lists_every_rule_with_its_severity() {
        let readme = include_str!("../../../README.md");
        for r in RULES {
            let row = format!("| `{}` | {} |", r.id, r.severity.as_str());
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }

    #[test]
    fn the_charts_values_schema_accepts_every_rule() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../charts/imprint/values.schema.json"))
                .unwrap();
        // Every enum of rule ids in the schema (enabled, disabled, by namespace).
        fn enums<'a>(v: &'a serde_json::Value, found: &mut Vec<&'a Vec<serde_json::Value>>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::Array(ids)) = map.get("enum")
                        && ids.iter().any(|id| id == "package-manager")
                    {
                        found.push(ids);
                    }
                    map.values().for_each(|v| enums(v, found));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| enums(v, found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        enums(&schema, &mut found);
        assert!(!found.is_empty());
        for ids in found {
            for r in RULES {
                assert!(
                    ids.iter().any(|id| id == r.id),
                    "values.schema.json lacks {}",
                    r.id
                );
            }
        }
    }

    #[test]
    fn switches_by_rule_and_namespace() {
        let s = RuleSwitches::new(
            &["package-manager".into(), "dev/network-tool".into()],
            &["unexpected-file-read".into()],
        )
        .unwrap();
        let r = |id| find(id).unwrap();
        assert!(!s.enabled(r("package-manager"), None));
        assert!(s.enabled(r("network-tool"), Some("prod")));
        assert!(!s.enabled(r("network-tool"), Some("dev")));
        assert!(s.enabled(r("unexpected-file-read"), None));
        assert!(!RuleSwitches::default().enabled(r("unexpected-file-read"), None));
    }
}
