//! The plexus command.
fn main() {}
