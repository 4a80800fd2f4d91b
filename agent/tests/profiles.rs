//! Round trip: record a command, recommend its profile and capabilities,
//! run it again under them with `imprint run`; remove what it needs and it fails.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

fn recommend(report: &Path, format: &str, out: &Path) {
    let output = imprint()
        .args(["recommend", "--format", format, "--output"])
        .arg(out)
        .arg(report)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "recommend --format {format}: {output:?}"
    );
}

fn run_under(profile: &Path, caps: &Path, command: &[String]) -> Output {
    imprint()
        .args(["run", "--seccomp"])
        .arg(profile)
        .arg("--caps")
        .arg(caps)
        .arg("--")
        .args(command)
        .output()
        .unwrap()
}

fn steps(dir: &Path, tag: &str) -> Vec<String> {
    vec![
        fixture().to_str().unwrap().to_string(),
        format!("mkdir:{}/{tag}", dir.display()),
        format!("write:{}/{tag}/f", dir.display()),
        format!("chown:{}/{tag}/f:1234", dir.display()),
        "rare".into(),
    ]
}

#[test]
fn a_recommended_profile_runs_the_command_and_one_less_syscall_breaks_it() {
    require_root();
    let (_work, dir) = workdir();
    let reports = dir.join("reports");
    let recorded = steps(&dir, "recorded");
    let (output, _) = record(
        &reports,
        &recorded.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(output.status.success(), "{output:?}");
    let report = std::fs::read_dir(&reports)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();

    let profile = dir.join("profile.json");
    let caps = dir.join("caps.yaml");
    recommend(&report, "oci", &profile);
    recommend(&report, "caps", &caps);
    let oci = read_json(&profile);
    assert_eq!(oci["defaultAction"], "SCMP_ACT_ERRNO");
    let allowed = strings(&oci["syscalls"][0]["names"]);
    assert!(
        allowed.contains(&"personality".to_string()) && allowed.contains(&"mkdir".to_string()),
        "{allowed:?}"
    );
    let caps_text = std::fs::read_to_string(&caps).unwrap();
    assert!(
        caps_text.contains("CHOWN") && caps_text.contains("ALL"),
        "{caps_text}"
    );

    // The same command under the profile and only the needed capabilities.
    let ok = run_under(&profile, &caps, &steps(&dir, "enforced"));
    assert!(
        ok.status.success(),
        "the recommended profile broke the command: {ok:?}"
    );
    assert!(dir.join("enforced/f").exists());

    // Without mkdir in the profile, the mkdir step fails with EPERM.
    let mut without = oci.clone();
    let names = without["syscalls"][0]["names"].as_array_mut().unwrap();
    names.retain(|n| n != "mkdir");
    let reduced = dir.join("reduced.json");
    std::fs::write(&reduced, serde_json::to_string(&without).unwrap()).unwrap();
    let denied = run_under(&reduced, &caps, &steps(&dir, "reduced"));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        !denied.status.success(),
        "ran without mkdir allowed: {denied:?}"
    );
    assert!(
        stderr.contains("mkdir") && stderr.contains("Operation not permitted"),
        "{stderr}"
    );

    // Without CAP_CHOWN, the chown step fails with EPERM.
    let no_chown = dir.join("no-chown.yaml");
    std::fs::write(&no_chown, "drop: [ALL]\nadd: []\n").unwrap();
    let denied = run_under(&profile, &no_chown, &steps(&dir, "nochown"));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        !denied.status.success(),
        "chown worked without CAP_CHOWN: {denied:?}"
    );
    assert!(
        stderr.contains("chown") && stderr.contains("Operation not permitted"),
        "{stderr}"
    );
}

#[test]
fn several_reports_merge_into_one_spo_profile() {
    require_root();
    let (_work, dir) = workdir();
    let a = dir.join("a");
    let b = dir.join("b");
    let fixture = fixture();
    let (oa, _) = record(&a, &[fixture.to_str().unwrap(), "rare"]);
    let (ob, _) = record(
        &b,
        &[
            fixture.to_str().unwrap(),
            &format!("mkdir:{}/m", dir.display()),
        ],
    );
    assert!(oa.status.success() && ob.status.success());
    let report = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path()
    };
    let output = imprint()
        .args(["recommend", "--format", "spo", "--name", "Web_Server"])
        .arg(report(&a))
        .arg(report(&b))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("apiVersion: security-profiles-operator.x-k8s.io/v1"),
        "{text}"
    );
    assert!(
        text.contains("kind: SeccompProfile") && text.contains("name: web-server"),
        "{text}"
    );
    assert!(
        text.contains("defaultAction: SCMP_ACT_ERRNO") && text.contains("SCMP_ARCH_"),
        "{text}"
    );
    assert!(
        text.contains("personality") && text.contains("mkdir"),
        "union of both reports: {text}"
    );
}

