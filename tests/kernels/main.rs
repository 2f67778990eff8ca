//! Kernel suite: every GPU kernel against its f64 CPU reference on random shapes (proptest), and
//! every backward against finite differences. Runs on each backend found (see `common::gpus`).

mod common;
mod cross_entropy;
mod gelu;
mod layernorm;
mod reduce;
mod softmax;
