//! Typed sections: a part of the document read as a Rust type, validated with
//! every change, and handed to readers lock-free.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;

use crate::validate::join;
use crate::{FieldErrors, Validate};

/// A handle on one typed section of the configuration.
///
/// [`Section::current`] is lock-free (one atomic load and a reference count), so
/// the call path can read it on every call; it always returns a whole value of
/// one version, never a mix of two. A service that wants new configuration
/// without a restart waits on [`Section::changed`], which wakes only when this
/// section's part of the document changed.
///
/// Clones share the value; each clone tracks on its own which values it has seen.
pub struct Section<T> {
    path: Arc<str>,
    value: Arc<ArcSwap<T>>,
    updates: watch::Receiver<Arc<T>>,
}

impl<T> Clone for Section<T> {
    fn clone(&self) -> Self {
        Self {
            path: Arc::clone(&self.path),
            value: Arc::clone(&self.value),
            updates: self.updates.clone(),
        }
    }
}

impl<T> fmt::Debug for Section<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("path", &self.path)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> Section<T> {
    /// The section's dotted path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The value in force.
    pub fn current(&self) -> Arc<T> {
        self.value.load_full()
    }

    /// Runs `f` on the value in force without taking a reference count.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.value.load())
    }

    /// Waits until this section's value changes and returns the new one; `None`
    /// once the store is gone (no change can come any more).
    pub async fn changed(&mut self) -> Option<Arc<T>> {
        self.updates.changed().await.ok()?;
        Some(Arc::clone(&self.updates.borrow_and_update()))
    }

    /// A `watch` receiver of this section's values, for `select!` loops and
    /// `tokio_stream::wrappers::WatchStream`. Its current value counts as seen.
    pub fn subscribe(&self) -> watch::Receiver<Arc<T>> {
        let mut receiver = self.updates.clone();
        receiver.mark_unchanged();
        receiver
    }
}

/// A value read and validated, waiting to be put in force.
pub(crate) type Prepared = Box<dyn Any + Send>;

/// A registered section with its type erased, as the store holds it.
pub(crate) trait Slot: Send + Sync {
    /// Its name, for errors.
    fn type_name(&self) -> &'static str;
    /// Reads and validates the section's part of a candidate document (`None`
    /// when absent), naming every field in error by its full path.
    fn prepare(&self, value: Option<&Value>) -> Result<Prepared, FieldErrors>;
    /// Puts a prepared value in force and wakes the section's subscribers.
    fn commit(&self, prepared: Prepared);
    /// For downcasting to the typed slot.
    fn as_any(&self) -> &dyn Any;
}

pub(crate) struct TypedSlot<T> {
    path: Arc<str>,
    default: Arc<T>,
    value: Arc<ArcSwap<T>>,
    updates: watch::Sender<Arc<T>>,
}

impl<T> TypedSlot<T>
where
    T: DeserializeOwned + Validate + Send + Sync + 'static,
{
    /// A slot whose value starts as `initial` (already prepared from the document).
    pub(crate) fn new(path: &str, default: Arc<T>, initial: Arc<T>) -> Self {
        let (updates, _) = watch::channel(Arc::clone(&initial));
        Self {
            path: Arc::from(path),
            default,
            value: Arc::new(ArcSwap::new(initial)),
            updates,
        }
    }

    pub(crate) fn handle(&self) -> Section<T> {
        Section {
            path: Arc::clone(&self.path),
            value: Arc::clone(&self.value),
            updates: self.updates.subscribe(),
        }
    }

    /// Reads and validates the section's value in a document (`None`: absent).
    pub(crate) fn read(&self, value: Option<&Value>) -> Result<Arc<T>, FieldErrors> {
        read_section(&self.path, value, &self.default)
    }
}

/// Reads a section's value: the default when absent or null, otherwise
/// deserialized (a type error names the field) and validated.
pub(crate) fn read_section<T>(
    path: &str,
    value: Option<&Value>,
    default: &Arc<T>,
) -> Result<Arc<T>, FieldErrors>
where
    T: DeserializeOwned + Validate,
{
    let value = match value {
        None | Some(Value::Null) => return Ok(Arc::clone(default)),
        Some(value) => value,
    };
    let typed: T = serde_path_to_error::deserialize(value).map_err(|error| {
        let field = join(path, &dotted(error.path()));
        FieldErrors::one(field, error.into_inner().to_string())
    })?;
    typed.validate().map_err(|errors| errors.under(path))?;
    Ok(Arc::new(typed))
}

/// A serde path as a dotted path (`retry.hosts.0`), the way the store addresses fields.
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let keys: Vec<String> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    keys.join(".")
}

impl<T> Slot for TypedSlot<T>
where
    T: DeserializeOwned + Validate + Send + Sync + 'static,
{
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn prepare(&self, value: Option<&Value>) -> Result<Prepared, FieldErrors> {
        self.read(value).map(|v| Box::new(v) as Prepared)
    }

    fn commit(&self, prepared: Prepared) {
        // `prepare` of this very slot made the box, so the downcast holds.
        if let Ok(value) = prepared.downcast::<Arc<T>>() {
            self.value.store(Arc::clone(&value));
            self.updates.send_replace(*value);
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
