//! `embed_migrations!` reads `migrations/` at compile time, but cargo does not know that: without
//! this, adding a migration to an already-built tree leaves the old list in the binary
//! (diesel_migrations' documented "Automatic rebuilds" fix).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
