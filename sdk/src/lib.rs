//! `sigil-plugin-sdk`: what a plugin author depends on. Nothing is implemented yet: the plugin
//! platform issue fills this crate.
