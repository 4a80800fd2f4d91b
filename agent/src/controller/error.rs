//! The controller's one error type; each variant has a metric label
//! (`imprint_controller_reconcile_errors_total{error=...}`).

/// Why a reconcile failed (it is tried again at the next resync).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or creating the BehaviorProfile failed.
    #[error("BehaviorProfile {name}: {source}")]
    Profile {
        /// The profile's name.
        name: String,
        /// The API's error.
        source: kube::Error,
    },
    /// Writing a workload's archive report failed.
    #[error("writing archive {name}: {source}")]
    Archive {
        /// The archive's name.
        name: String,
        /// The API's error.
        source: kube::Error,
    },
    /// Releasing a folded report from the fold finalizer failed.
    #[error("releasing report {name}: {source}")]
    Release {
        /// The report's name.
        name: String,
        /// The API's error.
        source: kube::Error,
    },
    /// The reconcile took longer than its bound (an API server answering
    /// slowly must not keep a replica writing past its Lease).
    #[error("not done within {0:?}")]
    TimedOut(std::time::Duration),
    /// This replica stopped holding the Lease: it writes nothing more.
    #[error(transparent)]
    NotLeading(#[from] super::leader::NotLeading),
    /// Writing the BehaviorProfile's status failed.
    #[error("status of {name}: {source}")]
    Status {
        /// The profile's name.
        name: String,
        /// The API's error.
        source: kube::Error,
    },
}

impl Error {
    /// Every metric label, so each series exists (at 0) from the start.
    pub const LABELS: [&'static str; 6] = [
        "profile",
        "archive",
        "release",
        "status",
        "not_leading",
        "timeout",
    ];

    /// The `error` label of `reconcile_errors`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Profile { .. } => Self::LABELS[0],
            Error::Archive { .. } => Self::LABELS[1],
            Error::Release { .. } => Self::LABELS[2],
            Error::Status { .. } => Self::LABELS[3],
            Error::NotLeading(_) => Self::LABELS[4],
            Error::TimedOut(_) => Self::LABELS[5],
        }
    }
}
