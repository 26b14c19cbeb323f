//! The external-service examples in `examples/`: each is started against a real node,
//! called through `/rpc`, and killed to see its instance go Unhealthy.
//!
//! They need `python3` with `websockets` (`pip install -r
//! examples/python-echo/requirements.txt`) and `node` with `ws` (`npm ci --prefix
//! examples/node-echo`); a missing one fails the test with the command to run.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use plexus_core::{InstanceId, ServiceStatus};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::support::{Harness, code};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn spawn(program: &str, script: &Path, envs: &[(&str, String)]) -> Child {
    let mut command = Command::new(program);
    command
        .arg(script)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
        .spawn()
        .unwrap_or_else(|e| panic!("could not start `{program}`: {e}"))
}

/// An example run as `program script` (`script` under `examples/`), its instance id
/// in the variable `instance_var`.
struct Example<'a> {
    program: &'a str,
    script: &'a str,
    instance_var: &'a str,
}

impl<'a> Example<'a> {
    fn new(program: &'a str, script: &'a str, instance_var: &'a str) -> Self {
        Self {
            program,
            script,
            instance_var,
        }
    }
}

/// Runs the example, calls it, restarts it under the same instance id, then kills it.
async fn exercise(h: &Harness, example: Example<'_>, service: &str, instance: &str) {
    let script = examples().join(example.script);
    let envs = [
        ("PLEXUS_URL", h.ws_url()),
        (example.instance_var, instance.to_owned()),
    ];
    let start = || spawn(example.program, &script, &envs);
    let mut child = start();
    h.wait_status(instance, ServiceStatus::Healthy).await;
    let said = h
        .call(&format!("{service}.say"), json!({"text": "hello"}))
        .await;
    assert_eq!(
        said["result"],
        json!({"text": "hello", "instance": instance}),
        "{said}"
    );
    let upper = h
        .call(&format!("{service}.upper"), json!({"text": "hello"}))
        .await;
    assert_eq!(upper["result"]["text"], "HELLO", "{upper}");
    let bad = h.call(&format!("{service}.say"), json!({"words": 1})).await;
    assert_eq!(code(&bad), -32602, "{bad}");

    child.kill().await.unwrap();
    h.wait_status(instance, ServiceStatus::Unhealthy).await;
    let reg = h.node.registry().get(&InstanceId::new(instance)).unwrap();
    assert_eq!(reg.reason.as_deref(), Some("connection lost"));
    let down = h
        .call(&format!("{service}.say"), json!({"text": "x"}))
        .await;
    assert_eq!(code(&down), -32006, "{down}");

    // Started again, it registers again under the same id and serves.
    let mut again = start();
    h.wait_status(instance, ServiceStatus::Healthy).await;
    let said = h
        .call(&format!("{service}.say"), json!({"text": "back"}))
        .await;
    assert_eq!(said["result"]["text"], "back", "{said}");
    again.kill().await.unwrap();
}

#[tokio::test]
async fn the_python_example_registers_serves_and_goes_unhealthy_when_killed() {
    let check = std::process::Command::new("python3")
        .args(["-c", "import websockets"])
        .status();
    assert!(
        check.is_ok_and(|s| s.success()),
        "the Python example needs python3 with `websockets`: pip install -r examples/python-echo/requirements.txt"
    );
    let h = Harness::start().await;
    let example = Example::new("python3", "python-echo/echo.py", "ECHO_INSTANCE");
    exercise(&h, example, "echo", "echo-py-test").await;
}

#[tokio::test]
async fn the_node_example_registers_serves_and_goes_unhealthy_when_killed() {
    let ws = examples().join("node-echo/node_modules/ws");
    assert!(
        ws.exists(),
        "the Node.js example needs `ws`: npm ci --prefix examples/node-echo"
    );
    let h = Harness::start().await;
    let example = Example::new("node", "node-echo/echo.js", "SHOUT_INSTANCE");
    exercise(&h, example, "shout", "shout-js-test").await;
}
