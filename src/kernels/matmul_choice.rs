//! Which matmul kernel runs: the layout options ([`MatmulOptions`]), the kernels of
//! `wgsl/matmul.wgsl` and its `wgsl/lib/matmul_*.wgsl` files side by side ([`MatmulKernel`]), and the rule that picks one per shape and
//! adapter, or the choice `vpt tune` measured. The launcher is `matmul.rs`.

use crate::gpu::Gpu;
use crate::tensor::DType;

/// Which operands enter transposed.
#[derive(Default, Clone, Copy, Debug)]
pub struct MatmulOptions {
    /// A is stored [batch..., K, M] and used as its transpose.
    pub trans_a: bool,
    /// B is stored [batch..., N, K] and used as its transpose (a PyTorch `Linear` weight [out, in]).
    pub trans_b: bool,
}

/// The forward kernels, side by side (llm.c style): each computes the same thing, and each after
/// `tiled` adds one change whose effect on lavapipe the WGSL comments record. The engine picks one
/// per adapter with [`MatmulKernel::best_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// One thread per output element: the readable reference and the benchmark baseline.
    Naive,
    /// 64×64 output tiles staged through workgroup memory, 4×4 outputs per thread: the classic
    /// GPU kernel.
    Tiled,
    /// No workgroup memory and no barriers: a 4×4 block per thread read straight from global
    /// memory with scalar loads, the pipeline specialised per transpose layout.
    Reg4x4,
    /// `Reg4x4` reading four consecutive values with one vec4 load where the layout allows.
    Reg4x4Vec4,
    /// `Reg4x4Vec4` with a 16×8 block per thread: 2.7× fewer loads per multiply-add.
    Reg16x8,
    /// `Reg16x8` with a 32×8 block per thread: half the loads of op(B) per multiply-add, which
    /// most helps B stored [K, N] (the backward `dX = dY·W`), read in rows far apart.
    Reg32x8,
    /// Built for real GPUs: a 64×64 tile staged in workgroup memory with vec4 loads,
    /// double-buffered along K, a 4×8 register block per thread, the layout fixed at compile time.
    Gpu64x64,
    /// `Reg16x8` with op(A) shared through subgroup shuffles: each lane loads one block of op(A)
    /// per subgroup-size steps along K, the others take it from that lane. Needs SUBGROUP.
    Sg16x8,
}

impl MatmulKernel {
    pub const ALL: [MatmulKernel; 8] =
        [MatmulKernel::Naive, MatmulKernel::Tiled, MatmulKernel::Reg4x4, MatmulKernel::Reg4x4Vec4, MatmulKernel::Reg16x8, MatmulKernel::Reg32x8, MatmulKernel::Gpu64x64, MatmulKernel::Sg16x8];

