// `sqlx::migrate!` embeds the migrations at compile time; without this, adding a
// migration file alone would not rebuild the crate and the new migration would be
// silently missing from the binary.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
