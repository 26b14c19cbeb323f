//! Test helpers for anything that runs on NATS: a private `nats-server` with
//! JetStream, never the shared one, so a fault test can stop, kill and start it
//! again under running clients.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How long the server gets to start or stop.
const PATIENCE: Duration = Duration::from_secs(20);

/// A `nats-server -js` of the test's own on a free loopback port, its store in
/// its own folder (kept across [`PrivateNats::stop`] and [`PrivateNats::kill`],
/// removed when dropped); killed when dropped.
#[derive(Debug)]
pub struct PrivateNats {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    /// Starts one and waits until it accepts connections.
    ///
    /// # Panics
    /// When `nats-server` is not installed or does not listen within 20 s.
    pub async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let store =
            std::env::temp_dir().join(format!("plexus-nats-{}", uuid::Uuid::new_v4().simple()));
        let mut server = Self {
            port,
            store,
            child: None,
        };
        server.start_again().await;
        server
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again: same port, same store) and waits until it
    /// accepts connections.
    ///
    /// # Panics
    /// As [`PrivateNats::start`].
    pub async fn start_again(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server must be installed for these tests");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        tokio::time::timeout(PATIENCE, async {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            loop {
                every.tick().await;
                if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                    return;
                }
            }
        })
        .await
        .expect("the private nats-server listens");
    }

    /// Stops the server as an operator restarting it does (SIGTERM) and waits
    /// until it exited.
    ///
    /// # Panics
    /// When it does not exit within 20 s.
    pub async fn stop(&mut self) {
        self.signal(Signal::SIGTERM).await;
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    ///
    /// # Panics
    /// When it is not gone within 20 s.
    pub async fn kill(&mut self) {
        self.signal(Signal::SIGKILL).await;
    }

    async fn signal(&mut self, signal: Signal) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        tokio::time::timeout(PATIENCE, child.wait())
            .await
            .expect("the private nats-server exits")
            .expect("its exit status");
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
