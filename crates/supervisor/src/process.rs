//! External child processes: spawn, watch, signal, and log their output.
//!
//! Each process runs in its own process group so that stopping it reaches whatever
//! it started. A monitor task owns the [`tokio::process::Child`]: it waits for the
//! exit and sends the signals the supervisor asks for, so a signal never reaches a
//! process id that has already been reaped and perhaps reused. Two more tasks read
//! stdout and stderr line by line into `tracing` events with target
//! [`OUTPUT_TARGET`].

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use futures::FutureExt;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::child::ExitFuture;
use crate::{ExitReason, ProcessSpec, StartError};

/// The `tracing` target of the lines a child process writes. Each event carries the
/// fields `supervisor`, `child`, `pid`, `stream` (`"stdout"` or `"stderr"`) and
/// `truncated`, and the line as its message.
pub const OUTPUT_TARGET: &str = "plexus::child";

/// What the supervisor asks of a running process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    Run,
    Terminate,
    Kill,
}

/// A running process as the supervisor holds it.
pub(crate) struct Running {
    pub(crate) pid: u32,
    pub(crate) ask: watch::Sender<Ask>,
    pub(crate) exit: ExitFuture,
}

/// Who is writing, for the log lines.
#[derive(Clone)]
pub(crate) struct Origin {
    pub(crate) supervisor: Arc<str>,
    pub(crate) child: Arc<str>,
}

/// Spawns `spec` in a new process group with its output logged.
pub(crate) fn spawn(
    spec: &ProcessSpec,
    origin: &Origin,
    max_line_bytes: usize,
) -> Result<Running, StartError> {
    let mut command = Command::new(&spec.command);
    command
        .args(&spec.args)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.cwd {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|source| StartError::Spawn {
        command: spec.command.clone(),
        source,
    })?;
    let Some(pid) = child.id() else {
        // `id` is only `None` once the child has been reaped, which cannot have
        // happened before anyone waited on it.
        return Err(StartError::Spawn {
            command: spec.command.clone(),
            source: std::io::Error::other("the process had no id right after spawning"),
        });
    };
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(pump(stdout, origin.clone(), pid, "stdout", max_line_bytes));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(pump(stderr, origin.clone(), pid, "stderr", max_line_bytes));
    }
    let (ask, asks) = watch::channel(Ask::Run);
    let monitor = tokio::spawn(monitor(child, pid, asks));
    let exit = async move {
        match monitor.await {
            Ok(reason) => reason,
            Err(err) => ExitReason::Error {
                message: format!("the process monitor ended: {err}"),
            },
        }
    }
    .boxed()
    .shared();
    Ok(Running { pid, ask, exit })
}

/// Waits for the process to exit, sending the signals asked for meanwhile; then kills
/// what is left of its process group.
async fn monitor(mut child: Child, pid: u32, mut asks: watch::Receiver<Ask>) -> ExitReason {
    let raw = i32::try_from(pid).unwrap_or(i32::MAX);
    let group = Pid::from_raw(raw);
    let mut supervisor_gone = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            changed = asks.changed(), if !supervisor_gone => {
                let ask = match changed {
                    Ok(()) => *asks.borrow_and_update(),
                    Err(_) => {
                        supervisor_gone = true;
                        Ask::Kill
                    }
                };
                let signal = match ask {
                    Ask::Run => continue,
                    Ask::Terminate => Signal::SIGTERM,
                    Ask::Kill => Signal::SIGKILL,
                };
                // The child has not been reaped (its `wait` has not completed), so
                // its pid and group id still name it. If it left the group, signal
                // it alone.
                if killpg(group, signal).is_err() {
                    let _ = kill(group, signal);
                }
            }
        }
    };
    // Whatever the process started and left behind goes with it.
    let _ = killpg(group, Signal::SIGKILL);
    match status {
        Ok(status) => reason_of(status),
        Err(err) => ExitReason::Error {
            message: format!("waiting for the process failed: {err}"),
        },
    }
}

fn reason_of(status: ExitStatus) -> ExitReason {
    if let Some(code) = status.code() {
        return if code == 0 {
            ExitReason::Normal
        } else {
            ExitReason::Exited { code }
        };
    }
    match status.signal() {
        Some(signal) => ExitReason::Signaled {
            signal,
            name: Signal::try_from(signal)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| format!("signal {signal}")),
        },
        None => ExitReason::Error {
            message: format!("the process ended with an unknown status: {status}"),
        },
    }
}

/// Reads `reader` line by line, logging each line (cut at `max` bytes) until EOF.
async fn pump<R: AsyncRead + Unpin>(
    reader: R,
    origin: Origin,
    pid: u32,
    stream: &'static str,
    max: usize,
) {
    let mut reader = BufReader::new(reader);
    let mut line: Vec<u8> = Vec::new();
    let mut truncated = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(err) => {
                tracing::debug!(target: OUTPUT_TARGET, supervisor = %origin.supervisor,
                    child = %origin.child, pid, stream, error = %err, "output stream failed");
                break;
            }
        };
        if buf.is_empty() {
            if !line.is_empty() || truncated {
                emit(&origin, pid, stream, &line, truncated);
            }
            break;
        }
        let (chunk, used, end_of_line) = match buf.iter().position(|&b| b == b'\n') {
            Some(at) => (&buf[..at], at + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            truncated = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if end_of_line {
            emit(&origin, pid, stream, &line, truncated);
            line.clear();
            truncated = false;
        }
    }
}

fn emit(origin: &Origin, pid: u32, stream: &'static str, line: &[u8], truncated: bool) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    tracing::info!(
        target: OUTPUT_TARGET,
        supervisor = %origin.supervisor,
        child = %origin.child,
        pid,
        stream,
        truncated,
        "{text}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_reasons() {
        assert_eq!(reason_of(ExitStatus::from_raw(0)), ExitReason::Normal);
        assert_eq!(
            reason_of(ExitStatus::from_raw(3 << 8)),
            ExitReason::Exited { code: 3 }
        );
        assert_eq!(
            reason_of(ExitStatus::from_raw(9)),
            ExitReason::Signaled {
                signal: 9,
                name: "SIGKILL".to_owned()
            }
        );
    }
}
