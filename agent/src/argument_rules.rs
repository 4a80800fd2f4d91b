//! Seccomp rules on syscall arguments, from the calls reports recorded
//! (`spec.syscalls.arguments`): a syscall whose arguments every report
//! recorded is allowed only for the calls seen, one rule per call (the
//! conditions of one rule all hold at once; alternatives are rules of
//! their own). Pure functions, no I/O.
//!
//! A syscall stays allowed by name, and the reason is said, when a report
//! used it without recording its arguments (an older agent, a value lost),
//! when the kernel saw more distinct values than it sends (overflow), or
//! past [`MAX_CALLS`] calls.

use std::collections::{BTreeMap, BTreeSet};

use imprint_crd::report::{ArgumentValue, ContainerBehaviorReportSpec, SyscallArguments};

use crate::probes::arguments::RECORDED;

/// Calls of one syscall allowed one by one; past it, the syscall is
/// allowed by name (a rule per call grows the filter, and so many values
/// say the workload's use is open-ended).
pub const MAX_CALLS: usize = 32;

/// `ioctl` requests every profile that restricts ioctl allows: libc asks
/// whether a stream is a terminal (`isatty`: TCGETS) and its size
/// (TIOCGWINSZ) depending on how the container was started (`-t` or not),
/// which a recording need not show. Both only read.
pub const IOCTL_BASELINE: [u64; 2] = [0x5401, 0x5413];

/// The protection bits (`PROT_WRITE | PROT_EXEC`, masked) every profile
/// that restricts `mmap`, `mprotect` or `pkey_mprotect` allows: neither,
/// writable, executable. Only both at once depends on the recording (W^X):
/// a static binary never maps executable pages itself, and a library
/// loaded later may, which a recording need not show.
pub const PROT_BASELINE: [u64; 3] = [0, 2, 4];

/// Calls every profile that restricts `name` allows, recorded or not.
pub fn always_allowed(name: &str) -> Vec<Vec<ArgumentValue>> {
    let call = |index, value, mask| {
        vec![ArgumentValue {
            index,
            value,
            mask: Some(mask),
        }]
    };
    match name {
        "ioctl" => IOCTL_BASELINE
            .iter()
            .map(|r| call(1, *r, 0xffff_ffff))
            .collect(),
        "mmap" | "mprotect" | "pkey_mprotect" => PROT_BASELINE
            .iter()
            .map(|p| call(2, *p, imprint_probes::events::arg::PROT_WRITE_EXEC))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a call, as the probe recorded its arguments, meets the
/// conditions of `rule` as seccomp reads them (`(argument & mask) ==
/// value` each). A condition on bits the recorded values do not tell (an
/// argument not recorded, a wider mask) is taken as met.
pub fn satisfies(call: &[ArgumentValue], rule: &[ArgumentValue]) -> bool {
    rule.iter().all(|condition| {
        let Some(seen) = call.iter().find(|a| a.index == condition.index) else {
            return true;
        };
        let wanted = condition.mask.unwrap_or(u64::MAX);
        let known = seen.mask.unwrap_or(u64::MAX);
        wanted & !known != 0 || seen.value & wanted == condition.value
    })
}

/// errno `clone3` returns when `clone` is restricted: ENOSYS makes libc
/// fall back to `clone`, whose flags a filter can read (clone3's are
/// behind a pointer).
pub const ENOSYS: u32 = 38;

/// What the reports say about one syscall's arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArgumentUse {
    /// Every call recorded.
    pub calls: BTreeSet<Vec<ArgumentValue>>,
    /// Why the syscall cannot be restricted to them, if it cannot.
    pub unrestricted: Option<String>,
}

impl ArgumentUse {
    /// The calls a profile allows `name` one by one (the recorded ones and
    /// those every profile allows; none: no rule), or why it allows the
    /// syscall by name instead. Profiles and detection both decide here.
    pub fn rule_calls(&self, name: &str) -> Result<BTreeSet<Vec<ArgumentValue>>, String> {
        if let Some(why) = &self.unrestricted {
            return Err(why.clone());
        }
        let mut calls = self.calls.clone();
        calls.extend(always_allowed(name));
        if calls.len() > MAX_CALLS {
            return Err(format!(
                "{} distinct calls, more than {MAX_CALLS}",
                calls.len()
            ));
        }
        Ok(calls)
    }
}

/// The argument use of the recorded syscalls across reports, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Arguments {
    /// By syscall name.
    pub by_syscall: BTreeMap<String, ArgumentUse>,
}

