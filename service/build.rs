// sqlx::migrate! embeds migrations/{sqlite,postgres}: rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
