//! One kernel launch: each storage buffer it binds ([`Bind`], the launcher's half of the binding
//! contract; `shader.rs` has the kernel's half, [`Access`]) and each texture it reads
//! ([`TexelBind`]), and the launch as a whole ([`Launch`]), as the log and the trace hear of it
//! (`aides.rs`).

use super::memory::GpuBuffer;
use super::shader::{Access, Constants, Params, Shader};
use super::texels::Texels;

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

/// One texture bound for a launch, read by `textureLoad` (a frozen weight's [`Texels`]).
#[derive(Clone, Copy)]
pub struct TexelBind<'a> {
    pub binding: u32,
    pub texels: &'a Texels,
}

/// One launch as recorded: what those who hear of it (`aides.rs`) are told.
pub struct Launch<'a> {
    /// "shader::entry", e.g. "matmul::matmul_tiled".
    pub op: &'a str,
    pub shader: &'a Shader,
    pub entry: &'static str,
    pub constants: Constants<'a>,
    pub params: &'a Params,
    pub buffers: &'a [Bind<'a>],
    /// The textures it reads: a matmul's B and A, the fused attention's heads (`Texels`).
    pub texels: &'a [TexelBind<'a>],
    /// Workgroups along x, y, z.
    pub grid: [u32; 3],
}
