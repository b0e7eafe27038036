//! Dialers: one module per GOST dialer type string.

pub mod mtls;
pub mod mws;
pub mod tcp;
pub mod tls;
pub mod ws;
