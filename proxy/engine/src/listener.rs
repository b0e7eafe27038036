//! Listeners: one module per GOST listener type string.

pub mod tcp;
pub mod udp;
