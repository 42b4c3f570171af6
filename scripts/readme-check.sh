#!/usr/bin/env bash
# Builds the README as a newcomer would use it: a fresh crate outside the workspace whose
# Cargo.toml holds the README's install section as written (runledger itself taken from this
# checkout through `[patch.crates-io]`), whose main.rs is the README's quick start, and whose
# test uses the `testing` dev-dependency.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

section() { # the first ```$2 block after the heading "## $1"
    awk -v heading="## $1" -v fence="\`\`\`$2" '
        $0 == heading { in_section = 1; next }
        in_section && $0 == fence { in_block = 1; next }
        in_block && $0 == "```" { exit }
        in_block { print }
    ' "$root/README.md"
}

deps=$(section "Install" toml)
main=$(section "Quick start" rust)
[ -n "$deps" ] || { echo "README: no toml block under ## Install" >&2; exit 1; }
[ -n "$main" ] || { echo "README: no rust block under ## Quick start" >&2; exit 1; }

mkdir -p "$dir/src" "$dir/tests"
cat > "$dir/Cargo.toml" <<TOML
[package]
name = "readme-check"
version = "0.0.0"
edition = "2024"
publish = false

$deps

[patch.crates-io]
runledger = { path = "$root/runledger" }

[workspace]
TOML
printf '%s\n' "$main" > "$dir/src/main.rs"
cat > "$dir/tests/testing.rs" <<'RS'
//! The `testing` dev-dependency as the README describes it.
#[tokio::test]
#[ignore = "compiled, not run: it needs a PostgreSQL server"]
async fn a_test_database() {
    let db = runledger::testing::TestDatabase::new().await.unwrap();
    runledger::testing::check_registrations().unwrap();
    let _ = runledger::testing::count_by_state(&db.client()).await.unwrap();
}
RS
cd "$dir"
export CARGO_TARGET_DIR="$root/target/readme-check" RUSTFLAGS="-D warnings"
cargo build --quiet
cargo test --quiet --no-run
echo "README: the install section and the quick start build in a fresh crate"
