//! `imprint run`: runs a command under a seccomp profile and a capability
//! set, the way a container runtime would, to try a generated profile on the
//! host before deploying it.
//!
//! Order, as runc does with `noNewPrivileges` (Kubernetes'
//! `allowPrivilegeEscalation: false`): drop capabilities, set no_new_privs,
//! load the seccomp filter, exec. After the filter is loaded only `execve`
//! runs before the command itself, so a profile recorded with
//! `imprint record -- CMD` covers the launcher.

use std::collections::HashSet;
use std::ffi::CString;
use std::path::Path;

use anyhow::{Context, Result, bail};
use imprint_crd::spo::SeccompProfile;
use imprint_crd::yaml;
use k8s_openapi::api::core::v1::Capabilities;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator,
};
use tracing::warn;

use crate::names::capability_from_name;

/// A seccomp profile in either format imprint writes.
pub fn read_profile(path: &Path) -> Result<LinuxSeccomp> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_profile(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
}

/// Parses a seccomp profile: OCI JSON, or a `SeccompProfile` in YAML or
/// JSON.
pub fn parse_profile(text: &str) -> Result<LinuxSeccomp> {
    if let Ok(oci) = serde_json::from_str::<LinuxSeccomp>(text) {
        return Ok(oci);
    }
    let spo: SeccompProfile = yaml::from_str(text)
        .map_err(|e| anyhow::anyhow!("neither an OCI seccomp profile nor a SeccompProfile: {e}"))?;
    let mut oci = LinuxSeccomp::default();
    oci.set_default_action(action(&spo.spec.default_action)?);
    oci.set_default_errno_ret(Some(crate::recommend::EPERM));
    let mut rules = Vec::new();
    for rule in &spo.spec.syscalls {
        let mut r = oci_spec::runtime::LinuxSyscall::default();
        r.set_names(rule.names.clone());
        r.set_action(action(&rule.action)?);
        r.set_errno_ret(rule.errno_ret);
        if !rule.args.is_empty() {
            let args = rule
                .args
                .iter()
                .map(|a| {
                    let builder = LinuxSeccompArgBuilder::default()
                        .index(a.index as usize)
                        .value(a.value)
                        .op(operator(&a.op)?);
                    let builder = match a.value_two {
                        Some(two) => builder.value_two(two),
                        None => builder,
                    };
                    builder.build().context("argument condition")
                })
                .collect::<Result<Vec<_>>>()?;
            r.set_args(Some(args));
        }
        rules.push(r);
    }
    oci.set_syscalls(Some(rules));
    Ok(oci)
}

fn operator(name: &str) -> Result<LinuxSeccompOperator> {
    Ok(match name {
        "SCMP_CMP_NE" => LinuxSeccompOperator::ScmpCmpNe,
        "SCMP_CMP_LT" => LinuxSeccompOperator::ScmpCmpLt,
        "SCMP_CMP_LE" => LinuxSeccompOperator::ScmpCmpLe,
        "SCMP_CMP_EQ" => LinuxSeccompOperator::ScmpCmpEq,
        "SCMP_CMP_GE" => LinuxSeccompOperator::ScmpCmpGe,
        "SCMP_CMP_GT" => LinuxSeccompOperator::ScmpCmpGt,
        "SCMP_CMP_MASKED_EQ" => LinuxSeccompOperator::ScmpCmpMaskedEq,
        other => bail!("unknown seccomp operator {other:?}"),
    })
}

fn action(name: &str) -> Result<LinuxSeccompAction> {
    name.parse()
        .map_err(|_| anyhow::anyhow!("unknown seccomp action {name:?}"))
}

fn scmp_action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = errno.unwrap_or(crate::recommend::EPERM) as i32;
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        other => bail!("seccomp action {other} is not supported by imprint run"),
    })
}

/// libseccomp's form of an OCI argument condition (for MASKED_EQ, OCI's
/// `value` is the mask and `valueTwo` the value).
fn arg_compare(arg: &LinuxSeccompArg) -> Result<ScmpArgCompare> {
    let index = u32::try_from(arg.index()).context("argument index")?;
    let two = arg.value_two().unwrap_or(0);
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Ok(ScmpArgCompare::new(
                index,
                ScmpCompareOp::MaskedEqual(arg.value()),
                two,
            ));
        }
    };
    Ok(ScmpArgCompare::new(index, op, arg.value()))
}

/// Builds the libseccomp filter of an OCI profile. Unknown syscall names
/// are skipped with a warning, as runc does.
pub fn filter(profile: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = scmp_action(profile.default_action(), profile.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).context("creating the seccomp filter")?;
    for arch in profile.architectures().iter().flatten() {
        let arch = match arch {
            oci_spec::runtime::Arch::ScmpArchX86_64 => ScmpArch::X8664,
            oci_spec::runtime::Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
            oci_spec::runtime::Arch::ScmpArchX86 => ScmpArch::X86,
            oci_spec::runtime::Arch::ScmpArchX32 => ScmpArch::X32,
            other => bail!("architecture {other:?} is not supported by imprint run"),
        };
        ctx.add_arch(arch)
            .with_context(|| format!("adding architecture {arch:?}"))?;
    }
    ctx.set_ctl_nnp(false).context("seccomp filter attribute")?;
    for rule in profile.syscalls().iter().flatten() {
        let action = scmp_action(rule.action(), rule.errno_ret())?;
        if action == default {
            continue;
        }
        let conditions: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(arg_compare)
            .collect::<Result<_>>()?;
        for name in rule.names() {
            match ScmpSyscall::from_name(name) {
                Ok(syscall) if conditions.is_empty() => {
                    ctx.add_rule(action, syscall)
                        .with_context(|| format!("rule for {name}"))?;
                }
                Ok(syscall) => {
                    ctx.add_rule_conditional(action, syscall, &conditions)
                        .with_context(|| format!("rule for {name} on its arguments"))?;
                }
                Err(_) => warn!(syscall = %name, "unknown to libseccomp, skipped"),
            }
        }
    }
    Ok(ctx)
}

