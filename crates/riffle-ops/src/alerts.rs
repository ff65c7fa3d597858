//! `riffle alerts`: not built yet.