/// Why a syscall is allowed by name: more distinct calls were made than
/// the kernel records.
pub const OVERFLOWED: &str = "more distinct calls than the kernel records";
/// Why a syscall is allowed by name: a report used it without recording
/// its arguments.
pub const NOT_RECORDED: &str = "a report used it without recording its arguments";

impl Arguments {
    /// What was recorded of `name`, as a report says it, so that adding it
    /// gives the same: its calls, or `overflow`, or `None` when it was used
    /// without its arguments recorded (or never).
    pub fn as_reported(&self, name: &str) -> Option<SyscallArguments> {
        let used = self.by_syscall.get(name)?;
        match used.unrestricted.as_deref() {
            Some(NOT_RECORDED) => None,
            Some(_) => Some(SyscallArguments {
                name: name.to_string(),
                calls: Vec::new(),
                overflow: true,
            }),
            None => Some(SyscallArguments {
                name: name.to_string(),
                calls: used.calls.iter().cloned().collect(),
                overflow: false,
            }),
        }
    }

    /// Adds one report: for each recorded syscall it used, its calls, or
    /// why they are incomplete.
    pub fn add(&mut self, report: &ContainerBehaviorReportSpec) {
        for (name, _) in RECORDED {
            if !report.syscalls.names.iter().any(|n| n == name) {
                continue;
            }
            let entry = self.by_syscall.entry(name.to_string()).or_default();
            match report.syscalls.arguments.iter().find(|a| a.name == name) {
                Some(seen) if seen.overflow => {
                    entry.unrestricted.get_or_insert_with(|| OVERFLOWED.into());
                }
                Some(seen) => entry.calls.extend(seen.calls.iter().cloned()),
                None => {
                    entry
                        .unrestricted
                        .get_or_insert_with(|| NOT_RECORDED.into());
                }
            }
        }
    }

    /// Adds calls a user allows beside the recorded ones (a BehaviorProfile's
    /// `overrides.syscallArguments`). Refused, with why, for a syscall whose
    /// arguments are not recorded (restricting it could refuse calls the
    /// workload made) and for calls without values or with an argument
    /// index past 5.
    pub fn add_allowed(&mut self, extra: &SyscallArguments) -> Result<(), String> {
        if !RECORDED.iter().any(|(name, _)| *name == extra.name) {
            return Err("its arguments are not recorded, so they cannot be restricted".into());
        }
        if extra.calls.is_empty() || extra.calls.iter().any(Vec::is_empty) {
            return Err("a call without argument values".into());
        }
        if let Some(bad) = extra.calls.iter().flatten().find(|v| v.index > 5) {
            return Err(format!("argument index {} (syscalls take 6)", bad.index));
        }
        if let Some(bad) = extra
            .calls
            .iter()
            .flatten()
            .find(|v| v.mask.is_some_and(|mask| v.value & !mask != 0))
        {
            return Err(format!(
                "value {:#x} has bits outside its mask {:#x} (no call could match)",
                bad.value,
                bad.mask.unwrap_or_default()
            ));
        }
        self.by_syscall
            .entry(extra.name.clone())
            .or_default()
            .calls
            .extend(extra.calls.iter().cloned());
        Ok(())
    }
}

/// The argument rules of a profile that allows `allowed` (by name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArgumentRules {
    /// Syscalls allowed only for these calls (each call one rule).
    pub restricted: BTreeMap<String, Vec<Vec<ArgumentValue>>>,
    /// `clone3` fails with ENOSYS (libc then uses `clone`, restricted).
    pub clone3_enosys: bool,
    /// Syscalls left allowed by name, with why.
    pub notes: Vec<String>,
}