#[test]
fn malformed_or_truncated_reports_get_a_one_line_error() {
    let (_work, dir) = workdir();
    let good = r#"{"apiVersion":"imprint.dev/v1alpha1","kind":"ContainerBehaviorReport","metadata":{"name":"x"},
        "spec":{"subject":{},"syscalls":{"arch":"x86_64","names":["read"]}}}"#;
    let cases = [
        ("truncated.json", &good[..good.len() / 2], "malformed JSON"),
        (
            "wrong-kind.json",
            &good.replace("ContainerBehaviorReport", "Pod")[..],
            "kind is",
        ),
        (
            "no-syscalls.yaml",
            "apiVersion: imprint.dev/v1alpha1\nkind: ContainerBehaviorReport\nspec:\n  subject: {}\n",
            "syscalls",
        ),
        ("empty.json", "", "empty"),
    ];
    for (name, text, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let output = imprint()
            .args(["recommend", "--format", "oci"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} was accepted");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{name}: not one line: {stderr}"
        );
        assert!(
            stderr.contains(name) && stderr.contains(expected),
            "{name}: {stderr}"
        );
    }
    let path = dir.join("good.json");
    std::fs::write(&path, good).unwrap();
    let output = imprint()
        .args(["recommend", "--format", "oci"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn spo_profiles_validate_against_the_operators_crd_schema() {
    require_root();
    let crd_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/security-profiles-operator/seccompprofile.crd.yaml"
    );
    let crd: serde_json::Value =
        imprint_crd::yaml::from_str(&std::fs::read_to_string(crd_path).unwrap_or_else(|e| {
            panic!("{crd_path}: {e} (the shared fixtures are expected beside the repository)")
        }))
        .unwrap();
    let schema = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1")
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .expect("the v1 schema");
    let validator = jsonschema::validator_for(&schema).unwrap();

    let (_work, dir) = workdir();
    let (output, _) = record(&dir.join("r"), &[fixture().to_str().unwrap(), "rare"]);
    assert!(output.status.success());
    let report = std::fs::read_dir(dir.join("r"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let output = imprint()
        .args(["recommend", "--format", "spo", "--name", "fixture"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let profile: serde_json::Value =
        imprint_crd::yaml::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&profile)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    // The schema is strict enough to catch a broken profile.
    let mut broken = profile.clone();
    broken["spec"]["defaultAction"] = "SCMP_ACT_MAYBE".into();
    broken["spec"]["architectures"] = serde_json::json!(["SCMP_ARCH_Z80"]);
    assert!(!validator.is_valid(&broken));
}

/// Records `handle-usr1` then a short sleep, which never gets a signal;
/// returns the recommended OCI profile and capability set.
fn profile_of_a_quiet_sleeper(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let reports = dir.join("reports");
    let fixture = fixture();
    let ready = format!("write:{}/recorded-ready", dir.display());
    let (output, _) = record(
        &reports,
        &[
            fixture.to_str().unwrap(),
            "handle-usr1",
            &ready,
            "sleep:300",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let report = only_report_path(&reports);
    let profile = dir.join("profile.json");
    let caps = dir.join("caps.yaml");
    recommend(&report, "oci", &profile);
    recommend(&report, "caps", &caps);
    (profile, caps)
}

fn only_report_path(reports: &Path) -> std::path::PathBuf {
    std::fs::read_dir(reports)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
}

/// Runs the sleeper under the profile; once it sleeps, `disturb` gets its
/// pid; returns its output.
fn disturbed_under(
    dir: &Path,
    profile: &Path,
    caps: &Path,
    tag: &str,
    disturb: impl FnOnce(i32),
) -> Output {
    let ready = dir.join(format!("{tag}-ready"));
    let child = imprint()
        .args(["run", "--seccomp"])
        .arg(profile)
        .arg("--caps")
        .arg(caps)
        .arg("--")
        .arg(fixture())
        .args([
            "handle-usr1",
            &format!("write:{}", ready.display()),
            "sleep:3000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "never got ready");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // `imprint run` executes the command in its own process.
    std::thread::sleep(std::time::Duration::from_millis(200));
    disturb(child.id() as i32);
    child.wait_with_output().unwrap()
}

#[test]
fn a_profile_survives_a_signal_and_a_stop_it_never_saw() {
    require_root();
    let (_work, dir) = workdir();
    let (profile, caps) = profile_of_a_quiet_sleeper(&dir);

    // A handled signal: the handler returns through rt_sigreturn.
    let signalled = disturbed_under(&dir, &profile, &caps, "signal", |pid| {
        // SAFETY: signalling the child this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    });
    assert!(
        signalled.status.success()
            && String::from_utf8_lossy(&signalled.stdout).contains("SIGUSR1"),
        "a handled signal killed the enforced process: {signalled:?}"
    );

    // A stop and continue in the middle of a sleep: the kernel resumes the
    // sleep through restart_syscall.
    let stopped = disturbed_under(&dir, &profile, &caps, "stop", |pid| {
        // SAFETY: signalling the child this test started.
        unsafe {
            assert_eq!(libc::kill(pid, libc::SIGSTOP), 0);
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert_eq!(libc::kill(pid, libc::SIGCONT), 0);
        }
    });
    assert!(
        stopped.status.success(),
        "a stop and continue broke the enforced process: {stopped:?}"
    );
}
