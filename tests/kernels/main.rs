//! Kernel suite: every GPU kernel against its f64 CPU reference on random shapes (proptest), and
//! every backward against finite differences. Runs on each backend found (see `common::gpus`).

mod attention;
mod common;
mod cross_entropy;
mod elementwise;
mod gelu;
mod halves;
mod heads;
mod layernorm;
mod matmul;
mod matmul_texels;
mod optim;
mod patch;
mod pytorch;
mod reduce;
mod softmax;
mod tensor;
mod tokens;
