//! Validators of national codes, pure and shared by every crate that checks them: the server's
//! member and grant rules and the CA's subject checks use the same GB 11643 implementation.

pub mod idcard;
pub mod orgcode;
