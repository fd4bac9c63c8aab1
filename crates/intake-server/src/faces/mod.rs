//! The protocol faces. Each parses its requests into the core's ingest call
//! and renders results and errors in its own wire shape.

pub(crate) mod native;