impl ArgumentRules {
    /// Whether `name` is allowed by a rule of its own (not by name).
    pub fn covers(&self, name: &str) -> bool {
        self.restricted.contains_key(name) || (name == "clone3" && self.clone3_enosys)
    }

    /// The rules a profile stored (a BehaviorProfile's
    /// `syscallArguments`) for a profile allowing `allowed`.
    pub fn stored(restricted: &[SyscallArguments], allowed: &BTreeSet<String>) -> ArgumentRules {
        let restricted: BTreeMap<String, Vec<Vec<ArgumentValue>>> = restricted
            .iter()
            .filter(|a| allowed.contains(&a.name) && !a.calls.is_empty())
            .map(|a| (a.name.clone(), a.calls.clone()))
            .collect();
        ArgumentRules {
            clone3_enosys: clone3_falls_back(&restricted, allowed),
            restricted,
            notes: Vec::new(),
        }
    }

    /// The restricted syscalls as a profile stores them.
    pub fn to_stored(&self) -> Vec<SyscallArguments> {
        self.restricted
            .iter()
            .map(|(name, calls)| SyscallArguments {
                name: name.clone(),
                calls: calls.clone(),
                overflow: false,
            })
            .collect()
    }
}

/// Whether `clone3` answers ENOSYS: its flags are behind a pointer, so
/// where `clone` is restricted, libc must fall back to it.
fn clone3_falls_back(
    restricted: &BTreeMap<String, Vec<Vec<ArgumentValue>>>,
    allowed: &BTreeSet<String>,
) -> bool {
    restricted.contains_key("clone") && allowed.contains("clone3")
}

