//! `riffle loadtest`: not built yet.
