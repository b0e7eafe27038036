//! Dialers: one module per GOST dialer type string.

pub mod tcp;
pub mod tls;
