//! AI provider adapters. Until a customer or the developer configures keys, development runs
//! are answered by the clearly labelled [`DevEchoProvider`].

mod dev_echo;
mod png;

pub use dev_echo::DevEchoProvider;
