//! Write Vidfarm templates in plain Rust: typed operations, one [`Context`], one export macro.
//!
//! A template is a crate of `crate-type = ["cdylib"]` built for `wasm32-wasip2`. Inputs and
//! outputs are ordinary serde types; their JSON Schemas (which the host validates every
//! request against) are derived with `schemars`. A complete template:
//!
//! ```no_run
//! use vidfarm_guest::prelude::*;
//!
//! /// The payload of `greet`.
//! #[derive(Deserialize, JsonSchema)]
//! struct Greet {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Greeting {
//!     greeting: String,
//! }
//!
//! fn greet(ctx: &Context, input: Greet) -> Result<Greeting, TemplateError> {
//!     ctx.logger.info("greeting someone", json!({ "name": input.name }));
//!     let greeting = format!("Hello, {}!", input.name);
//!     ctx.logger.progress(0.5, "greeting composed");
//!     ctx.storage.put_text("greeting.txt", &greeting)?;
//!     Ok(Greeting { greeting })
//! }
//!
//! fn template() -> Template {
//!     Template::new("hello", "1.0.0", "Greets people by name.")
//!         .operation(Operation::new("greet", "Greet one person.", greet).webhooks())
//! }
//!
//! vidfarm_guest::export_template!(template);
//! ```
//!
//! Build it with `vidfarm template build <crate-dir>` and run it with
//! `vidfarm template run <file.wasm> greet --payload '{"name":"Ada"}'`.

mod choices;
mod context;
mod error;
mod template;
pub mod text;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "template",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_template_world",
        default_bindings_module: "vidfarm_guest::bindings",
        generate_all,
    });
}

pub use choices::{ModelChoice, ProviderName, RenderedVideo, VoiceProviderName};
pub use context::{Billing, Context, Jobs, Logger, Providers, Remotion, Speech, Storage};
pub use error::TemplateError;
pub use template::{Operation, Template};

/// The WIT types a template uses directly (requests, responses, enums).
pub mod wit {
    pub use crate::bindings::vidfarm::template::billing::{BillingEvent, EventType};
    pub use crate::bindings::vidfarm::template::jobs::{ChildOutcome, ChildRequest, ChildResult};
    pub use crate::bindings::vidfarm::template::logging::Level;
    pub use crate::bindings::vidfarm::template::providers::{
        ImageRequest, ImageResponse, LayoutAlign, LayoutRequest, LayoutResponse, LayoutZone, SpeechRequest,
        SpeechResponse, TextRequest, TextResponse, VideoRequest, VideoResponse,
    };
    pub use crate::bindings::vidfarm::template::remotion::{RenderRequest, RenderResult};
    pub use crate::bindings::vidfarm::template::speech::{NarrationRequest, SpeakRequest, VoiceProvider};
    pub use crate::bindings::vidfarm::template::storage::{PutOptions, StoredObject};
    pub use crate::bindings::vidfarm::template::types::{Customer, Environment, JobContext, Limits, Provider};
}

/// Everything a template file usually needs.
pub mod prelude {
    pub use crate::wit::*;
    pub use crate::{
        Context, ModelChoice, Operation, ProviderName, RenderedVideo, Template, TemplateError, VoiceProviderName,
    };
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::{Value, json};
}

#[doc(hidden)]
pub use {schemars as __schemars, serde_json as __serde_json};

/// Export a template: give it a function returning the [`Template`].
#[macro_export]
macro_rules! export_template {
    ($template:path) => {
        struct __VidfarmTemplate;

        impl $crate::bindings::Guest for __VidfarmTemplate {
            fn describe() -> $crate::bindings::vidfarm::template::types::Manifest {
                $template().manifest()
            }

            fn run(
                workflow: ::std::string::String,
                context: $crate::bindings::vidfarm::template::types::JobContext,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::bindings::vidfarm::template::types::TemplateError,
            > {
                $template().run(&workflow, context, &input)
            }
        }

        $crate::bindings::__export_template_world!(__VidfarmTemplate with_types_in $crate::bindings);
    };
}