    /// Short name for test and benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Naive => "naive",
            MatmulKernel::Tiled => "tiled",
            MatmulKernel::Reg4x4 => "reg4x4",
            MatmulKernel::Reg4x4Vec4 => "reg4x4_vec4",
            MatmulKernel::Reg16x8 => "reg16x8",
            MatmulKernel::Reg32x8 => "reg32x8",
            MatmulKernel::Gpu64x64 => "gpu64x64",
            MatmulKernel::Sg16x8 => "sg16x8",
        }
    }

    /// The adapter features the kernel needs (SUBGROUP for `Sg16x8`; none for the others).
    pub fn needs(self) -> wgpu::Features {
        match self {
            MatmulKernel::Sg16x8 => wgpu::Features::SUBGROUP,
            _ => wgpu::Features::empty(),
        }
    }

    /// Can `gpu` run it?
    pub fn available(self, gpu: &Gpu) -> bool {
        gpu.features().contains(self.needs())
    }

    /// The kernels `gpu` can run, in [`MatmulKernel::ALL`]'s order.
    pub fn all_on(gpu: &Gpu) -> Vec<MatmulKernel> {
        MatmulKernel::ALL.into_iter().filter(|k| k.available(gpu)).collect()
    }

    /// The kernel the engine uses for op(A) [M, K] · op(B) [K, N] in layout `opts` on this device.
    ///
    /// On a CPU adapter (lavapipe; llvmpipe's GL too) the register-tiled kernels, measured
    /// fastest there at every ViT shape (docs/benchmarks.md): `Reg16x8` computes about twice as fast
    /// as `Reg4x4Vec4`, and `Reg32x8` 1.1–1.17× as fast as `Reg16x8` where op(A) is read with vec4
    /// loads (A's stored rows a multiple of 4 long; elsewhere ~5% slower: A's scalar loads then
    /// dominate and it does not reduce them). Their tiles are 32×32, 128×64 and 256×64, so where M
    /// or N is small enough that the larger tiles would be mostly padding (a 32-row classifier
    /// head) the smaller ones finish first. Where the device has SUBGROUP, `Sg16x8` wherever A is
    /// stored [M, K]: with B stored [N, K] (every linear layer's forward, attention's q·kᵀ) it ran
    /// 1.5–1.8× as fast as `Reg16x8` on lavapipe; with B stored [K, N] (the linear layers' dX)
    /// 1.1–3.2× as fast as `Reg32x8` where A's rows take vec4 loads, and 0.4× without them
    /// (attention's dQ on the [247, 247] scores), where it is left out. On a GPU, `Tiled`, the
    /// kernel built for GPU memory; run `vpt bench` to check yours.
    ///
    /// Where `vpt tune` measured this shape on this adapter (its cache in use, see
    /// `gpu/tuning.rs`), the kernel it found fastest instead of any of this.
    pub fn best_for(gpu: &Gpu, m: usize, n: usize, k: usize, opts: MatmulOptions) -> MatmulKernel {
        Self::best_for_stored(gpu, m, n, k, opts, DType::F32)
    }

    /// [`MatmulKernel::best_for`] with B stored as `b` (f16: a frozen weight under
    /// `--precision f16`, tuned separately).
    pub fn best_for_stored(gpu: &Gpu, m: usize, n: usize, k: usize, opts: MatmulOptions, b: DType) -> MatmulKernel {
        if let Some(kernel) = gpu.choice(&Self::tune_key(m, n, k, opts, b)).and_then(|name| Self::by_name(&name)) {
            return kernel;
        }
        if gpu.info().device_type != wgpu::DeviceType::Cpu {
            return MatmulKernel::Tiled;
        }
        let a_vec4 = (if opts.trans_a { m } else { k }) % 4 == 0;
        // Time ∝ outputs computed, padding included, / speed (relative to Reg4x4Vec4).
        let time = |kernel: MatmulKernel, speed: f64| {
            let (rows, cols) = kernel.tile();
            (m.next_multiple_of(rows) * n.next_multiple_of(cols)) as f64 / speed
        };
        let mut best = (MatmulKernel::Reg4x4Vec4, time(MatmulKernel::Reg4x4Vec4, 1.0));
        let mut candidates = vec![(MatmulKernel::Reg16x8, 2.0)];
        if a_vec4 {
            candidates.push((MatmulKernel::Reg32x8, 2.2));
        }
        if MatmulKernel::Sg16x8.available(gpu) && !opts.trans_a {
            match (opts.trans_b, a_vec4) {
                (true, _) => candidates.push((MatmulKernel::Sg16x8, 3.5)),
                (false, true) => candidates.push((MatmulKernel::Sg16x8, 2.6)),
                (false, false) => {}
            }
        }
        for (kernel, speed) in candidates {
            let t = time(kernel, speed);
            if t <= best.1 {
                best = (kernel, t);
            }
        }
        best.0
    }

    /// The kernel called `name` (see [`MatmulKernel::name`]).
    pub fn by_name(name: &str) -> Option<MatmulKernel> {
        MatmulKernel::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The key of op(A) [M, K] · op(B) [K, N] in layout `opts` among `vpt tune`'s choices:
    /// "matmul 1976x2304x768 nt" (M×N×K; n/t: op(A), op(B) stored as is / transposed), with
    /// " f16" after it where B is stored as f16.
    pub fn tune_key(m: usize, n: usize, k: usize, opts: MatmulOptions, b: DType) -> String {
        let t = |yes: bool| if yes { 't' } else { 'n' };
        let stored = if b == DType::F16 { " f16" } else { "" };
        format!("matmul {m}x{n}x{k} {}{}{stored}", t(opts.trans_a), t(opts.trans_b))
    }

    /// The WGSL entry point (in `wgsl/matmul.wgsl` or a `wgsl/lib/matmul_*.wgsl` file; dispatch
    /// counts and profiles name it).
    pub fn entry(self) -> &'static str {
        match self {
            MatmulKernel::Naive => "matmul_naive",
            MatmulKernel::Tiled => "matmul_tiled",
            MatmulKernel::Reg4x4 | MatmulKernel::Reg4x4Vec4 => "matmul_reg4x4",
            MatmulKernel::Reg16x8 => "matmul_reg16x8",
            MatmulKernel::Reg32x8 => "matmul_reg32x8",
            MatmulKernel::Gpu64x64 => "matmul_gpu64x64",
            MatmulKernel::Sg16x8 => "matmul_sg16x8",
        }
    }

    /// Outputs one workgroup covers, (rows, columns); must match the WGSL.
    pub(super) fn tile(self) -> (usize, usize) {
        match self {
            MatmulKernel::Naive => (16, 16),
            MatmulKernel::Tiled => (64, 64),
            MatmulKernel::Reg4x4 | MatmulKernel::Reg4x4Vec4 => (32, 32),
            MatmulKernel::Reg16x8 => (128, 64),
            MatmulKernel::Reg32x8 => (256, 64),
            MatmulKernel::Gpu64x64 => (64, 64),
            MatmulKernel::Sg16x8 => (16, 256),
        }
    }

    /// Does the kernel take its layout as `override` constants (and vec4 views at bindings 5, 6)?
    /// (Every kernel takes the `EPILOGUE` constant.)
    pub(super) fn specialized(self) -> bool {
        !matches!(self, MatmulKernel::Naive | MatmulKernel::Tiled)
    }

    /// May it read four consecutive values with one vec4 load where the layout allows?
    pub(super) fn vec4_loads(self) -> bool {
        matches!(self, MatmulKernel::Reg4x4Vec4 | MatmulKernel::Reg16x8 | MatmulKernel::Reg32x8 | MatmulKernel::Gpu64x64 | MatmulKernel::Sg16x8)
    }
}

