//! Builds the example and test plugins in `plugins/` for wasm32-wasip2 and tells the tests where
//! they are (`SIGIL_TEST_PLUGINS`). The plugins get a target directory of their own: sharing the
//! outer build's would deadlock on cargo's lock. The wasm32-wasip2 target is added with rustup
//! when it is missing, because a plain `cargo` call does not install targets named in
//! rust-toolchain.toml.
#![allow(clippy::panic, clippy::expect_used)] // a build step that fails must stop the build

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let plugins = here.join("../plugins");
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.lock").display());
    for entry in std::fs::read_dir(&plugins).expect("plugins/").flatten() {
        let src = entry.path().join("src");
        if src.is_dir() {
            println!("cargo:rerun-if-changed={}", src.display());
            println!("cargo:rerun-if-changed={}", entry.path().join("Cargo.toml").display());
        }
    }
    println!("cargo:rerun-if-changed={}", here.join("../wit").display());
    println!("cargo:rerun-if-changed={}", here.join("../sdk/src").display());
    println!("cargo:rerun-if-changed={}", here.join("../sdk/Cargo.toml").display());

    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(&here)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
        .unwrap_or(true);
    if !installed {
        let ok = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .current_dir(&here)
            .status();
        assert!(
            ok.map(|s| s.success()).unwrap_or(false),
            "`rustup target add wasm32-wasip2` failed"
        );
    }

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("plugins-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // One cargo call for every plugin: the SDK's worlds are chosen by the export macro a plugin
    // calls, not by cargo features, so they build together.
    let status = Command::new(&cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--workspace", "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &out)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("running cargo for plugins/");
    assert!(status.success(), "building plugins/ for wasm32-wasip2 failed");
    println!("cargo:rustc-env=SIGIL_TEST_PLUGINS={}", out.join("wasm32-wasip2/release").display());
}
