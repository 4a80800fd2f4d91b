//! The cgroup v2 (unified) hierarchy: where it is mounted, cgroup ids, and
//! the cgroups imprint makes for the commands it records.
//!
//! A cgroup id as the probes see it (`bpf_get_current_cgroup_id()`) is the
//! inode number of the cgroup's directory in the unified hierarchy. Pure v2
//! hosts mount it at `/sys/fs/cgroup`; hybrid hosts at
//! `/sys/fs/cgroup/unified`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Errors of cgroup handling.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 file system is mounted.
    #[error("no cgroup v2 (unified) hierarchy is mounted; imprint needs one (pure v2 or hybrid)")]
    NoUnifiedHierarchy,
    /// The given directory is not a cgroup v2 file system.
    #[error("{0} is not a cgroup v2 file system (nor is its `unified` directory)")]
    NotAHierarchyRoot(PathBuf),
    /// A cgroup file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The cgroup below which imprint makes its own (`/imprint/record-<pid>`,
/// `/imprint/self-<pid>`).
pub const IMPRINT_PARENT: &str = "/imprint";

/// The mounted unified hierarchy.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    root: PathBuf,
}

impl Hierarchy {
    /// Finds the cgroup2 mount in `/proc/self/mountinfo`.
    pub fn detect() -> Result<Self, CgroupError> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(io_error("read", Path::new("/proc/self/mountinfo")))?;
        Self::from_mountinfo(&mountinfo).ok_or(CgroupError::NoUnifiedHierarchy)
    }

    /// The hierarchy mounted at `root`, given explicitly (in a pod, the
    /// host's hierarchy bind-mounted from the host: the pod's own
    /// `/sys/fs/cgroup` shows only its cgroup namespace).
    /// On a hybrid host the cgroup v1 root may be given: its `unified`
    /// directory is then used. Any cgroup2 mount counts, also one made in a
    /// cgroup namespace (a node that is itself a container, as in kind).
    pub fn at(root: &Path) -> Result<Self, CgroupError> {
        [root.to_path_buf(), root.join("unified")]
            .into_iter()
            .find(|dir| is_cgroup2(dir))
            .map(|root| Hierarchy { root })
            .ok_or_else(|| CgroupError::NotAHierarchyRoot(root.to_path_buf()))
    }

    /// The hierarchy at `root` when given, else the one mounted for us.
    pub fn find(root: Option<&Path>) -> Result<Self, CgroupError> {
        match root {
            Some(root) => Self::at(root),
            None => Self::detect(),
        }
    }

    /// Picks the cgroup2 mount point from mountinfo text (the shortest path
    /// wins, so a nested bind mount does not hide the real root).
    pub fn from_mountinfo(mountinfo: &str) -> Option<Self> {
        mountinfo
            .lines()
            .filter_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                let fstype = right.split_whitespace().next()?;
                let root_in_fs = left.split_whitespace().nth(3)?;
                let mount_point = left.split_whitespace().nth(4)?;
                (fstype == "cgroup2" && root_in_fs == "/").then(|| PathBuf::from(mount_point))
            })
            .min_by_key(|p| p.as_os_str().len())
            .map(|root| Hierarchy { root })
    }

    /// Mount point of the hierarchy.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of the cgroup at `path` ("/a/b" relative to the root).
    pub fn dir(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The cgroup id of the cgroup at `path`.
    pub fn id_of(&self, path: &str) -> Result<u64, CgroupError> {
        let dir = self.dir(path);
        fs::metadata(&dir)
            .map(|m| m.ino())
            .map_err(io_error("stat", &dir))
    }

    /// The unified-hierarchy cgroup path of process `pid` ("self" for us).
    pub fn path_of_process(pid: &str) -> Result<String, CgroupError> {
        let file = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let text = fs::read_to_string(&file).map_err(io_error("read", &file))?;
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .unwrap_or("/")
            .to_string())
    }

    /// Every cgroup below the root, as id -> path ("/" for the root),
    /// at most `limit` entries. Unreadable directories are skipped.
    pub fn scan(&self, limit: usize) -> HashMap<u64, String> {
        let mut found = HashMap::new();
        let mut stack = vec![(self.root.clone(), String::from("/"))];
        while let Some((dir, path)) = stack.pop() {
            if found.len() >= limit {
                break;
            }
            let Ok(meta) = fs::metadata(&dir) else {
                continue;
            };
            found.insert(meta.ino(), path.clone());
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let child = if path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{path}/{name}")
                    };
                    stack.push((entry.path(), child));
                }
            }
        }
        found
    }

    /// Makes the cgroup at `path` (and its parents).
    pub fn create(&self, path: &str) -> Result<PathBuf, CgroupError> {
        let dir = self.dir(path);
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        Ok(dir)
    }

    /// Moves process `pid` (0: the caller) into the cgroup at `path`.
    pub fn join(&self, path: &str, pid: u32) -> Result<(), CgroupError> {
        let procs = self.dir(path).join("cgroup.procs");
        fs::write(&procs, pid.to_string()).map_err(io_error("write", &procs))
    }

    /// Removes the cgroup at `path` and every cgroup below it, deepest
    /// first. Cgroups that still hold processes are left and reported.
    pub fn remove_tree(&self, path: &str) -> Vec<PathBuf> {
        let mut left = Vec::new();
        remove_dir_tree(&self.dir(path), &mut left);
        left
    }

    /// Moves this process back to `home` (where it was before joining a
    /// cgroup of its own), then removes `own` and, when no other recording
    /// uses it, imprint's parent cgroup.
    pub fn leave(&self, home: Option<&str>, own: &str) {
        if let Some(home) = home
            && let Err(error) = self.join(home, 0)
        {
            tracing::warn!(%error, "could not move back to the original cgroup");
        }
        self.remove_tree(own);
        self.remove_parent_if_unused();
    }

    /// Removes imprint's parent cgroup when no recording uses it any more.
    pub fn remove_parent_if_unused(&self) {
        let _ = fs::remove_dir(self.dir(IMPRINT_PARENT));
    }

    /// Removes cgroups left by imprint processes that are gone (killed
    /// before they could clean up), keeping any that still hold processes.
    pub fn remove_stale(&self) {
        let Ok(entries) = fs::read_dir(self.dir(IMPRINT_PARENT)) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name
                .rsplit_once('-')
                .and_then(|(_, pid)| pid.parse::<u32>().ok());
            if let Some(pid) = owner
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                self.remove_tree(&format!("{IMPRINT_PARENT}/{name}"));
            }
        }
    }
}

