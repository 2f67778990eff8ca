#!/usr/bin/env bash
# The library's core builds for wasm32 on wgpu's WebGPU backend (the core/native line,
# docs/architecture.md): `cargo build --lib --no-default-features` for wasm32-unknown-unknown.
#
# `rustup target add` cannot download here, so std for wasm32 is built from source with Debian's
# toolchain: `rustc-web` (rustc and cargo), `rust-web-src` (std's source) and `lld` (`wasm-ld`).
# Debian's cargo and rustc go first on PATH (rustup's do not know -Zbuild-std's source);
# RUSTC_BOOTSTRAP lets their stable release take -Zbuild-std. The first run builds std (about
# a minute on 2 cores) and wgpu; later runs reuse target/wasm-core.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || ! command -v wasm-ld >/dev/null; then
    echo "installing Debian's rustc-web, rust-web-src and lld for the wasm32 build of the core"
    export DEBIAN_FRONTEND=noninteractive
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq rustc-web rust-web-src lld >/dev/null
fi

export PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld
# Warnings are errors here too: a core item that only native code uses shows up as dead code.
RUSTFLAGS="-D warnings" /usr/bin/cargo build --quiet --lib --no-default-features --release \
    --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort --target-dir target/wasm-core
echo "the library's core builds for wasm32-unknown-unknown"
