//! `riffle drift`: not built yet.
