//! The Sigil plugin host (wasmtime component model). Nothing is implemented yet: the plugin
//! platform issue fills this crate, and until then the server loads no plugins.