/// Reads a capability set (a Kubernetes `capabilities` object in YAML or
/// JSON, as `imprint recommend --format caps` writes it): the capabilities kept.
pub fn read_capabilities(path: &Path) -> Result<HashSet<caps::Capability>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_capabilities(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
}

/// Parses a capability set (YAML or JSON): the capabilities kept.
pub fn parse_capabilities(text: &str) -> Result<HashSet<caps::Capability>> {
    let set: Capabilities =
        yaml::from_str(text).map_err(|e| anyhow::anyhow!("not a capability set: {e}"))?;
    let drops_all = set
        .drop
        .iter()
        .flatten()
        .any(|d| d.eq_ignore_ascii_case("ALL"));
    let mut kept: HashSet<caps::Capability> = if drops_all {
        HashSet::new()
    } else {
        caps::all()
    };
    for name in set
        .drop
        .iter()
        .flatten()
        .filter(|d| !d.eq_ignore_ascii_case("ALL"))
    {
        kept.remove(
            &capability_from_name(name).with_context(|| format!("unknown capability {name:?}"))?,
        );
    }
    for name in set.add.iter().flatten() {
        kept.insert(
            capability_from_name(name).with_context(|| format!("unknown capability {name:?}"))?,
        );
    }
    Ok(kept)
}

/// Limits the process to `kept`: bounding and inheritable sets, so that the
/// command (as root) holds exactly these after exec.
fn restrict_capabilities(kept: &HashSet<caps::Capability>) -> std::io::Result<()> {
    let to_io = |e: caps::errors::CapsError| std::io::Error::other(e.to_string());
    for cap in caps::all() {
        if !kept.contains(&cap) && caps::has_cap(None, caps::CapSet::Bounding, cap).unwrap_or(false)
        {
            caps::drop(None, caps::CapSet::Bounding, cap).map_err(to_io)?;
        }
    }
    let permitted = caps::read(None, caps::CapSet::Permitted).map_err(to_io)?;
    let inheritable: HashSet<_> = kept.intersection(&permitted).copied().collect();
    caps::set(None, caps::CapSet::Inheritable, &inheritable).map_err(to_io)?;
    Ok(())
}

/// Replaces this process with `command` under the profile and capabilities.
/// Returns only on failure.
pub fn run(seccomp: Option<&Path>, capabilities: Option<&Path>, command: &[String]) -> Result<()> {
    let Some(program) = command.first() else {
        bail!("no command given")
    };
    let program = resolve(program)?;
    let filter = seccomp
        .map(read_profile)
        .transpose()?
        .map(|p| filter(&p))
        .transpose()?;
    let kept = capabilities.map(read_capabilities).transpose()?;
    // Everything exec needs is prepared before the filter is loaded, so that
    // execve is the only syscall made under the filter before the command.
    let path = CString::new(program.as_os_str().as_encoded_bytes())?;
    let args = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    if let Some(kept) = &kept {
        restrict_capabilities(kept).context("restricting capabilities")?;
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        bail!("setting no_new_privs: {}", std::io::Error::last_os_error());
    }
    if let Some(filter) = &filter {
        filter.load().context("loading the seccomp filter")?;
    }
    // SAFETY: NUL-terminated path and a NULL-terminated argv of live CStrings;
    // the environment is inherited.
    unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
    bail!(
        "running {}: {}",
        program.display(),
        std::io::Error::last_os_error()
    )
}

/// The executable for `program`, searched in PATH when it has no slash.
fn resolve(program: &str) -> Result<std::path::PathBuf> {
    if program.contains('/') {
        return Ok(program.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if let Ok(c) = CString::new(candidate.as_os_str().as_encoded_bytes()) {
            // SAFETY: access(2) on a NUL-terminated path.
            if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
                return Ok(candidate);
            }
        }
    }
    bail!("{program}: command not found in PATH")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets_drop_all_then_add() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caps.yaml");
        std::fs::write(&path, "drop: [ALL]\nadd: [CHOWN, NET_BIND_SERVICE]\n").unwrap();
        let kept = read_capabilities(&path).unwrap();
        assert_eq!(
            kept,
            HashSet::from([
                caps::Capability::CAP_CHOWN,
                caps::Capability::CAP_NET_BIND_SERVICE
            ])
        );
        std::fs::write(&path, "drop: [ALL]\nadd: [WIZARDRY]\n").unwrap();
        assert!(
            read_capabilities(&path)
                .unwrap_err()
                .to_string()
                .contains("WIZARDRY")
        );
    }

    #[test]
    fn reads_spo_profiles_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            "apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata: {name: x}\n\
             spec:\n  defaultAction: SCMP_ACT_ERRNO\n  syscalls:\n  - action: SCMP_ACT_ALLOW\n    names: [read, write]\n",
        )
        .unwrap();
        let p = read_profile(&path).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(
            p.syscalls().as_ref().unwrap()[0].names(),
            &["read", "write"]
        );
        assert!(filter(&p).is_ok());
    }
}
