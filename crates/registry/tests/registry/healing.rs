//! healing.
