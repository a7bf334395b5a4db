//! Object storage backends and the key rules that confine templates to their prefixes.

pub mod keys;
mod local;

pub use local::LocalObjectStore;
