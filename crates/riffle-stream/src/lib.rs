//! riffle-stream
