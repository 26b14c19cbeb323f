//! Shared test doubles: recording tasks and services, event waiting, a tracing
//! capture and temporary scripts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use plexus_core::{CallContext, Service, ServiceDescriptor, ServiceError, async_trait};
use plexus_supervisor::{
    ChildSpec, SupervisorBuilder, SupervisorError, SupervisorEvent, SupervisorHandle,
};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};

/// An ordered record of what children did: `start:a`, `stop:a`, `exit:a`.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub(crate) fn push(&self, entry: String) {
        self.0.lock().push(entry);
    }

    pub(crate) fn entries(&self) -> Vec<String> {
        self.0.lock().clone()
    }

    /// Entries from `from` on.
    pub(crate) fn since(&self, from: usize) -> Vec<String> {
        self.0.lock()[from..].to_vec()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().len()
    }

    pub(crate) fn clear(&self) {
        self.0.lock().clear();
    }
}

/// A task child the test makes exit on demand; every start logs `start:`, and
/// `stop:` when asked to stop or `exit:` when told to exit.
pub(crate) struct Probe {
    name: String,
    log: Log,
    exits: mpsc::Sender<Result<(), String>>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Result<(), String>>>>,
}

impl Probe {
    pub(crate) fn new(name: &str, log: &Log) -> Self {
        let (exits, receiver) = mpsc::channel(16);
        Self {
            name: name.to_owned(),
            log: log.clone(),
            exits,
            receiver: Arc::new(tokio::sync::Mutex::new(receiver)),
        }
    }

    pub(crate) fn spec(&self) -> ChildSpec {
        let name = self.name.clone();
        let log = self.log.clone();
        let receiver = Arc::clone(&self.receiver);
        ChildSpec::task(self.name.clone(), move |ctx| {
            // Logged when the supervisor starts the run, before the task is polled.
            log.push(format!("start:{name}"));
            let name = name.clone();
            let log = log.clone();
            let receiver = Arc::clone(&receiver);
            async move {
                let mut exits = receiver.lock().await;
                tokio::select! {
                    _ = ctx.stopped() => {
                        log.push(format!("stop:{name}"));
                        Ok(())
                    }
                    Some(result) = exits.recv() => {
                        log.push(format!("exit:{name}"));
                        result
                    }
                }
            }
        })
    }

    /// Makes the current run exit with `result`.
    pub(crate) async fn exit(&self, result: Result<(), String>) {
        self.exits.send(result).await.unwrap();
    }
}

/// An in-process service that logs its starts and stops; its starts can be made to
/// fail and its stops to hang.
pub(crate) struct Recorder {
    name: String,
    log: Log,
    pub(crate) fail_starts: AtomicU32,
    pub(crate) hang_on_stop: AtomicBool,
    pub(crate) starts: AtomicU64,
}

impl Recorder {
    pub(crate) fn new(name: &str, log: &Log) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            log: log.clone(),
            fail_starts: AtomicU32::new(0),
            hang_on_stop: AtomicBool::new(false),
            starts: AtomicU64::new(0),
        })
    }

    /// One recorder for each of `names`, all logging to `log`.
    pub(crate) fn many(names: &[&str], log: &Log) -> Vec<Arc<Self>> {
        names.iter().map(|name| Self::new(name, log)).collect()
    }

    pub(crate) fn spec(self: &Arc<Self>) -> ChildSpec {
        ChildSpec::service(self.name.clone(), Arc::clone(self) as Arc<dyn Service>)
    }
}

#[async_trait]
impl Service for Recorder {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new(self.name.as_str(), "recorder")
    }

    async fn start(&self) -> Result<(), ServiceError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .fail_starts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            self.log.push(format!("start-failed:{}", self.name));
            return Err(ServiceError::unavailable("database unreachable"));
        }
        self.log.push(format!("start:{}", self.name));
        Ok(())
    }

    async fn stop(&self) -> Result<(), ServiceError> {
        self.log.push(format!("stop:{}", self.name));
        if self.hang_on_stop.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn call(&self, method: &str, _: Value, _: CallContext) -> Result<Value, ServiceError> {
        Err(ServiceError::MethodNotFound {
            method: method.to_owned(),
        })
    }
}

