//! Embeds the plugin contract (`../wit/sigil-plugin.wit`) in the SDK's world macros: each
//! `export_*!` generates its world's export bindings inside the plugin crate, where a path to
//! the WIT files would not resolve, so the WIT travels as an inline literal.
#![allow(clippy::expect_used)] // a build step that fails must stop the build

use std::path::PathBuf;

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let wit = here.join("../wit/sigil-plugin.wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let text = std::fs::read_to_string(&wit).expect("../wit/sigil-plugin.wit");
    assert!(!text.contains("\"#####"), "the WIT text must not contain the raw string delimiter");
    let out = format!(
        "/// Generates the bindings of one world of the contract in the calling crate.\n\
         #[doc(hidden)]\n\
         #[macro_export]\n\
         macro_rules! __sigil_world {{\n\
         ($world:tt, $($rest:tt)*) => {{\n\
         ::sigil_plugin_sdk::__wit_bindgen::generate!({{\n\
         inline: r#####\"{text}\"#####,\n\
         world: $world,\n\
         runtime_path: \"::sigil_plugin_sdk::__wit_bindgen::rt\",\n\
         $($rest)*\n\
         }});\n\
         }};\n\
         }}\n"
    );
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("world_macro.rs");
    std::fs::write(dest, out).expect("writing world_macro.rs");
}
