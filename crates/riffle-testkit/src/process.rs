//! One spawned server process and the faults tests inflict on it: `SIGKILL`, `SIGSTOP` and
//! `SIGCONT`. Shared by every server of the test kit.

use std::process::Child;

use crate::signal;

/// A child process that may be running, stopped (`SIGSTOP`) or gone.
#[derive(Default)]
pub(crate) struct Process {
    child: Option<Child>,
    paused: bool,
}

impl Process {
    /// Takes charge of a freshly spawned child.
    pub(crate) fn set(&mut self, child: Child) {
        self.child = Some(child);
        self.paused = false;
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` when the child has exited (and forgets it).
    pub(crate) fn exited(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        let status = match self.child.as_mut() {
            Some(child) => child.try_wait()?,
            None => return Ok(None),
        };
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// `SIGKILL` (after `SIGCONT` if stopped, so the kill is delivered) and reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                let _ = signal(child.id(), "CONT");
                self.paused = false;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SIGSTOP`: the process hangs with its connections open.
    pub(crate) fn pause(&mut self) {
        if let Some(pid) = self.pid() {
            if signal(pid, "STOP").is_ok() {
                self.paused = true;
            }
        }
    }

    /// `SIGCONT` after [`pause`](Self::pause).
    pub(crate) fn resume(&mut self) {
        if let Some(pid) = self.pid() {
            if signal(pid, "CONT").is_ok() {
                self.paused = false;
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
