//! `riffle cost`: not built yet.
