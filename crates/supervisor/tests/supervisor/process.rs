//! External child processes: real `/bin/sh` scripts, real time, bounded waits.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plexus_bus::{Bus, SubscribeOptions};
use plexus_supervisor::{
    ChildSpec, ChildState, ExitReason, ProcessSpec, StartError, Supervisor, SupervisorConfig,
    SupervisorError, SupervisorEvent, SupervisorHandle, SupervisorState,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::support::{
    Line, TempDir, captured_output, is_exit_of, is_gave_up, is_restart_of, start, start_err,
    wait_for,
};

const WITHIN: Duration = Duration::from_secs(10);

fn sh(script: &str) -> ProcessSpec {
    ProcessSpec::new("/bin/sh").arg(script)
}

/// Waits (bounded) until a line written by `child` matches.
async fn wait_line(
    lines: &mut watch::Receiver<Vec<Line>>,
    child: &str,
    matches: impl Fn(&Line) -> bool,
) -> Line {
    let matches = |l: &Line| l.get("child") == child && matches(l);
    let found = tokio::time::timeout(WITHIN, lines.wait_for(|all| all.iter().any(matches))).await;
    let found = found.map(|all| all.unwrap().iter().find(|l| matches(l)).cloned());
    match found {
        Ok(line) => line.unwrap(),
        Err(_) => panic!(
            "no line from `{child}` matched in time; captured: {:?}",
            *lines.borrow()
        ),
    }
}

/// Starts a supervisor "procs" with the one child.
async fn start_one(child: ChildSpec) -> SupervisorHandle {
    start(Supervisor::builder("procs").child(child)).await
}

fn pid_alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

#[tokio::test]
async fn a_killed_process_is_restarted_with_a_new_pid() {
    let _ = captured_output();
    let dir = TempDir::new();
    let script = dir.script("sleeper.sh", "while :; do sleep 1; done\n");
    let sup = Supervisor::builder("procs")
        .intensity(3, Duration::from_secs(10))
        .child(ChildSpec::process("sleeper", sh(&script)))
        .build()
        .unwrap();
    let mut events = sup.events();
    let handle = sup.start().await.unwrap();
    let first = handle.child("sleeper").unwrap().pid.unwrap();
    assert!(pid_alive(first));

    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();

    let exited = wait_for(&mut events, WITHIN, |e| is_exit_of(e, "sleeper")).await;
    assert_eq!(
        exited,
        SupervisorEvent::ChildExited {
            supervisor: "procs".into(),
            child: "sleeper".into(),
            reason: ExitReason::Signaled {
                signal: 9,
                name: "SIGKILL".into()
            },
            abnormal: true,
            pid: Some(first),
        }
    );
    let restarted = wait_for(&mut events, WITHIN, |e| is_restart_of(e, "sleeper")).await;
    let SupervisorEvent::ChildRestarted {
        restarts: 1,
        pid: Some(second),
        ..
    } = restarted
    else {
        panic!("{restarted:?}");
    };
    assert_ne!(second, first);
    assert!(pid_alive(second));
    let info = handle.child("sleeper").unwrap();
    assert_eq!(
        (info.state, info.restarts, info.pid),
        (ChildState::Running, 1, Some(second))
    );

    let report = handle.shutdown().await;
    assert!(report.killed().is_empty(), "{report:?}");
    assert!(!pid_alive(second));
}

#[tokio::test]
async fn a_process_that_dies_too_fast_is_given_up_on() {
    let _ = captured_output();
    let dir = TempDir::new();
    let script = dir.script("crash.sh", "echo 'cannot open config' >&2\nexit 1\n");
    let bus = Bus::new();
    let mut on_bus = bus
        .subscribe("plexus.supervisor.>", SubscribeOptions::new())
        .unwrap();
    let sup = Supervisor::builder("procs")
        .intensity(3, Duration::from_secs(10))
        .child(ChildSpec::process("crasher", sh(&script)))
        .bus(bus)
        .build()
        .unwrap();
    let mut events = sup.events();
    let handle = sup.start().await.unwrap();

    let gave_up = wait_for(&mut events, WITHIN, is_gave_up).await;
    assert_eq!(
        gave_up,
        SupervisorEvent::GaveUp {
            supervisor: "procs".into(),
            child: "crasher".into(),
            restarts: 4,
            max_restarts: 3,
            window_ms: 10_000,
            reason: ExitReason::Exited { code: 1 },
        }
    );
    assert_eq!(handle.state(), SupervisorState::Failed);
    let info = handle.child("crasher").unwrap();
    assert_eq!((info.state, info.restarts), (ChildState::Failed, 3));

    // On the bus, in order: started, then four exits with three restarts between
    // them, then the give-up.
    let mut topics = Vec::new();
    loop {
        let envelope = tokio::time::timeout(WITHIN, on_bus.recv())
            .await
            .unwrap()
            .unwrap();
        topics.push(
            envelope
                .topic()
                .as_str()
                .trim_start_matches("plexus.supervisor.")
                .to_owned(),
        );
        if envelope.topic().as_str() == "plexus.supervisor.gave_up" {
            let json: serde_json::Value =
                serde_json::from_slice(&envelope.payload().encode().unwrap()).unwrap();
            assert_eq!(json["child"], "crasher");
            assert_eq!(
                json["reason"],
                serde_json::json!({"kind": "exited", "code": 1})
            );
            break;
        }
    }
    assert_eq!(
        topics,
        [
            "child_started",
            "child_exited",
            "child_restarted",
            "child_exited",
            "child_restarted",
            "child_exited",
            "child_restarted",
            "child_exited",
            "gave_up"
        ]
    );
}

#[tokio::test]
async fn output_lines_reach_tracing_with_the_childs_name() {
    let mut lines = captured_output();
    let dir = TempDir::new();
    let script = dir.script(
        "talk.sh",
        "echo \"hello from $GREETING in $(pwd)\"\necho 'to stderr' >&2\nprintf 'abcdefghijklmnopqrstuvwxyz\\n'\nprintf 'no newline at the end'\n",
    );
    let spec = sh(&script).env("GREETING", "plexus").cwd(dir.path());
    let sup = Supervisor::builder("procs")
        .config(SupervisorConfig {
            max_line_bytes: 10,
            ..SupervisorConfig::default()
        })
        .child(ChildSpec::process("talker", spec).restart(plexus_supervisor::Restart::Temporary))
        .build()
        .unwrap();
    let handle = sup.start().await.unwrap();
    let pid = handle.child("talker").unwrap().pid.unwrap().to_string();

    // Lines longer than 10 bytes are cut to 10 and marked truncated.
    let hello = wait_line(&mut lines, "talker", |l| {
        l.get("message").starts_with("hello from")
    })
    .await;
    assert_eq!(hello.get("message"), "hello from");
    assert_eq!(hello.get("truncated"), "true");
    assert_eq!(hello.get("child"), "talker");
    assert_eq!(hello.get("supervisor"), "procs");
    assert_eq!(hello.get("stream"), "stdout");
    assert_eq!(hello.get("pid"), pid);

    let err = wait_line(&mut lines, "talker", |l| l.get("stream") == "stderr").await;
    assert_eq!(err.get("message"), "to stderr");
    assert_eq!(err.get("truncated"), "false");
    assert_eq!(err.get("child"), "talker");

    let alphabet = wait_line(&mut lines, "talker", |l| {
        l.get("message").starts_with("abc")
    })
    .await;
    assert_eq!(alphabet.get("message"), "abcdefghij");
    let tail = wait_line(&mut lines, "talker", |l| {
        l.get("message").starts_with("no newline")
    })
    .await;
    assert_eq!(tail.get("message"), "no newline");
    handle.shutdown().await;
}

#[tokio::test]
async fn env_and_working_directory_are_applied() {
    let mut lines = captured_output();
    let dir = TempDir::new();
    let script = dir.script("where.sh", "echo \"$GREETING\"\npwd\nexec sleep 30\n");
    let spec = sh(&script).env("GREETING", "plexus").cwd(dir.path());
    let handle = start_one(ChildSpec::process("where", spec)).await;
    wait_line(&mut lines, "where", |l| l.get("message") == "plexus").await;
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    wait_line(&mut lines, "where", |l| {
        std::path::Path::new(l.get("message")) == cwd
    })
    .await;
    handle.shutdown().await;
}

#[tokio::test]
async fn a_process_that_traps_sigterm_stops_gracefully() {
    let mut lines = captured_output();
    let dir = TempDir::new();
    let script = dir.script(
        "polite.sh",
        "trap 'echo bye; exit 0' TERM\necho ready\nwhile :; do sleep 1 & wait $!; done\n",
    );
    let handle = start_one(
        ChildSpec::process("polite", sh(&script)).shutdown_timeout(Duration::from_secs(5)),
    )
    .await;
    wait_line(&mut lines, "polite", |l| l.get("message") == "ready").await;

    let started = Instant::now();
    let report = handle.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(report.killed().is_empty());
    assert_eq!(report.stopped[0].reason, ExitReason::Shutdown);
    wait_line(&mut lines, "polite", |l| l.get("message") == "bye").await;
}

#[tokio::test]
async fn a_process_that_ignores_sigterm_is_killed_after_the_timeout() {
    let mut lines = captured_output();
    let dir = TempDir::new();
    let script = dir.script(
        "stubborn.sh",
        "trap '' TERM\necho ready\nwhile :; do sleep 1; done\n",
    );
    let timeout = Duration::from_millis(300);
    let handle =
        start_one(ChildSpec::process("stubborn", sh(&script)).shutdown_timeout(timeout)).await;
    let pid = handle.child("stubborn").unwrap().pid.unwrap();
    wait_line(&mut lines, "stubborn", |l| l.get("message") == "ready").await;

    let started = Instant::now();
    let report = handle.shutdown().await;
    assert!(started.elapsed() >= timeout);
    assert_eq!(report.killed(), ["stubborn"]);
    assert_eq!(
        report.stopped[0].reason,
        ExitReason::Signaled {
            signal: 9,
            name: "SIGKILL".into()
        }
    );
    assert!(!pid_alive(pid));
}

#[tokio::test]
async fn a_command_that_cannot_be_spawned_fails_the_start() {
    let _ = captured_output();
    let err = start_err(Supervisor::builder("procs").child(ChildSpec::process(
        "ghost",
        ProcessSpec::new("/nonexistent/plexus-test-binary"),
    )))
    .await;
    match err {
        SupervisorError::StartFailed {
            child,
            source: StartError::Spawn { command, source },
            ..
        } => {
            assert_eq!(child, "ghost");
            assert_eq!(command, "/nonexistent/plexus-test-binary");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn process_specs_come_from_configuration() {
    let spec: ProcessSpec = serde_json::from_value(serde_json::json!({
        "command": "/usr/bin/worker",
        "args": ["--queue", "jobs"],
        "env": {"RUST_LOG": "info"},
        "cwd": "/srv"
    }))
    .unwrap();
    assert_eq!(
        spec,
        ProcessSpec::new("/usr/bin/worker")
            .args(["--queue", "jobs"])
            .env("RUST_LOG", "info")
            .cwd("/srv")
    );
    let err = serde_json::from_value::<ProcessSpec>(serde_json::json!({
        "command": "x", "argv": []
    }))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `argv`"), "{err}");
}