/// The rules for a profile allowing `allowed`: every allowed syscall of
/// [`RECORDED`] with complete calls is restricted to them.
pub fn rules(arguments: &Arguments, allowed: &BTreeSet<String>) -> ArgumentRules {
    let mut rules = ArgumentRules::default();
    for (name, used) in &arguments.by_syscall {
        if !allowed.contains(name) {
            continue;
        }
        match used.rule_calls(name) {
            Err(why) => rules.notes.push(format!("{name}: allowed by name ({why})")),
            Ok(calls) if calls.is_empty() => {}
            Ok(calls) => {
                rules
                    .restricted
                    .insert(name.clone(), calls.into_iter().collect());
            }
        }
    }
    if clone3_falls_back(&rules.restricted, allowed) {
        rules.clone3_enosys = true;
        rules
            .notes
            .push("clone3: fails with ENOSYS (libc falls back to clone, restricted)".into());
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(index: u32, value: u64, mask: Option<u64>) -> ArgumentValue {
        ArgumentValue { index, value, mask }
    }

    fn report(names: &[&str], arguments: Vec<SyscallArguments>) -> ContainerBehaviorReportSpec {
        let mut spec = ContainerBehaviorReportSpec::default();
        spec.syscalls.arch = "x86_64".into();
        spec.syscalls.names = names.iter().map(|n| n.to_string()).collect();
        spec.syscalls.arguments = arguments;
        spec
    }

    fn socket(families: &[u64], overflow: bool) -> SyscallArguments {
        SyscallArguments {
            name: "socket".into(),
            calls: families
                .iter()
                .map(|f| {
                    vec![
                        value(0, *f, Some(0xffff_ffff)),
                        value(1, 1, Some(0xfff7_f7ff)),
                    ]
                })
                .collect(),
            overflow,
        }
    }

    fn allowed(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_union_of_the_replicas_calls_is_allowed_one_rule_each() {
        let mut arguments = Arguments::default();
        arguments.add(&report(&["socket", "read"], vec![socket(&[2], false)]));
        arguments.add(&report(&["socket"], vec![socket(&[1, 2], false)]));
        let rules = rules(&arguments, &allowed(&["socket", "read"]));
        assert_eq!(rules.restricted["socket"].len(), 2);
        assert!(rules.covers("socket") && !rules.covers("read"));
        assert!(rules.notes.is_empty(), "{:?}", rules.notes);
    }

    #[test]
    fn incomplete_calls_leave_the_syscall_allowed_by_name_and_say_why() {
        // A replica whose report has socket but no arguments (an older agent).
        let mut arguments = Arguments::default();
        arguments.add(&report(&["socket"], vec![socket(&[2], false)]));
        arguments.add(&report(&["socket"], vec![]));
        let r = rules(&arguments, &allowed(&["socket"]));
        assert!(!r.covers("socket"));
        assert!(r.notes[0].contains("without recording"), "{:?}", r.notes);
        // An overflow.
        let mut arguments = Arguments::default();
        arguments.add(&report(&["socket"], vec![socket(&[2], true)]));
        let r = rules(&arguments, &allowed(&["socket"]));
        assert!(!r.covers("socket") && r.notes[0].contains("more distinct"));
        // Past the bound.
        let many: Vec<u64> = (0..=MAX_CALLS as u64).collect();
        let mut arguments = Arguments::default();
        arguments.add(&report(&["socket"], vec![socket(&many, false)]));
        let r = rules(&arguments, &allowed(&["socket"]));
        assert!(!r.covers("socket") && r.notes[0].contains("more than"));
    }

    #[test]
    fn a_restricted_clone_sends_clone3_to_its_fallback() {
        let clone = SyscallArguments {
            name: "clone".into(),
            calls: vec![vec![value(0, 0, Some(0x7e02_0000))]],
            overflow: false,
        };
        let mut arguments = Arguments::default();
        arguments.add(&report(&["clone", "clone3"], vec![clone]));
        let r = rules(&arguments, &allowed(&["clone", "clone3"]));
        assert!(r.clone3_enosys && r.covers("clone3") && r.covers("clone"));
    }

    #[test]
    fn memory_protections_refuse_only_writable_and_executable_unless_seen() {
        let prot = |bits: u64| {
            vec![ArgumentValue {
                index: 2,
                value: bits,
                mask: Some(6),
            }]
        };
        let mut arguments = Arguments::default();
        // A static binary: read-write pages only.
        arguments.by_syscall.insert(
            "mmap".into(),
            ArgumentUse {
                calls: [prot(2)].into(),
                unrestricted: None,
            },
        );
        let rules = rules(&arguments, &allowed(&["mmap"]));
        let mmap = &rules.restricted["mmap"];
        assert_eq!(mmap.len(), 3, "{mmap:?}");
        for bits in [0, 2, 4] {
            assert!(mmap.iter().any(|rule| satisfies(&prot(bits), rule)));
        }
        assert!(!mmap.iter().any(|rule| satisfies(&prot(6), rule)));
    }

    #[test]
    fn a_call_meets_a_rule_as_seccomp_reads_it() {
        // socket(AF_INET6, SOCK_DGRAM, 0) as recorded.
        let call = crate::probes::arguments::decode("socket", 10 | (2 << 16)).unwrap();
        let family = |f: u64| value(0, f, Some(0xffff_ffff));
        assert!(satisfies(&call, &[family(10)]));
        assert!(!satisfies(&call, &[family(2)]));
        assert!(satisfies(&call, &call));
        // A condition on bits not recorded (socket's type flags) tells nothing.
        assert!(satisfies(&call, &[value(1, 0x800, Some(0x800))]));
        // No mask: the whole argument, recorded whole (personality).
        let personality = crate::probes::arguments::decode("personality", 8).unwrap();
        assert!(satisfies(&personality, &[value(0, 8, None)]));
        assert!(!satisfies(&personality, &[value(0, 0, None)]));
    }

    #[test]
    fn a_restricted_ioctl_keeps_the_terminal_queries() {
        let ioctl = SyscallArguments {
            name: "ioctl".into(),
            calls: vec![vec![value(1, 0x5421, Some(0xffff_ffff))]],
            overflow: false,
        };
        let mut arguments = Arguments::default();
        arguments.add(&report(&["ioctl"], vec![ioctl]));
        let r = rules(&arguments, &allowed(&["ioctl"]));
        let requests: Vec<u64> = r.restricted["ioctl"].iter().map(|c| c[0].value).collect();
        assert_eq!(requests, [0x5401, 0x5413, 0x5421]);
    }
}
