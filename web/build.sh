#!/usr/bin/env bash
# Build the browser package: the engine's core compiled to WebAssembly (web/src, on wgpu's WebGPU
# backend), and its JavaScript bindings, into web/pkg/, where `vpt lab` serves them (/train,
# /check). `.ci/run` calls it before the tests; tests/browser.rs drives the pages.
#
# What it needs, installed when missing:
# - Debian's `rustc-web` (rustc and cargo 1.96), `rust-web-src` (std's source) and `lld`
#   (`wasm-ld`): `rustup target add` cannot download here, so std for wasm32 is built from
#   source (-Zbuild-std; RUSTC_BOOTSTRAP lets the stable toolchain take the flag);
# - `wasm-bindgen` 0.2.130, the CLI, which must be the version of the `wasm-bindgen` crate
#   (web/Cargo.toml pins it), from crates.io (about 90 s on 2 cores). Without `--locked`: its
#   lock file names a `webpki-roots` the registry here lacks.
#
# The wasm build keeps its objects in target/wasm-web (std included), so a second run only
# builds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

BINDGEN_VERSION=0.2.130
if [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || ! command -v wasm-ld >/dev/null; then
    echo "installing Debian's rustc-web, rust-web-src and lld for the wasm32 build"
    export DEBIAN_FRONTEND=noninteractive
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq rustc-web rust-web-src lld >/dev/null
fi
if ! wasm-bindgen --version 2>/dev/null | grep "$BINDGEN_VERSION" >/dev/null; then
    echo "installing wasm-bindgen-cli $BINDGEN_VERSION from crates.io"
    # --force: cargo may still record an install whose binary is gone, and would then skip it.
    cargo install --quiet --force wasm-bindgen-cli --version "$BINDGEN_VERSION"
fi

export PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld
# wgpu's WebGPU backend reaches the browser through web-sys's unstable WebGPU bindings.
export RUSTFLAGS="--cfg=web_sys_unstable_apis -D warnings"
/usr/bin/cargo build --quiet --release --manifest-path web/Cargo.toml --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort --target-dir target/wasm-web
wasm-bindgen --target web --no-typescript --out-dir web/pkg --out-name vpt_web \
    target/wasm-web/wasm32-unknown-unknown/release/vpt_web.wasm
echo "built web/pkg ($(du -k web/pkg/vpt_web_bg.wasm | cut -f1) KiB of wasm); open it with: cargo run --release -- lab, then http://127.0.0.1:PORT/train"