/// Waits (bounded) for the first event that `matches`, skipping others.
pub(crate) async fn wait_for(
    events: &mut broadcast::Receiver<SupervisorEvent>,
    within: Duration,
    matches: impl Fn(&SupervisorEvent) -> bool,
) -> SupervisorEvent {
    let found = tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Ok(event) if matches(&event) => return event,
                Ok(_) => {}
                Err(err) => panic!("event stream ended: {err}"),
            }
        }
    })
    .await;
    match found {
        Ok(event) => event,
        Err(_) => panic!("no matching event within {within:?}"),
    }
}

/// Builds the supervisor and starts it.
pub(crate) async fn start(builder: SupervisorBuilder) -> SupervisorHandle {
    builder.build().unwrap().start().await.unwrap()
}

/// Builds the supervisor and returns why it failed to start.
pub(crate) async fn start_err(builder: SupervisorBuilder) -> SupervisorError {
    builder.build().unwrap().start().await.unwrap_err()
}

/// Waits until the supervisor has handled everything that happened before: a
/// command is answered only after the exit being handled is done.
pub(crate) async fn settle(handle: &SupervisorHandle) {
    let answer = handle.report_failure("no-such-child", "barrier").await;
    assert!(answer.is_err());
}

pub(crate) fn is_exit_of(event: &SupervisorEvent, child: &str) -> bool {
    matches!(event, SupervisorEvent::ChildExited { child: c, .. } if c == child)
}

pub(crate) fn is_gave_up(event: &SupervisorEvent) -> bool {
    matches!(event, SupervisorEvent::GaveUp { .. })
}

pub(crate) fn is_stopped(event: &SupervisorEvent) -> bool {
    matches!(event, SupervisorEvent::Stopped { .. })
}

pub(crate) fn is_restart_of(event: &SupervisorEvent, child: &str) -> bool {
    matches!(event, SupervisorEvent::ChildRestarted { child: c, .. } if c == child)
}

/// A directory removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "plexus-supervisor-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Writes a shell script and returns its path.
    pub(crate) fn script(&self, name: &str, body: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, body).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One line a child process wrote, as logged.
#[derive(Clone, Debug, Default)]
pub(crate) struct Line {
    pub(crate) fields: BTreeMap<String, String>,
}

impl Line {
    pub(crate) fn get(&self, field: &str) -> &str {
        self.fields.get(field).map(String::as_str).unwrap_or("")
    }
}

/// A `tracing` subscriber of our own that keeps the events of one target.
struct Capture {
    target: &'static str,
    lines: watch::Sender<Vec<Line>>,
}

/// The lines every child process has written so far in this test binary.
///
/// The capture is installed once, as the global default, before any test spawns a
/// process: a per-thread default would race with `tracing`'s per-callsite interest
/// cache when tests run in parallel threads of one process. Tests tell their lines
/// apart by the unique child names they use.
pub(crate) fn captured_output() -> watch::Receiver<Vec<Line>> {
    static LINES: std::sync::OnceLock<watch::Sender<Vec<Line>>> = std::sync::OnceLock::new();
    LINES
        .get_or_init(|| {
            let (lines, _) = watch::channel(Vec::new());
            let capture = Capture {
                target: plexus_supervisor::OUTPUT_TARGET,
                lines: lines.clone(),
            };
            tracing::subscriber::set_global_default(capture).unwrap();
            lines
        })
        .subscribe()
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Capture {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == self.target
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line::default();
        event.record(&mut Fields(&mut line.fields));
        self.lines.send_modify(|lines| lines.push(line));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
