//! The one `bindgen!` of the host: Rust types and traits for the `vidfarm:template` world.
//! Every other module imports the generated types from here.

wasmtime::component::bindgen!({
    world: "template",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use self::vidfarm::template::{billing, jobs, logging, providers, remotion, speech, storage, types};
