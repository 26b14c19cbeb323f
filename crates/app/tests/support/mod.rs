//! A node started from configuration in a data directory of its own, served on an
//! ephemeral loopback port until the test stops it.

#![allow(dead_code)] // each test binary uses its own part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use plexus_app::{App, AppError, Listening, Node};
use plexus_client::Client;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The data directory of the test node `name`, unique to this process.
pub(crate) fn data_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("plexus-{name}-{}", std::process::id()))
}

/// A node's configuration: `node` keys and `data_dir = dir` in `[node]`, the
/// gateway on an ephemeral loopback port, then `extra`.
pub(crate) fn config(dir: &Path, node: &str, extra: &str) -> String {
    format!(
        "[node]\n{node}data_dir = \"{}\"\n[gateway]\nbind = \"127.0.0.1:0\"\n{extra}",
        dir.display()
    )
}

/// A node serving its gateway until [`Served::stop`].
pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    pub(crate) node: Node,
    dir: PathBuf,
    stop: oneshot::Sender<()>,
    served: JoinHandle<Result<plexus_gateway::ServeReport, AppError>>,
}

impl Served {
    /// Starts the node `name` from [`config`] with `node` and `extra`, and serves it.
    pub(crate) async fn start(name: &str, node: &str, extra: &str) -> Self {
        let dir = data_dir(name);
        // A run that failed before stopping leaves its data; process ids come again.
        let _ = std::fs::remove_dir_all(&dir);
        let app = App::builder()
            .toml(config(&dir, node, extra))
            .start()
            .await
            .expect("the node starts");
        let listening = app.listen().await.expect("the gateway binds");
        Self::serve(app, listening, dir)
    }

    /// Serves `app` on `listening`; `dir`, its data directory, goes when it stops.
    pub(crate) fn serve(app: App, listening: Listening, dir: PathBuf) -> Self {
        let node = app.node().clone();
        let addr = listening.local_addr().expect("bound");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(app.serve(listening, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            node,
            dir,
            stop,
            served,
        }
    }

    /// A JSON-RPC client of the node.
    pub(crate) fn client(&self) -> Client {
        Client::new(&format!("http://{}", self.addr), None).expect("a client")
    }

    /// Stops the node: the gateway drains, the node stops, its data goes.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.served
            .await
            .expect("the serving task ends")
            .expect("the gateway drains");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
