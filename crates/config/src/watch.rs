//! Watching the node's configuration file: reload it when it changes.
//!
//! The watcher listens on the file's directory, so a file replaced by a rename
//! (what editors and deployment tools do) is seen as well as one written in place.
//! Writing in place can be seen half-done; replacing the file is the safe way.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{ConfigError, ConfigStore};

/// A running watch on one file. Dropping it stops watching.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    // Dropped with the handle: stops the operating system's notifications.
    _watcher: RecommendedWatcher,
    task: JoinHandle<()>,
}

impl FileWatch {
    /// The file watched.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConfigStore {
    /// Watches the TOML file at `path` and reloads it
    /// ([`ConfigStore::reload_file`]) after each change, once it has been left
    /// alone for [`crate::ConfigOptions::watch_debounce`]. Each reload is a change
    /// like any other: a valid file becomes a new version and is announced; an
    /// invalid or unreadable one is refused with the reason (a
    /// [`crate::ConfigRejected`] event and a log line) and the version in force
    /// stays. Changes seen while a reload waits are folded into it.
    ///
    /// Must be called within a tokio runtime.
    pub fn watch_file(&self, path: impl Into<PathBuf>) -> Result<FileWatch, ConfigError> {
        let path: PathBuf = path.into();
        let failed = |reason: String| ConfigError::Watch {
            path: path.clone(),
            reason,
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| failed("watching needs a tokio runtime".to_owned()))?;
        let name: OsString = path
            .file_name()
            .ok_or_else(|| failed("is not a file name".to_owned()))?
            .to_owned();
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };

        // One slot is enough: a pending signal already means "read the file again".
        let (signal, mut signals) = mpsc::channel::<()>(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if concerns(&event, &name) => {
                    let _ = signal.try_send(());
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "configuration file watcher error"),
            })
            .map_err(|e| failed(e.to_string()))?;
        watcher
            .watch(&directory, RecursiveMode::NonRecursive)
            .map_err(|e| failed(e.to_string()))?;

        let store = self.clone();
        let debounce = self.options().watch_debounce;
        let file = path.clone();
        let task = runtime.spawn(async move {
            while signals.recv().await.is_some() {
                tokio::time::sleep(debounce).await;
                // Everything seen during the pause is covered by this one read.
                while signals.try_recv().is_ok() {}
                // The outcome is announced and logged by the store.
                let _ = store.reload_file(&file).await;
            }
        });
        Ok(FileWatch {
            path,
            _watcher: watcher,
            task,
        })
    }
}

/// Whether a notification may mean the watched file has new content.
fn concerns(event: &notify::Event, name: &OsString) -> bool {
    let relevant = match event.kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
    };
    relevant
        && event
            .paths
            .iter()
            .any(|p| p.file_name() == Some(name.as_os_str()))
}
