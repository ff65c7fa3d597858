//! How the drill breaks the store and brings it back.
//!
//! By default `CLIENT PAUSE <outage ms> ALL` on the Redis at `--store`, so every command of
//! every client waits — the honest "Redis hangs" failure. Redis holds even `CLIENT UNPAUSE`
//! while an `ALL` pause is in force (checked on Redis 7.0), so the drill pauses for exactly
//! the outage and the pause's own expiry is the restore: if the drill dies midway, Redis
//! still comes back on time. With `--break-cmd`/`--restore-cmd` the operator's shell
//! commands do it instead (e.g. stop a container), each under a 30 s deadline.

use std::time::Duration;

use super::config::BreakMethod;
use crate::probe::keyspace::Keyspace;

/// Makes the store unavailable for `outage` (the pause on `redis`, or the break command).
pub(super) async fn break_store(
    method: &BreakMethod,
    redis: Option<&mut Keyspace>,
    outage: Duration,
) -> Result<(), String> {
    match method {
        BreakMethod::ClientPause => match redis {
            Some(r) => {
                let mut cmd = redis::cmd("CLIENT");
                cmd.arg("PAUSE").arg(outage.as_millis() as u64).arg("ALL");
                r.query::<()>("CLIENT PAUSE", &cmd)
                    .await
                    .map_err(|e| e.to_string())
            }
            None => Err("no Redis connection".to_owned()),
        },
        BreakMethod::Commands { break_cmd, .. } => shell(break_cmd).await,
    }
}

/// Ends the outage once its time is up: checks that Redis answers again after the pause
/// ended by itself, or runs the restore command. `Err` says what is wrong.
pub(super) async fn restore(method: &BreakMethod, store: &str) -> Result<(), String> {
    match method {
        BreakMethod::ClientPause => {
            let ping = async {
                let mut r = Keyspace::connect(store, Duration::from_secs(2)).await?;
                r.query::<String>("PING", &redis::cmd("PING")).await
            };
            ping.await
                .map(drop)
                .map_err(|e| format!("Redis does not answer after the pause: {e}"))
        }
        BreakMethod::Commands { restore_cmd, .. } => shell(restore_cmd).await,
    }
}

/// After a break that failed: runs the restore command anyway, in case the break got
/// halfway (the pause needs nothing).
pub(super) async fn undo_failed_break(method: &BreakMethod) {
    if let BreakMethod::Commands { restore_cmd, .. } = method {
        let _ = shell(restore_cmd).await;
    }
}

/// Runs `cmd` with `sh -c` under a 30 s deadline.
async fn shell(cmd: &str) -> Result<(), String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(30), child).await {
        Err(_) => Err(format!("{cmd:?} did not finish within 30 s")),
        Ok(Err(e)) => Err(format!("{cmd:?} could not start: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "{cmd:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}
