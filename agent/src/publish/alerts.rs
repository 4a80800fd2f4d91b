//! Where the node agent's alerts go: one JSON line each on standard output,
//! a count in `imprint_agent_alerts_total`, a Warning Event on the pod
//! (reason from the rule; the API server's event series counts repeats),
//! and, when configured, Alertmanager's `POST /api/v2/alerts` (labels
//! `alertname`, `rule`, `severity`, `namespace`, `pod`, `container`,
//! `workload`, `node`; `endsAt` one cooldown later). Runs as a task of its
//! own behind the bounded alert queue: a slow API server or Alertmanager
//! never holds up detection, and what cannot be delivered is counted.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::alertmanager::Alertmanager;
use crate::detect::alert::Alert;
use crate::detect::sink::{self, AlertSender};
use crate::metrics::AgentMetrics;
use crate::task::AbortOnDrop;

/// Alerts sent to Alertmanager in one request at most.
const BATCH: usize = 64;
/// Longest an alert waits for its batch.
const BATCH_WAIT: Duration = Duration::from_secs(1);
/// Longest one Event call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The outputs of the node agent's alerts.
pub struct AlertOutputs {
    /// For Events.
    pub client: Client,
    /// This node's name (the Events' reporting instance).
    pub node: String,
    /// Counts.
    pub metrics: AgentMetrics,
    /// Alertmanager, if any.
    pub alertmanager: Option<Alertmanager>,
    /// The alert cooldown: how long an alert stays active in Alertmanager.
    pub cooldown: Duration,
}

/// An Event reason from a rule id: `package-manager` -> `PackageManager`.
pub fn reason(rule: &str) -> String {
    rule.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Starts the outputs; detection sends to the returned queue.
pub fn start(outputs: AlertOutputs) -> (AlertSender, AbortOnDrop) {
    let (sender, alerts) = sink::queue();
    let task = tokio::spawn(run(alerts, outputs, sender.clone()));
    (sender, AbortOnDrop(task))
}

async fn run(mut alerts: mpsc::Receiver<Alert>, outputs: AlertOutputs, sender: AlertSender) {
    let recorder = Recorder::new(
        outputs.client.clone(),
        Reporter {
            controller: "imprint-agent".into(),
            instance: Some(outputs.node.clone()),
        },
    );
    let mut pending: Vec<Alert> = Vec::new();
    let mut lost_reported = 0;
    loop {
        let next = if pending.is_empty() {
            alerts.recv().await
        } else {
            match tokio::time::timeout(BATCH_WAIT, alerts.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    flush(&outputs, &mut pending).await;
                    continue;
                }
            }
        };
        let Some(alert) = next else {
            flush(&outputs, &mut pending).await;
            return;
        };
        let lost = sender.lost();
        if lost > lost_reported {
            outputs.metrics.undelivered("queue", lost - lost_reported);
            lost_reported = lost;
        }
        deliver(&alert, &outputs, &recorder).await;
        if outputs.alertmanager.is_some() {
            pending.push(alert);
            if pending.len() >= BATCH {
                flush(&outputs, &mut pending).await;
            }
        }
    }
}

/// The JSON line, the count, the Event.
async fn deliver(alert: &Alert, outputs: &AlertOutputs, recorder: &Recorder) {
    if let Ok(line) = serde_json::to_string(alert) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    let subject = &alert.subject;
    outputs.metrics.alert(
        &alert.rule,
        alert.severity.as_str(),
        subject.namespace.as_deref().unwrap_or_default(),
    );
    let (Some(namespace), Some(pod)) = (&subject.namespace, &subject.pod) else {
        return;
    };
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(namespace.clone()),
        name: Some(pod.clone()),
        uid: subject.pod_uid.clone(),
        field_path: subject
            .container
            .as_ref()
            .map(|c| format!("spec.containers{{{c}}}")),
        ..ObjectReference::default()
    };
    let process = alert
        .process
        .as_ref()
        .map(|p| format!(" (pid {} {})", p.pid, p.args.join(" ")))
        .unwrap_or_default();
    let event = Event {
        type_: EventType::Warning,
        reason: reason(&alert.rule),
        note: Some(
            format!("{}{process}", alert.message)
                .chars()
                .take(1000)
                .collect(),
        ),
        action: "Detected".into(),
        secondary: None,
    };
    match tokio::time::timeout(CALL_TIMEOUT, recorder.publish(&event, &reference)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            debug!(%error, "alert Event not recorded");
            outputs.metrics.undelivered("event", 1);
        }
        Err(_) => outputs.metrics.undelivered("event", 1),
    }
}

