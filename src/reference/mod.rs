//! Plain f64 CPU references, one module per kernel family. Kept small and obvious on purpose:
//! they are what the GPU kernels are tested against, and what the finite-difference gradient
//! checks differentiate. Layouts match the GPU kernels (row-major, last axis contiguous).

pub mod attention;
pub mod cross_entropy;
pub mod elementwise;
pub mod gelu;
pub mod halves;
pub mod heads;
pub mod layernorm;
pub mod matmul;
pub mod optim;
pub mod patch;
pub mod reduce;
pub mod softmax;
pub mod tokens;
