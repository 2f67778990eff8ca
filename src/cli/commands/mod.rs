//! One file per `vpt` command, each a `run` over its flags (`args/commands.rs`): open the
//! device, call the library, print. `load.rs` reads what several of them read.

pub mod bench;
pub mod check;
pub mod compare;
pub mod convert;
pub mod demo;
pub mod eval;
pub mod forward;
pub mod grad;
pub mod info;
pub mod lab;
pub mod load;
pub mod predict;
pub mod record;
pub mod sweep;
pub mod train;
pub mod tune;
