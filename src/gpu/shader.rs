//! The contract between a Rust launcher and its WGSL kernel, in one place:
//!
//! - [`Shader`]: a kernel family's WGSL source, embedded at compile time, with the library files
//!   from `wgsl/lib/` it includes (WGSL has no `#include`, so they are prepended).
//! - [`Params`]: the kernel's uniform `struct Params` at binding 0, built field by field with the
//!   WGSL field names, so a test can hold each launcher against the struct it fills.
//! - [`Bind`]: a storage buffer at a binding, with the access the launcher expects the WGSL to
//!   declare (`read` or `read_write`).
//! - [`WG_1D`]: the workgroup size of the flat 1-D kernels, `WG` in `wgsl/lib/flat.wgsl`.
//!
//! Every launch records which params and bindings it used ([`Gpu::launches`](super::Gpu::launches)),
//! and `tests/contract.rs` checks each against the entry point's declarations as naga parses them.
//! This file is a leaf: it knows nothing of tensors or kernels.

/// One WGSL source file, embedded in the binary at compile time.
pub struct Shader {
    /// The cache key and the label in GPU error messages and profiles: the file stem in `wgsl/`,
    /// or a variant's own name (`softmax_subgroup`: softmax.wgsl with other library files).
    pub name: &'static str,
    /// File stem in `wgsl/` of the family's own kernels.
    pub file: &'static str,
    /// What the GPU compiles: each of `wgsl/lib/<uses>.wgsl` in order, then `wgsl/<file>.wgsl`.
    pub source: &'static str,
    /// The library files prepended to this family's own (see [`wgsl_shader!`]).
    pub uses: &'static [&'static str],
    /// Adapter features the source needs (`SUBGROUP` for subgroup operations); empty for most.
    pub needs: wgpu::Features,
    /// Downlevel flags the source needs: abilities of WebGPU's baseline that a few adapters lack
    /// (`SHADER_F16_IN_F32` for pack2x16float); empty for most. A launch where the adapter lacks
    /// one is an error naming it.
    pub needs_downlevel: wgpu::DownlevelFlags,
    /// The storage bindings that hold f16 values (an f16 weight's `array<f16>`, or halves packed
    /// in pairs as `array<u32>`); a launch must bind buffers holding f16 there and f32 elsewhere.
    pub f16_bindings: &'static [u32],
}

impl Shader {
    /// The source as [`Shader::source`] assembles it, but from files that `read` gives by their
    /// path under `wgsl/` ("lib/flat.wgsl", "matmul.wgsl"): a copy of the folder, perhaps edited
    /// (`vpt check --wgsl-dir`, `gpu/wgsl_dir.rs`).
    pub fn assemble(&self, read: &dyn Fn(&str) -> crate::error::Result<String>) -> crate::error::Result<String> {
        let mut source = String::new();
        for lib in self.uses {
            source += &read(&format!("lib/{lib}.wgsl"))?;
            source.push('\n');
        }
        source += &read(&format!("{}.wgsl", self.file))?;
        Ok(source)
    }
}

