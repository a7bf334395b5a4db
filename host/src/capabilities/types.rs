//! `vidfarm:template/types` has no functions; the host trait is empty.

use super::HostState;
use crate::runtime::bindings::types;

impl types::Host for HostState {}