/// Where a frozen linear layer's dX product reads the weight from. dX [M, in] = dY [M, out] · W
/// needs W [out, in] as op(B) stored [K, N], which the register kernels read in rows far apart
/// (the slow layout, see `matmul_reg32x8`'s comment); a copy of W transposed, [in, out], made once
/// at load, is read as every forward reads its weight, at the cost of the weight's memory once
/// more (ViT-B/16: 324 MiB in f32, 162 MiB in f16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DxLayout {
    /// dY · W, from the weight itself.
    Stored,
    /// dY · (Wᵀ)ᵀ, from the transposed copy.
    Transposed,
}

impl DxLayout {
    pub const ALL: [DxLayout; 2] = [DxLayout::Stored, DxLayout::Transposed];

    pub fn name(self) -> &'static str {
        match self {
            DxLayout::Stored => "stored",
            DxLayout::Transposed => "transposed",
        }
    }

    /// The layout for a frozen weight [out, in] stored as `w` on this adapter: `vpt tune`'s
    /// measurement where it has one ([`DxLayout::tune_key`]), else the weight as stored, which
    /// costs no memory. On lavapipe the copy bought nothing: `sg16x8` reads B stored [K, N] as
    /// fast as [N, K] at ViT-B's shapes (batch 8, 1976 rows: qkv's dX 209.0 ms stored against
    /// 210.3 ms from the copy, fc1's 286.4 against 282.6, `vpt tune --preset vit-b --batch 8
    /// --reps 3 --filter dX`), and the whole step's backward took 20.5 and 19.3 s stored against
    /// 20.3 and 19.5 s with the copies (docs/benchmarks.md). No GPU has been measured.
    pub fn for_weight(gpu: &Gpu, out: usize, inp: usize, w: DType) -> DxLayout {
        let tuned = gpu.choice(&Self::tune_key(out, inp, w));
        DxLayout::ALL.into_iter().find(|l| tuned.as_deref() == Some(l.name())).unwrap_or(DxLayout::Stored)
    }

    /// How much faster the copy must have run in `vpt tune` to be chosen: it costs the weight's
    /// memory once more, and a few percent is within the noise of one tuning run (1–2% either
    /// way between the two layouts on lavapipe).
    pub const COPY_MUST_SAVE: f64 = 0.05;

    /// Its key among `vpt tune`'s choices: "linear dX 2304x768" (the weight's [out, in]), with
    /// " f16" after it where the weight is stored as f16.
    pub fn tune_key(out: usize, inp: usize, w: DType) -> String {
        let stored = if w == DType::F16 { " f16" } else { "" };
        format!("linear dX {out}x{inp}{stored}")
    }
}

/// Where the matmuls read a frozen linear weight from: its buffer, or a copy of it in a texture
/// made once at load (`Gpu::texels`, read by `wgsl/lib/matmul_b_texels.wgsl`), which costs the
/// weight's memory once more (ViT-B/16's blocks: 324 MiB in f32, 162 MiB in f16) and gives the
/// same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightSource {
    Buffer,
    Texels,
}

impl WeightSource {
    pub const ALL: [WeightSource; 2] = [WeightSource::Buffer, WeightSource::Texels];

    pub fn name(self) -> &'static str {
        match self {
            WeightSource::Buffer => "buffer",
            WeightSource::Texels => "texels",
        }
    }

    /// The source for a frozen weight [out, in] stored as `w` on this adapter: the tune cache's
    /// choice where it has one ([`WeightSource::tune_key`]); else texels on lavapipe (a CPU
    /// adapter on Vulkan), where every ViT-B product ran faster from them (`sg16x8`, batch 8,
    /// `cargo run --release --example texels_ab -- 8 5`: qkv 205.9 → 142.9 ms, fc2's dX 266.6 →
    /// 182.7 ms; see the WGSL) and the memory is the host's; else
    /// the buffer: no other adapter has been measured. Never texels that do not fit one texture.
    pub fn for_weight(gpu: &Gpu, out: usize, inp: usize, w: DType) -> WeightSource {
        if !gpu.texels_fit(out * inp) {
            return WeightSource::Buffer;
        }
        let tuned = gpu.choice(&Self::tune_key(out, inp, w));
        if let Some(source) = WeightSource::ALL.into_iter().find(|s| tuned.as_deref() == Some(s.name())) {
            return source;
        }
        if gpu.texels_pay() {
            WeightSource::Texels
        } else {
            WeightSource::Buffer
        }
    }

    /// Its key among the tune cache's choices: "linear source 2304x768" (the weight's [out, in]),
    /// with " f16" after it where the weight is stored as f16.
    pub fn tune_key(out: usize, inp: usize, w: DType) -> String {
        let stored = if w == DType::F16 { " f16" } else { "" };
        format!("linear source {out}x{inp}{stored}")
    }
}
