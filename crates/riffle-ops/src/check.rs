//! `riffle check`: not built yet.
