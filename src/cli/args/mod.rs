//! Every flag of `vpt`, as clap types: the groups several commands share ([`shared`]) and each
//! command's own ([`commands`]). Types only: what they mean to the library is `settings.rs`.

pub mod commands;
pub mod shared;
