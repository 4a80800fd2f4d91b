//! imprint's own cgroup: when it records every cgroup, imprint moves into a
//! cgroup of its own that the probes ignore, so that its own syscalls land
//! in no report; it moves back and removes that cgroup when it is done.

use std::path::PathBuf;

use crate::cgroups::{CgroupError, Hierarchy, IMPRINT_PARENT};

/// imprint's own cgroup while it records.
pub struct OwnCgroup {
    /// Its path in the hierarchy (`/imprint/<purpose>-<pid>`).
    path: String,
    /// Its directory and id, for the probes' ignore list.
    ignored: (PathBuf, u64),
    /// Where this process was before (moved back there on leaving).
    home: Option<String>,
}

impl OwnCgroup {
    /// Makes `/imprint/<purpose>-<pid>` and moves this process into it.
    pub fn enter(hierarchy: &Hierarchy, purpose: &str) -> Result<OwnCgroup, CgroupError> {
        let home = Hierarchy::path_of_process("self").ok();
        let path = format!("{IMPRINT_PARENT}/{purpose}-{}", std::process::id());
        let dir = hierarchy.create(&path)?;
        let joined = hierarchy
            .join(&path, 0)
            .and_then(|()| hierarchy.id_of(&path));
        match joined {
            Ok(id) => Ok(OwnCgroup {
                path,
                ignored: (dir, id),
                home,
            }),
            Err(error) => {
                hierarchy.leave(home.as_deref(), &path);
                Err(error)
            }
        }
    }

    /// The cgroup's directory and id, which the probes must ignore.
    pub fn ignored(&self) -> (PathBuf, u64) {
        self.ignored.clone()
    }

    /// Moves back home and removes the cgroup (and imprint's parent when
    /// no other recording uses it).
    pub fn leave(self, hierarchy: &Hierarchy) {
        hierarchy.leave(self.home.as_deref(), &self.path);
    }
}
