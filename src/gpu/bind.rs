//! A storage buffer bound for one launch ([`Bind`]): the launcher's half of the binding contract
//! (`shader.rs` has the kernel's half, [`Access`]).

use super::memory::GpuBuffer;
use super::shader::Access;

/// One storage buffer bound for a launch: binding number, the access the launcher expects the
/// entry point to declare, and the buffer.
#[derive(Clone, Copy)]
pub struct Bind<'a> {
    pub binding: u32,
    pub access: Access,
    pub buffer: &'a GpuBuffer,
}

impl<'a> Bind<'a> {
    /// An input the kernel only reads.
    pub fn read(binding: u32, buffer: &'a GpuBuffer) -> Bind<'a> {
        Bind { binding, access: Access::Read, buffer }
    }
    /// An output (or accumulator) the kernel writes.
    pub fn read_write(binding: u32, buffer: &'a GpuBuffer) -> Bind<'a> {
        Bind { binding, access: Access::ReadWrite, buffer }
    }
}
