//! A build step's process group, killed as a whole: makepkg runs as the leader of its own
//! group (`process_group(0)`), and its children (compilers, test suites) must not outlive the
//! step — at the time limit, or when the server stops mid-build and drops the step.

/// The process group of a build step (its leader started with `process_group(0)`): sent
/// SIGKILL when dropped, unless disarmed once the leader has been waited for (after that the
/// group id may be reused by another process).
pub(crate) struct GroupKiller(Option<rustix::process::Pid>);

impl GroupKiller {
    pub(crate) fn of(leader: Option<u32>) -> GroupKiller {
        let pid = leader
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 1)
            .and_then(rustix::process::Pid::from_raw);
        GroupKiller(pid)
    }

    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            use rustix::process::{kill_process_group, Signal};
            if let Err(e) = kill_process_group(group, Signal::KILL) {
                log::debug!("aur: cannot kill build process group {group:?}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;
    use std::time::Duration;

    /// A step's future dropped mid-way (the server stops mid-build) takes its whole process
    /// group along, not only the leader: no compiler outlives the build.
    #[tokio::test]
    async fn a_dropped_step_kills_its_whole_process_group() {
        use tokio::io::AsyncBufReadExt as _;
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "sleep 300 & echo $!; wait"])
            .stdout(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sh");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("read the pid");
        let grandchild = format!("/proc/{}/stat", line.trim());
        // A zombie waiting for its reaper counts as gone.
        let alive = || {
            std::fs::read_to_string(&grandchild).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| !r.trim_start().starts_with('Z'))
            })
        };
        assert!(alive(), "the background sleep runs");
        drop(GroupKiller::of(child.id()));
        let _ = child.wait().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive() {
            assert!(
                std::time::Instant::now() < deadline,
                "{grandchild} survived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Disarmed, it kills nothing.
        let mut child = tokio::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sleep");
        let mut group = GroupKiller::of(child.id());
        group.disarm();
        drop(group);
        let waited = tokio::time::timeout(Duration::from_millis(200), child.wait()).await;
        assert!(waited.is_err(), "a disarmed killer killed: {waited:?}");
    }
}
