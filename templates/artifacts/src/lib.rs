//! The built-in templates as wasm components, compiled by this crate's build script.
//!
//! The host embeds them so `vidfarm serve` has working templates out of the box, and the
//! tests load them as real components.

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The path of a built-in template's component, by template id.
pub fn path(id: &str) -> Option<&'static str> {
    ALL.iter().find(|(name, _, _)| *name == id).map(|(_, path, _)| *path)
}

/// A built-in template's component bytes, by template id.
pub fn bytes(id: &str) -> Option<&'static [u8]> {
    ALL.iter().find(|(name, _, _)| *name == id).map(|(_, _, bytes)| *bytes)
}
