//! Cron.
fn main() {}