/// Declares a family's `SHADER` from `wgsl/<name>.wgsl`. With `uses ["flat", "row_reduce"]`, those
/// files of `wgsl/lib/` (plain functions and constants shared by several families) are prepended
/// in that order, since WGSL has no `#include`.
///
/// `wgsl_shader!(SHADER_SUBGROUP = "softmax" as "softmax_subgroup", needs SUBGROUP, uses [...])`
/// declares a variant of a family: the same file with other library files, compiled only on
/// adapters with the named `wgpu::Features` (several joined by `|`); `f16 bindings [2, 6]` after `needs` names the
/// bindings that hold f16 values (as `array<f16>`, or as pairs packed in `array<u32>`:
/// `wgsl_shader!("halves", needs downlevel [SHADER_F16_IN_F32], f16 bindings [2, 3], uses [..])`,
/// which needs no feature, only a downlevel flag nearly every adapter has). Without `needs`,
/// `wgsl_shader!(SHADER_SCALARS = "attention" as "attention_scalars", uses [...])` declares a
/// variant that every adapter compiles (the same kernels reading their inputs another way).
macro_rules! wgsl_shader {
    ($name:literal $(, uses [$($lib:literal),* $(,)?])?) => {
        $crate::gpu::wgsl_shader!($name, needs downlevel [], f16 bindings [] $(, uses [$($lib),*])?);
    };
    ($name:literal, needs downlevel [$($dl:ident),*], f16 bindings [$($f16:literal),*] $(, uses [$($lib:literal),* $(,)?])?) => {
        pub const SHADER: $crate::gpu::Shader = $crate::gpu::Shader {
            name: $name,
            file: $name,
            source: concat!(
                $($(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/wgsl/lib/", $lib, ".wgsl")), "\n",)*)?
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/wgsl/", $name, ".wgsl"))
            ),
            uses: &[$($($lib),*)?],
            needs: wgpu::Features::empty(),
            needs_downlevel: wgpu::DownlevelFlags::empty()$(.union(wgpu::DownlevelFlags::$dl))*,
            f16_bindings: &[$($f16),*],
        };
    };
    ($konst:ident = $file:literal as $name:literal, uses [$($lib:literal),* $(,)?]) => {
        $crate::gpu::wgsl_shader!(@variant $konst, $file, $name, wgpu::Features::empty(), [], [$($lib),*]);
    };
    ($konst:ident = $file:literal as $name:literal, needs $($needs:ident)|+, uses [$($lib:literal),* $(,)?]) => {
        $crate::gpu::wgsl_shader!($konst = $file as $name, needs $($needs)|+, f16 bindings [], uses [$($lib),*]);
    };
    ($konst:ident = $file:literal as $name:literal, needs $($needs:ident)|+, f16 bindings [$($f16:literal),*], uses [$($lib:literal),* $(,)?]) => {
        $crate::gpu::wgsl_shader!(@variant $konst, $file, $name, wgpu::Features::empty()$(.union(wgpu::Features::$needs))+, [$($f16),*], [$($lib),*]);
    };
    // The variant's constant, for the two forms above.
    (@variant $konst:ident, $file:literal, $name:literal, $needs:expr, [$($f16:literal),*], [$($lib:literal),*]) => {
        pub const $konst: $crate::gpu::Shader = $crate::gpu::Shader {
            name: $name,
            file: $file,
            source: concat!(
                $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/wgsl/lib/", $lib, ".wgsl")), "\n",)*
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/wgsl/", $file, ".wgsl"))
            ),
            uses: &[$($lib),*],
            needs: $needs,
            needs_downlevel: wgpu::DownlevelFlags::empty(),
            f16_bindings: &[$($f16),*],
        };
    };
}
pub(crate) use wgsl_shader;

/// Workgroup size of the 1-D (element-wise) kernels: `WG` in `wgsl/lib/flat.wgsl`
/// (`tests/contract.rs` checks they agree).
pub const WG_1D: u32 = 256;

/// Values for a kernel's WGSL `override` constants, fixed when its pipeline is compiled. Each
/// distinct set compiles (once) a pipeline of its own, and the shader compiler folds the constants,
/// deleting the branches they decide: a kernel is specialised per case (matmul per transpose
/// layout) without a runtime branch in its inner loop (14–20% of matmul time on lavapipe).
pub type Constants<'a> = &'a [(&'static str, f64)];

/// The scalar type of one `Params` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    U32,
    F32,
}

/// Builds a kernel's uniform parameter block: 4-byte fields appended in the order the WGSL
/// `struct Params` declares them, each with its WGSL name. The block is zero-padded to at least
/// [`Params::MIN_BYTES`] (and to a multiple of 16, as uniform buffers require).
#[derive(Default, Clone, Debug)]
pub struct Params {
    bytes: Vec<u8>,
    fields: Vec<(&'static str, ParamType)>,
}

impl Params {
    /// Room for 16 fields: every kernel's `Params` struct fits.
    pub const MIN_BYTES: usize = 64;

    pub fn new() -> Params {
        Params::default()
    }
    pub fn u32(mut self, name: &'static str, v: u32) -> Params {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self.fields.push((name, ParamType::U32));
        self
    }
    /// A `usize` dimension; the kernels index in `u32`, and tensors never exceed that
    /// (a storage binding is at most 4 GiB).
    pub fn dim(self, name: &'static str, v: usize) -> Params {
        self.u32(name, u32::try_from(v).expect("dimension exceeds u32; tensors are bounded by the binding size"))
    }
    pub fn f32(mut self, name: &'static str, v: f32) -> Params {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self.fields.push((name, ParamType::F32));
        self
    }
    pub fn flag(self, name: &'static str, v: bool) -> Params {
        self.u32(name, v as u32)
    }
    /// The fields pushed so far, in order: what `tests/contract.rs` compares with the WGSL struct.
    pub fn fields(&self) -> &[(&'static str, ParamType)] {
        &self.fields
    }
    /// The uniform buffer's contents, padded.
    pub fn padded_bytes(&self) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        bytes.resize(bytes.len().max(Self::MIN_BYTES).next_multiple_of(16), 0);
        bytes
    }
}

/// How a kernel may use a storage buffer: WGSL's `var<storage, read>` or `var<storage, read_write>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
}
