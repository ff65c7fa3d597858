//! `riffle drill`: not built yet.