/// Alertmanager's v2 alert for `alert`.
pub fn alertmanager_alert(alert: &Alert, node: &str, cooldown: Duration) -> serde_json::Value {
    let subject = &alert.subject;
    let mut labels: BTreeMap<&str, String> = BTreeMap::new();
    labels.insert("alertname", reason(&alert.rule));
    labels.insert("rule", alert.rule.clone());
    labels.insert("severity", alert.severity.as_str().into());
    labels.insert("node", subject.node.clone().unwrap_or_else(|| node.into()));
    for (label, value) in [
        ("namespace", &subject.namespace),
        ("pod", &subject.pod),
        ("container", &subject.container),
    ] {
        if let Some(value) = value {
            labels.insert(label, value.clone());
        }
    }
    if let Some(workload) = &subject.workload {
        labels.insert("workload", format!("{}/{}", workload.kind, workload.name));
    }
    let ends = chrono::DateTime::parse_from_rfc3339(&alert.time)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now())
        + chrono::Duration::from_std(cooldown).unwrap_or_default();
    json!({
        "labels": labels,
        "annotations": {
            "summary": alert.message,
            "alert": serde_json::to_string(alert).unwrap_or_default(),
        },
        "startsAt": alert.time,
        "endsAt": ends.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Posts the pending alerts to Alertmanager; what fails is counted.
async fn flush(outputs: &AlertOutputs, pending: &mut Vec<Alert>) {
    let Some(alertmanager) = &outputs.alertmanager else {
        pending.clear();
        return;
    };
    if pending.is_empty() {
        return;
    }
    let body: Vec<serde_json::Value> = pending
        .iter()
        .map(|a| alertmanager_alert(a, &outputs.node, outputs.cooldown))
        .collect();
    pending.clear();
    if let Err(error) = alertmanager.post(&body).await {
        warn!(%error, "alerts not delivered to Alertmanager");
        outputs
            .metrics
            .undelivered("alertmanager", body.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::{Observed, SCHEMA, Severity};
    use imprint_crd::report::{Subject, WorkloadRef};

    #[test]
    fn reasons_and_alertmanager_labels() {
        assert_eq!(reason("package-manager"), "PackageManager");
        assert_eq!(reason("unexpected-exec"), "UnexpectedExec");
        let alert = Alert {
            schema: SCHEMA.into(),
            rule: "terminal-shell".into(),
            severity: Severity::High,
            message: "m".into(),
            time: "2026-12-05T14:00:00.000Z".into(),
            subject: Subject {
                namespace: Some("shop".into()),
                pod: Some("web-1".into()),
                container: Some("web".into()),
                workload: Some(WorkloadRef {
                    kind: "Deployment".into(),
                    name: "web".into(),
                }),
                ..Subject::default()
            },
            outside_profile: false,
            process: None,
            ancestry: vec![],
            observed: Observed::Syscall { name: "x".into() },
            count: None,
        };
        let v = alertmanager_alert(&alert, "node-1", Duration::from_secs(3600));
        assert_eq!(v["labels"]["alertname"], "TerminalShell");
        assert_eq!(v["labels"]["node"], "node-1");
        assert_eq!(v["labels"]["workload"], "Deployment/web");
        assert_eq!(v["labels"]["severity"], "high");
        assert_eq!(v["endsAt"], "2026-12-05T15:00:00.000Z");
    }
}
