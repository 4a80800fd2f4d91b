//! `imprint`: watches what processes and containers do from the kernel and
//! turns it into the least privilege that still lets them run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use imprint::pipeline::{RecordingOptions, require_root};
use imprint::probes::CapabilityHook;
use imprint::report::Format;
use imprint::{enforce, recommend, record, report};

#[derive(Parser)]
#[command(
    name = "imprint",
    version,
    about = "Least privilege for containers, learnt from the kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record what a command (and everything it starts) does, or every
    /// cgroup of the host for a while, and write one report per subject.
    Record {
        /// Folder for the reports.
        #[arg(long, short, default_value = "imprint-reports")]
        output: PathBuf,
        /// Report format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Record every cgroup of the host for this long (e.g. 30s, 5m),
        /// one report per cgroup. Ctrl-C ends early and still writes them.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        #[command(flatten)]
        recording: Recording,
        /// No reports for host cgroups (those without a container).
        #[arg(long)]
        no_host: bool,
        /// The command to run in a fresh cgroup and record until it exits.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Record like `record` and check every event, as it happens, against
    /// a learnt baseline and the built-in rules: alerts as JSON lines.
    Monitor {
        /// Baseline reports of the command (merged as `recommend` merges
        /// them; repeatable). None: only the built-in rules.
        #[arg(long = "baseline")]
        baselines: Vec<PathBuf>,
        /// With --duration: baseline reports of the host's cgroups, each
        /// checked against the report of its own name (from `record
        /// --duration`); cgroups without one get the built-in rules only.
        #[arg(long)]
        baseline_dir: Option<PathBuf>,
        /// Monitor every cgroup of the host for this long (e.g. 30s, 5m).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Alerts file (JSON lines, appended; default: standard output,
        /// which the command shares).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Also write the reports, as `record` does, to this folder.
        #[arg(long)]
        report_output: Option<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        #[command(flatten)]
        rules: RuleOptions,
        #[command(flatten)]
        recording: Recording,
        /// No detection or reports for host cgroups (those without a
        /// container).
        #[arg(long)]
        no_host: bool,
        /// The command to run in a fresh cgroup and monitor until it exits.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// List the detection rules: id, severity, on by default, description.
    Rules,
    /// Node agent (DaemonSet): record every pod container of this node and
    /// keep one ContainerBehaviorReport per container up to date.
    Agent {
        /// This node's name (the downward API's spec.nodeName).
        #[arg(long, env = "NODE_NAME")]
        node_name: String,
        /// How often changed reports are written.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        interval: Duration,
        #[command(flatten)]
        recording: Recording,
        /// Address serving /metrics, /healthz and /readyz.
        #[arg(long, default_value = "0.0.0.0:9090")]
        listen: std::net::SocketAddr,
        /// The agent's own pod name (downward API), never reported.
        #[arg(long, env = "POD_NAME")]
        pod_name: Option<String>,
        /// The agent's own namespace (downward API).
        #[arg(long, env = "POD_NAMESPACE")]
        pod_namespace: Option<String>,
        /// Record only: no detection, no alerts.
        #[arg(long)]
        no_detection: bool,
        #[command(flatten)]
        rules: RuleOptions,
        /// Alertmanager's base URL (http://HOST:PORT or https://HOST:PORT):
        /// alerts are also posted to its /api/v2/alerts.
        #[arg(long)]
        alertmanager_url: Option<hyper::Uri>,
        /// PEM file of the CAs that sign Alertmanager's certificate (for
        /// https://; default: the system's roots).
        #[arg(long, requires = "alertmanager_url")]
        alertmanager_ca_file: Option<PathBuf>,
    },
    /// Controller (Deployment): merge every workload's reports into a
    /// BehaviorProfile and write one SeccompProfile per container.
    Controller {
        /// Time without anything new before a profile is Stable (a
        /// BehaviorProfile's spec.stabilityWindow overrides it).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
        stability_window: Duration,
        /// security-profiles-operator API for the SeccompProfiles: v1
        /// (cluster-scoped) or v1beta1 (namespaced, SPO <= 0.10).
        #[arg(long, value_enum, default_value_t = imprint::controller::seccomp::SeccompApi::V1)]
        seccomp_api: imprint::controller::seccomp::SeccompApi,
        /// Address serving /metrics, /healthz and /readyz.
        #[arg(long, default_value = "0.0.0.0:9091")]
        listen: std::net::SocketAddr,
        /// Namespace of the leader-election Lease (default: POD_NAMESPACE).
        #[arg(long, env = "POD_NAMESPACE")]
        lease_namespace: Option<String>,
        /// Name of the leader-election Lease.
        #[arg(long, default_value = "imprint-controller")]
        lease_name: String,
        /// Run without leader election (a single replica).
        #[arg(long)]
        no_leader_election: bool,
        /// This replica's identity (default: POD_NAME, else host name and pid).
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// How often every profile is looked at again.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        resync: Duration,
        /// Apply each workload's derived NetworkPolicy (owned by its
        /// BehaviorProfile) once the profile is Stable; without it the
        /// policy is only proposed in the profile's status.
        #[arg(long)]
        apply_network_policies: bool,
    },
    /// Release every ContainerBehaviorReport from the fold finalizer, for an
    /// uninstall (the chart runs it after `helm uninstall`). Reports and
    /// profiles stay; a pod deleted afterwards takes its report with it.
    Cleanup {
        /// First wait until no pod matches this label selector (the agents:
        /// an agent's last write would put the finalizer back).
        #[arg(long)]
        wait_for_pods: Option<String>,
        /// Namespace of those pods (default: POD_NAMESPACE); only with
        /// --wait-for-pods.
        #[arg(long, env = "POD_NAMESPACE")]
        pods_namespace: Option<String>,
        /// Longest wait for those pods; then the reports are released
        /// anyway, and the pods still there are named.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
        timeout: Duration,
    },
    /// Turn reports into a seccomp profile or a capability set. Several
    /// reports merge into one profile.
    Recommend {
        /// Report files (JSON or YAML); for covered reports, the
        /// BehaviorProfile that covers them too.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// What to produce.
        #[arg(long, value_enum, default_value_t = Output::Spo)]
        format: Output,
        /// Name of the SeccompProfile object (default: from the first report).
        #[arg(long)]
        name: Option<String>,
        /// Seccomp profiles allow syscalls by name only, with no rule on
        /// their arguments (for runtimes or tools that take none).
        #[arg(long)]
        names_only: bool,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Run a command under a seccomp profile and a capability set, as a
    /// container runtime would, to try a recommendation on the host.
    Run {
        /// Seccomp profile: OCI JSON or a SeccompProfile.
        #[arg(long)]
        seccomp: Option<PathBuf>,
        /// Capability set (`drop: [ALL]`, `add: [...]`).
        #[arg(long)]
        caps: Option<PathBuf>,
        /// The command.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// Which rules alert, and how often.
#[derive(Args, Debug)]
struct RuleOptions {
    /// Turn a rule off: RULE, or NAMESPACE/RULE for one namespace
    /// (repeatable; `imprint rules` lists them).
    #[arg(long = "disable-rule")]
    disable_rules: Vec<String>,
    /// Turn on a rule that is off by default (repeatable).
    #[arg(long = "enable-rule")]
    enable_rules: Vec<String>,
    /// The same rule, container and item alert once per this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    cooldown: Duration,
    /// Alerts per container per second; the rest are counted in one
    /// summary alert.
    #[arg(long, default_value_t = 10)]
    max_alerts_per_second: u32,
    /// Address of the Kubernetes API server, for the
    /// kubernetes-api-connection rule (repeatable; ADDRESS:PORT).
    #[arg(long = "api-server")]
    api_servers: Vec<std::net::SocketAddr>,
}

impl RuleOptions {
    fn config(self) -> Result<imprint::detect::DetectorConfig> {
        Ok(imprint::detect::DetectorConfig {
            switches: imprint::detect::rules::RuleSwitches::new(
                &self.disable_rules,
                &self.enable_rules,
            )?,
            limits: imprint::detect::limit::Limits {
                cooldown: self.cooldown,
                per_second: self.max_alerts_per_second.max(1),
            },
            api_servers: self.api_servers,
        })
    }
}

/// What `record` and `agent` share: the hooks, the runtime, the filters.
#[derive(Args, Debug)]
struct Recording {
    /// Hook for capability checks: the tracepoint (Linux >= 6.14), fexit
    /// (kernels with BPF trampolines), or auto (the first that loads).
    #[arg(long, value_enum, default_value_t = CapabilityHook::Auto)]
    capability_hook: CapabilityHook,
    /// Container runtime socket used to name containers and pods
    /// (repeatable; each is followed). Default: every one of containerd's,
    /// k3s's, CRI-O's, Docker's (/var/run/docker.sock) and Podman's that
    /// exists; where Docker's API and containerd's both know a container,
    /// Docker's name for it wins. Unreachable: cgroups are reported by
    /// path, and resolution resumes when it answers.
    #[arg(long = "runtime-socket")]
    runtime_sockets: Vec<PathBuf>,
    /// API that names containers on every socket: containerd's, the CRI
    /// (CRI-O), Docker's Engine API (dockerd, Podman), or auto (CRI for a
    /// CRI-O socket, Docker's for docker.sock or podman.sock, else
    /// containerd's).
    #[arg(long, value_enum, default_value_t = imprint::runtime::RuntimeApi::Auto)]
    runtime_api: imprint::runtime::RuntimeApi,
    /// Only pods of this namespace (repeatable).
    #[arg(long = "namespace")]
    namespaces: Vec<String>,
    /// Never pods of this namespace (repeatable).
    #[arg(long = "exclude-namespace")]
    exclude_namespaces: Vec<String>,
    /// Root of the cgroup v2 hierarchy (default: the cgroup2 mount in
    /// /proc/self/mountinfo). In a pod, mount the host's (for example
    /// /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host) and name
    /// it here: the pod's own /sys/fs/cgroup shows only its cgroup namespace.
    #[arg(long, env = "IMPRINT_CGROUP_ROOT")]
    cgroup_root: Option<PathBuf>,
}

impl Recording {
    /// The pipeline's options; `no_host`: no reports for host cgroups.
    fn options(self, no_host: bool) -> RecordingOptions {
        RecordingOptions {
            capability_hook: self.capability_hook,
            runtime_sockets: self.runtime_sockets,
            runtime_api: self.runtime_api,
            filter: imprint::runtime::Filter {
                namespaces: self.namespaces,
                exclude_namespaces: self.exclude_namespaces,
                no_host,
            },
            cgroup_root: self.cgroup_root,
            track_processes: None,
        }
    }
}

/// What `recommend` produces.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    /// security-profiles-operator SeccompProfile (YAML).
    Spo,
    /// OCI runtime seccomp profile (JSON) for runc, crun, podman, docker.
    Oci,
    /// Capability set for a securityContext (YAML): drop ALL, add the needed.
    Caps,
    /// Kubernetes NetworkPolicy of the reports' workload (YAML); its pods'
    /// and peers' selectors and Services' target ports are read from the
    /// cluster's API (KUBECONFIG), which reports do not carry.
    #[value(name = "networkpolicy")]
    NetworkPolicy,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("IMPRINT_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("imprint: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Record {
            output,
            format,
            duration,
            recording,
            no_host,
            command,
        } => {
            require_root("record")?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let options = record::RecordOptions {
                output: Some(output),
                format,
                duration,
                command,
                recording: recording.options(no_host),
            };
            let code = runtime.block_on(record::record(options, None))?;
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Command::Monitor {
            baselines,
            baseline_dir,
            duration,
            output,
            report_output,
            format,
            rules,
            recording,
            no_host,
            command,
        } => {
            require_root("monitor")?;
            if command.is_empty() && duration.is_none() {
                anyhow::bail!("give a command after `--`, or --duration");
            }
            let options = imprint::monitor::MonitorOptions {
                record: record::RecordOptions {
                    output: report_output,
                    format,
                    duration,
                    command,
                    recording: recording.options(no_host),
                },
                baselines,
                baseline_dir,
                detector: rules.config()?,
                alerts: output,
            };
            let code = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(imprint::monitor::monitor(options))?;
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Command::Rules => {
            for rule in imprint::detect::rules::RULES {
                println!(
                    "{:<28} {:<9} {:<4} {}",
                    rule.id,
                    rule.severity.as_str(),
                    if rule.default_on { "on" } else { "off" },
                    rule.description
                );
            }
            Ok(0)
        }
        Command::Agent {
            node_name,
            interval,
            recording,
            listen,
            pod_name,
            pod_namespace,
            no_detection,
            rules,
            alertmanager_url,
            alertmanager_ca_file,
        } => {
            require_root("agent")?;
            let alertmanager = alertmanager_url
                .map(|url| {
                    imprint::publish::alertmanager::Alertmanager::new(
                        &url,
                        alertmanager_ca_file.as_deref(),
                    )
                })
                .transpose()?;
            let detection = if no_detection {
                None
            } else {
                let mut config = rules.config()?;
                config.api_servers.extend(in_cluster_api_server());
                Some(imprint::node::DetectionOptions {
                    config,
                    alertmanager,
                })
            };
            let options = imprint::node::AgentOptions {
                node: node_name,
                interval,
                listen,
                own_pod: pod_namespace.zip(pod_name),
                recording: recording.options(true),
                detection,
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(imprint::node::run(options))?;
            Ok(0)
        }
        Command::Controller {
            stability_window,
            seccomp_api,
            listen,
            lease_namespace,
            lease_name,
            no_leader_election,
            identity,
            resync,
            apply_network_policies,
        } => {
            let lease = if no_leader_election {
                None
            } else {
                let namespace = lease_namespace
                    .context("leader election needs --lease-namespace (or POD_NAMESPACE); or pass --no-leader-election")?;
                Some((namespace, lease_name))
            };
            let identity = identity.unwrap_or_else(|| {
                format!(
                    "{}-{}",
                    imprint::pipeline::hostname().unwrap_or_default(),
                    std::process::id()
                )
            });
            let options = imprint::controller::run::ControllerOptions {
                stability_window,
                seccomp_api,
                listen,
                lease,
                identity,
                resync,
                apply_network_policies,
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(imprint::controller::run::run(options))?;
            Ok(0)
        }
        Command::Cleanup {
            wait_for_pods,
            pods_namespace,
            timeout,
        } => {
            let wait_for_pods = match wait_for_pods {
                Some(selector) => Some((
                    pods_namespace
                        .context("--wait-for-pods needs --pods-namespace (or POD_NAMESPACE)")?,
                    selector,
                )),
                None => None,
            };
            let options = imprint::cleanup::CleanupOptions {
                wait_for_pods,
                timeout,
            };
            let summary = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let client = kube::Client::try_default()
                        .await
                        .context("connecting to the API server")?;
                    imprint::cleanup::run(client, &options).await
                })?;
            eprintln!(
                "imprint cleanup: released {} report(s); {} had no fold finalizer",
                summary.released, summary.untouched
            );
            if !summary.pods_left.is_empty() {
                eprintln!(
                    "imprint cleanup: still there when the wait ended: {} (a report they write again is held again: run imprint cleanup once they are gone)",
                    summary.pods_left.join(", ")
                );
            }
            Ok(0)
        }
        Command::Recommend {
            reports,
            format,
            name,
            names_only,
            output,
        } => {
            let style = if names_only {
                recommend::ArgumentStyle::NamesOnly
            } else {
                recommend::ArgumentStyle::Restricted
            };
            let text = recommend_text(&reports, format, name, style)?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(0)
        }
        Command::Run {
            seccomp,
            caps,
            command,
        } => {
            enforce::run(seccomp.as_deref(), caps.as_deref(), &command)?;
            Ok(1)
        }
    }
}

/// The API server as pods reach it (the `kubernetes` Service), from the
/// environment every pod gets.
fn in_cluster_api_server() -> Option<std::net::SocketAddr> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").ok()?;
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .ok()
}

fn recommend_text(
    paths: &[PathBuf],
    format: Output,
    name: Option<String>,
    style: recommend::ArgumentStyle,
) -> Result<String> {
    let (reports, paths) = read_reports(paths)?;
    let paths = &paths[..];
    let merged = recommend::merge(reports.iter().map(|r| &r.spec));
    for skipped in &merged.skipped {
        tracing::warn!("skipped {skipped}");
    }
    if matches!(format, Output::Spo | Output::Oci) {
        for note in recommend::argument_rules(&merged, style).notes {
            tracing::info!("{note}");
        }
    }
    Ok(match format {
        Output::Spo => {
            let name = name
                .or_else(|| reports[0].metadata.name.clone())
                .unwrap_or_else(|| "imprint-profile".into());
            report::to_text(&recommend::spo_profile(&name, &merged, style), Format::Yaml)
        }
        Output::Oci => report::to_text(&recommend::oci_profile_with(&merged, style), Format::Json),
        Output::Caps => report::to_text(&recommend::capabilities(&merged), Format::Yaml),
        Output::NetworkPolicy => network_policy_text(paths, &reports, name)?,
    })
}

/// The reports of `paths` (and their paths), a covered one made whole with
/// the BehaviorProfile among `paths` that covers it.
fn read_reports(
    paths: &[PathBuf],
) -> Result<(
    Vec<imprint_crd::report::ContainerBehaviorReport>,
    Vec<PathBuf>,
)> {
    let mut reports = Vec::new();
    let mut profiles = Vec::new();
    for path in paths {
        match report::read_input(path)? {
            report::Input::Report(r) => reports.push((path.clone(), *r)),
            report::Input::Profile(p) => profiles.push(*p),
        }
    }
    anyhow::ensure!(
        !reports.is_empty(),
        "no report among the files (only BehaviorProfiles)"
    );
    let mut whole = Vec::new();
    let mut kept = Vec::new();
    for (path, mut report) in reports {
        if let Some(covered) = report.spec.covered.clone() {
            let base = profiles
                .iter()
                .filter(|p| p.metadata.uid.as_deref() == Some(covered.uid.as_str()))
                .flat_map(|p| p.status.iter().flat_map(|s| &s.containers))
                .find(|c| Some(&c.name) == report.spec.subject.container.as_ref())
                .and_then(imprint::coverage::Base::of);
            let Some(base) = base else {
                anyhow::bail!(
                    "{}: covered by the BehaviorProfile {:?} (uid {}): it holds only what that profile had not learnt; give that profile's file too (kubectl get bp {} -o yaml)",
                    path.display(),
                    covered.profile,
                    covered.uid,
                    covered.profile
                );
            };
            report.spec = base.expand(&report.spec);
        }
        whole.push(report);
        kept.push(path);
    }
    Ok((whole, kept))
}

/// The NetworkPolicy of the reports' workload, its notes as comments above it.
fn network_policy_text(
    paths: &[PathBuf],
    reports: &[imprint_crd::report::ContainerBehaviorReport],
    name: Option<String>,
) -> Result<String> {
    use imprint::controller::network_recommend;
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let specs: Vec<_> = reports.iter().map(|r| &r.spec).collect();
    let (policy, derived) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let client = network_recommend::client().await?;
            network_recommend::recommend(
                client,
                &names,
                &specs,
                name,
                network_recommend::LIST_TIMEOUT,
            )
            .await
        })?;
    let mut text = String::new();
    for note in &derived.notes {
        text.push_str(&format!("# {note}\n"));
    }
    if !derived.unobserved_listeners.is_empty() {
        text.push_str(&format!(
            "# WARNING: no connection was seen to these listening ports, so this policy refuses them: {}\n",
            derived.unobserved_listeners.join(", ")
        ));
    }
    text.push_str(&report::to_text(&policy, Format::Yaml));
    Ok(text)
}
