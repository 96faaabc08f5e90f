//! Rebuilds the crate when a migration is added or changed. `sqlx::migrate!` embeds the files of
//! `migrations/`, but cargo only tracks files it has already seen: without this a new migration
//! file left a build (and a CI run reusing its target directory) on the old set.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