fn remove_dir_tree(dir: &Path, left: &mut Vec<PathBuf>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_dir_tree(&entry.path(), left);
            }
        }
    }
    if fs::remove_dir(dir).is_err() && dir.exists() {
        left.push(dir.to_path_buf());
    }
}

/// Whether `path` is a cgroup imprint made for itself (`/imprint/...`).
pub fn is_imprints_own(path: &str) -> bool {
    path == IMPRINT_PARENT
        || path
            .strip_prefix(IMPRINT_PARENT)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The longest stem [`file_stem`] returns: a report's file name (stem,
/// extension) stays well within the 255 bytes a file name may have.
pub const MAX_STEM: usize = 200;

/// File-name-safe form of a cgroup path: "/" becomes "root", separators "_".
/// A path longer than [`MAX_STEM`] (nested containers, as a kind node's
/// seen from the host) keeps its head and its tail around a hash of the
/// whole path.
pub fn file_stem(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return "root".into();
    }
    let stem: String = trimmed
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.len() <= MAX_STEM {
        return stem;
    }
    // ASCII only, so any byte is a boundary.
    let hash = crate::kube_names::short_hash(path);
    let keep = (MAX_STEM - hash.len() - 2) / 2;
    format!("{}-{hash}-{}", &stem[..keep], &stem[stem.len() - keep..])
}

/// Whether `dir` is on a cgroup v2 file system (statfs magic).
fn is_cgroup2(dir: &Path) -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut stat) };
    rc == 0 && stat.f_type as i64 == CGROUP2_SUPER_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unified_mount_on_hybrid_and_pure_v2_hosts() {
        let hybrid = "35 25 0:30 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro\n\
                      36 35 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                      37 35 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            Hierarchy::from_mountinfo(hybrid).unwrap().root(),
            Path::new("/sys/fs/cgroup/unified")
        );
        let pure = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
                    90 30 0:26 /kubepods /var/lib/x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            Hierarchy::from_mountinfo(pure).unwrap().root(),
            Path::new("/sys/fs/cgroup")
        );
        assert!(Hierarchy::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n").is_none());
    }

    #[test]
    fn file_stems_are_safe_and_readable() {
        assert_eq!(file_stem("/"), "root");
        assert_eq!(
            file_stem("/system.slice/cron.service"),
            "system.slice_cron.service"
        );
        assert_eq!(file_stem("/a b/c:d"), "a_b_c_d");
    }

    /// A container of a kind node, seen from the host: its cgroup path is
    /// longer than a file name may be (255 bytes), and recording every
    /// cgroup failed to write its report, and with it the whole recording.
    #[test]
    fn file_stems_of_deep_cgroups_fit_a_file_name() {
        let node = "a".repeat(64);
        let deep = |pod: &str| {
            format!(
                "/imprint-kind/{node}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
                 kubelet-kubepods-besteffort-pod{pod}.slice/cri-containerd-{}.scope",
                "c".repeat(64)
            )
        };
        let (one, other) = (deep("82e28878_5ecc"), deep("82e28878_5ecd"));
        let (a, b) = (file_stem(&one), file_stem(&other));
        for stem in [&a, &b] {
            assert!(stem.len() <= MAX_STEM, "{} bytes: {stem}", stem.len());
        }
        assert_ne!(a, b, "two cgroups, one file");
        assert!(a.starts_with("imprint-kind_aaaa"), "{a}");
        assert!(a.ends_with("cccc.scope"), "{a}");
        // Short paths keep their plain form.
        assert_eq!(file_stem("/system.slice"), "system.slice");
    }
}
