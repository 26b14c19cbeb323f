//! Fault tolerance for every call Plexus makes (being built: see issue 4).
