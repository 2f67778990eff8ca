// Replays a trace recorded by `vpt record` (format: docs/trace.md) on this browser's WebGPU.
//
// The trace is the engine's GPU work, op by op: buffers made (zeroed, or holding uploaded bytes),
// kernel launches (WGSL source as the engine compiled it, entry point, override constants, uniform
// bytes, the buffer at each binding, the grid), copies, and read-backs with the bytes the engine
// got. This file does only what the trace says, in its order; it knows nothing of our launchers.
//
// What it reports, per kernel ("shader::entry"):
// - ok / worst_error: every read-back is compared with the recorded bytes. The error of a read is
//   max|replayed − recorded| / max(max|recorded|, 1e-6) over the buffer; it must stay within
//   TOLERANCE. A failing read is blamed on the kernel that last wrote the buffer; a passing read
//   counts as a check of every kernel whose output flowed into it.
// - skipped: a kernel whose shader needs a feature this browser lacks (e.g. shader-f16) never runs;
//   what it would have written is marked, and a read of it is skipped, never passed.
// - compile_ms: host time to compile its shader module (once per shader, charged to the first
//   kernel of it that runs) and its pipelines (once per entry point and override constants).
// - ms: the kernel's GPU time summed over its launches (timestamp queries where the adapter has
//   them, else host time around each launch waited for alone).
// - GFLOP/s for the products (2·M·N·K·batch from the launch's named uniform fields), GB/s of the
//   buffers bound for the others (an upper bound on the bytes a launch moves).

// Scaled error allowed between replayed and recorded read-backs. The replay runs the same WGSL on
// another compiler (exp, log, erf and fused multiply-adds may round differently) and nothing else.
// Measured worst errors are in README "The browser lab"; TOLERANCE leaves a margin above them.
export const TOLERANCE = { f32: 1e-4, f16: 1e-2 };

const STORAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
// Passes between submits when timing with timestamp queries (2 queries each).
const PASSES_PER_SUBMIT = 1024;

/** Fetch and split a trace file: 8-byte little-endian length N, N bytes of JSON, the blob. */
export async function loadTrace(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return parseTrace(await response.arrayBuffer(), url);
}

export function parseTrace(buffer, name = 'trace') {
  const n = Number(new DataView(buffer).getBigUint64(0, true));
  if (8 + n > buffer.byteLength) throw new Error(`${name}: header announces ${n} bytes of JSON, more than the file holds`);
  const manifest = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, n)));
  if (manifest.format !== 'vpt-trace 1') throw new Error(`${name}: format ${manifest.format}, not "vpt-trace 1"`);
  return { manifest, blob: buffer.slice(8 + n) };
}

/** The adapter and a device with every optional feature a trace may use and the adapter's limits. */
export async function openDevice() {
  if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing; in Chromium try --enable-unsafe-webgpu)');
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error('navigator.gpu.requestAdapter() gave no adapter');
  const features = ['subgroups', 'shader-f16', 'timestamp-query'].filter((f) => adapter.features.has(f));
  const requiredLimits = {};
  for (const key in adapter.limits) {
    if (typeof adapter.limits[key] === 'number') requiredLimits[key] = adapter.limits[key];
  }
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  const info = adapter.info || {};
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unknown adapter';
  return { adapter, device, features: new Set(features), name };
}

/** Replay `trace` on `gpu` (from openDevice). `progress(done, total)` is called now and then. */
export async function replay(gpu, trace, progress = () => {}) {
  const r = new Replayer(gpu, trace);
  const start = performance.now();
  await r.run(progress);
  return r.result(performance.now() - start);
}

class Replayer {
  constructor(gpu, { manifest, blob }) {
    this.gpu = gpu;
    this.device = gpu.device;
    this.manifest = manifest;
    this.blob = blob;
    this.buffers = new Map(); // id → GPUBuffer
    this.lastUse = lastUses(manifest.ops); // id → index of the last op that touches it
    this.writer = new Map(); // id → kernel that last wrote it
    this.flowsFrom = new Map(); // id → Set of kernels whose output flowed into it
    this.missing = new Map(); // id → why its contents are not what the engine had (skipped kernel)
    this.kernels = new Map(); // name → stats
    this.modules = new Map(); // shader index → { module } or { error }
    this.pipelines = new Map(); // key → { pipeline } or { error }
    this.reads = [];
    this.timestamps = gpu.features.has('timestamp-query');
    this.encoder = null;
    this.timed = []; // kernel names of the passes in the pending encoder, in query order
    this.toDestroy = [];
    this.errors = [];
    this.device.addEventListener('uncapturederror', (e) => this.errors.push(e.error.message));
    if (this.timestamps) {
      this.querySet = this.device.createQuerySet({ type: 'timestamp', count: 2 * PASSES_PER_SUBMIT });
      this.queryBuffer = this.device.createBuffer({ size: 16 * PASSES_PER_SUBMIT, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    }
  }

  kernel(name) {
    if (!this.kernels.has(name)) {
      this.kernels.set(name, { name, dispatches: 0, ran: 0, reads: 0, ok: true, checked: false, worst_error: 0, ms: 0, compile_ms: 0, flops: 0, bytes: 0, skipped: null, error: null });
    }
    return this.kernels.get(name);
  }

  async run(progress) {
    const ops = this.manifest.ops;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      const unknown = op.op === 'create' ? undefined : touched(op).find((id) => !this.buffers.has(id));
      if (unknown !== undefined) throw new Error(`op ${i} (${op.op}) uses buffer ${unknown}, which no earlier op created`);
      if (op.op === 'create') this.create(op);
      else if (op.op === 'dispatch') await this.dispatch(op);
      else if (op.op === 'copy') this.copy(op);
      else if (op.op === 'read') await this.read(op);
      else throw new Error(`op ${i}: unknown op ${JSON.stringify(op.op)}`);
      this.releaseAfter(op, i);
      if (i % 200 === 0) progress(i, ops.length);
    }
    await this.submit();
    progress(ops.length, ops.length);
  }

  create(op) {
    const data = op.data ? new Uint8Array(this.blob, op.data[0], op.data[1]) : null;
    const buffer = this.device.createBuffer({ size: op.bytes, usage: STORAGE(), mappedAtCreation: data !== null });
    if (data) {
      new Uint8Array(buffer.getMappedRange()).set(data);
      buffer.unmap();
    }
    this.buffers.set(op.id, buffer);
    this.flowsFrom.set(op.id, new Set());
  }

  copy(op) {
    this.encoderNow().copyBufferToBuffer(this.buffers.get(op.src), 0, this.buffers.get(op.dst), 0, op.bytes);
    this.writer.set(op.dst, this.writer.get(op.src));
    this.flowsFrom.set(op.dst, new Set(this.flowsFrom.get(op.src)));
    if (this.missing.has(op.src)) this.missing.set(op.dst, this.missing.get(op.src));
  }

  async dispatch(op) {
    const k = this.kernel(op.kernel);
    k.dispatches++;
    const shader = this.manifest.shaders[op.shader];
    const outputs = op.bindings.filter(([, , access]) => access === 'read_write').map(([, id]) => id);
    const lacking = shader.needs.filter((f) => !this.gpu.features.has(f));
    const inputMissing = op.bindings.map(([, id]) => this.missing.get(id)).find(Boolean);
    let why = lacking.length ? `needs ${lacking.join(', ')}, which this adapter lacks` : inputMissing;
    let pipeline = null;
    if (!why) {
      const t = performance.now();
      const made = await this.pipeline(op, shader);
      k.compile_ms += performance.now() - t;
      if (made.error) {
        k.ok = false;
        k.error = k.error || made.error;
        why = `${op.kernel} did not compile`;
      } else pipeline = made.pipeline;
    }
    if (why) {
      if (!k.ran) k.skipped = why;
      for (const id of outputs) this.missing.set(id, why);
      return;
    }
    k.ran++;
    k.skipped = null;
    for (const id of outputs) this.missing.delete(id);
    const flowed = new Set([op.kernel]);
    for (const [, id] of op.bindings) for (const name of this.flowsFrom.get(id) || []) flowed.add(name);
    for (const id of outputs) {
      this.writer.set(id, op.kernel);
      this.flowsFrom.set(id, flowed);
    }
    k.flops += flopsOf(op);
    k.bytes += op.bindings.reduce((sum, [, id]) => sum + this.buffers.get(id).size, 0);
    await this.launch(op, pipeline, k);
  }

  async pipeline(op, shader) {
    const key = `${op.shader}|${op.entry}|${JSON.stringify(op.constants)}`;
    if (this.pipelines.has(key)) return this.pipelines.get(key);
    let module = this.modules.get(op.shader);
    if (!module) {
      // naga (the engine's compiler) takes subgroup builtins without `enable subgroups;`;
      // WGSL as browsers implement it requires the directive, so it is added here.
      const enables = shader.needs.filter((f) => f === 'subgroups' && !/enable\s+subgroups\s*;/.test(shader.source)).map(() => 'enable subgroups;\n');
      this.device.pushErrorScope('validation');
      const m = this.device.createShaderModule({ code: enables.join('') + shader.source, label: shader.name });
      const info = await m.getCompilationInfo();
      const scope = await this.device.popErrorScope();
      const errors = info.messages.filter((msg) => msg.type === 'error').map((msg) => `${shader.name}:${msg.lineNum}:${msg.linePos}: ${msg.message}`);
      module = errors.length || scope ? { error: errors.join('\n') || scope.message } : { module: m };
      this.modules.set(op.shader, module);
    }
    let made;
    if (module.error) made = { error: module.error };
    else {
      this.device.pushErrorScope('validation');
      try {
        const pipeline = await this.device.createComputePipelineAsync({
          layout: 'auto', // as the engine: the layout derived from the entry point's bindings
          compute: { module: module.module, entryPoint: op.entry, constants: op.constants },
          label: op.kernel,
        });
        const scope = await this.device.popErrorScope();
        made = scope ? { error: scope.message } : { pipeline };
      } catch (e) {
        await this.device.popErrorScope();
        made = { error: String(e.message || e) };
      }
    }
    this.pipelines.set(key, made);
    return made;
  }

  async launch(op, pipeline, k) {
    const params = new Uint32Array(op.params);
    const uniform = this.device.createBuffer({ size: params.byteLength, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
    new Uint32Array(uniform.getMappedRange()).set(params);
    uniform.unmap();
    this.toDestroy.push(uniform);
    const entries = [{ binding: 0, resource: { buffer: uniform } }];
    for (const [binding, id] of op.bindings) entries.push({ binding, resource: { buffer: this.buffers.get(id) } });
    this.device.pushErrorScope('validation');
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries, label: op.kernel });
    const timestampWrites = this.timestamps ? { querySet: this.querySet, beginningOfPassWriteIndex: 2 * this.timed.length, endOfPassWriteIndex: 2 * this.timed.length + 1 } : undefined;
    const pass = this.encoderNow().beginComputePass({ label: op.kernel, timestampWrites });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(op.grid[0], op.grid[1], op.grid[2]);
    pass.end();
    const scope = await this.device.popErrorScope();
    if (scope) {
      k.ok = false;
      k.error = k.error || scope.message;
    }
    if (this.timestamps) {
      this.timed.push(k);
      if (this.timed.length === PASSES_PER_SUBMIT) await this.submit();
    } else {
      // No timestamps: the launch alone, waited for, on the host clock.
      const t = performance.now();
      await this.submit();
      await this.device.queue.onSubmittedWorkDone();
      k.ms += performance.now() - t;
    }
  }

  encoderNow() {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  /** Submit what is pending; with timestamps, read the passes' times back. */
  async submit() {
    const timed = this.timed;
    this.timed = [];
    let staging = null;
    if (timed.length) {
      const bytes = 16 * timed.length;
      this.encoderNow().resolveQuerySet(this.querySet, 0, 2 * timed.length, this.queryBuffer, 0);
      staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      this.encoder.copyBufferToBuffer(this.queryBuffer, 0, staging, 0, bytes);
    }
    if (this.encoder) this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    for (const b of this.toDestroy) b.destroy();
    this.toDestroy = [];
    if (staging) {
      await staging.mapAsync(GPUMapMode.READ);
      const ns = new BigInt64Array(staging.getMappedRange());
      timed.forEach((k, i) => {
        k.ms += Number(ns[2 * i + 1] - ns[2 * i]) / 1e6;
      });
      staging.destroy();
    }
  }

  async read(op) {
    const name = this.writer.get(op.id) || '(upload)';
    const entry = { label: op.label || null, kernel: name, bytes: op.bytes, error: null, ok: null, skipped: this.missing.get(op.id) || null };
    this.reads.push(entry);
    if (entry.skipped) return;
    const staging = this.device.createBuffer({ size: op.bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.encoderNow().copyBufferToBuffer(this.buffers.get(op.id), 0, staging, 0, op.bytes);
    await this.submit();
    await staging.mapAsync(GPUMapMode.READ);
    const got = decode(staging.getMappedRange().slice(0), op.dtype);
    staging.destroy();
    const want = decode(this.blob.slice(op.data[0], op.data[0] + op.data[1]), op.dtype);
    entry.error = scaledError(got, want);
    entry.ok = entry.error <= TOLERANCE[op.dtype];
    if (op.label) {
      entry.replayed = Array.from(got.slice(0, 4));
      entry.recorded = Array.from(want.slice(0, 4));
    }
    // A buffer no kernel wrote (an upload read back) has no kernel to credit or blame.
    if (!this.writer.has(op.id)) return;
    const k = this.kernel(name);
    k.reads++;
    k.worst_error = Math.max(k.worst_error, entry.error);
    if (!entry.ok) k.ok = false;
    for (const contributor of this.flowsFrom.get(op.id) || []) this.kernel(contributor).checked = true;
  }

  /** Destroy buffers no later op touches, once what uses them is submitted. */
  releaseAfter(op, i) {
    for (const id of new Set(touched(op))) {
      if (this.lastUse.get(id) === i && this.buffers.has(id)) {
        this.toDestroy.push(this.buffers.get(id));
        this.buffers.delete(id);
      }
    }
  }

  result(wallMs) {
    const kernels = [...this.kernels.values()].map((k) => ({
      name: k.name,
      ok: k.skipped ? null : k.ok && k.checked,
      checked: k.checked,
      skipped: k.skipped,
      error: k.error,
      // null where no read-back came straight from this kernel (checked through later reads).
      worst_error: k.reads ? k.worst_error : null,
      ms: k.ms,
      compile_ms: k.compile_ms,
      dispatches: k.dispatches,
      gflops: k.flops && k.ms ? k.flops / k.ms / 1e6 : null,
      gbps: !k.flops && k.ms ? k.bytes / k.ms / 1e6 : null,
    }));
    if (this.errors.length) kernels.push({ name: '(device)', ok: false, checked: true, skipped: null, error: this.errors.join('; '), worst_error: null, ms: 0, dispatches: 0 });
    const skipped = kernels.filter((k) => k.skipped);
    const failed = kernels.filter((k) => !k.skipped && !k.ok);
    const labelled = Object.fromEntries(this.reads.filter((r) => r.label).map((r) => [r.label, r]));
    return {
      workload: this.manifest.workload,
      recorded_on: this.manifest.recorded_on,
      adapter: this.gpu.name,
      timing: this.timestamps ? 'gpu timestamps' : 'host clock',
      tolerance: TOLERANCE,
      passed: kernels.length - skipped.length - failed.length,
      failed: failed.length,
      skipped: skipped.length,
      kernels,
      reads: { total: this.reads.length, failed: this.reads.filter((r) => r.ok === false).length, skipped: this.reads.filter((r) => r.skipped).length },
      labelled,
      gpu_ms: kernels.reduce((sum, k) => sum + (k.ms || 0), 0),
      wall_ms: wallMs,
    };
  }
}

/** Every buffer id an op touches. */
function touched(op) {
  if (op.op === 'create' || op.op === 'read') return [op.id];
  if (op.op === 'copy') return [op.src, op.dst];
  return op.bindings.map(([, id]) => id);
}

function lastUses(ops) {
  const last = new Map();
  ops.forEach((op, i) => {
    for (const id of touched(op)) last.set(id, i);
  });
  return last;
}

/** 2·M·N·K·batch for a product, 0 for anything else. */
function flopsOf(op) {
  const names = op.param_names;
  const field = (n) => op.params[names.indexOf(n)];
  if (['M', 'N', 'K', 'batch'].every((n) => names.includes(n))) return 2 * field('M') * field('N') * field('K') * field('batch');
  return 0;
}

function decode(bytes, dtype) {
  if (dtype === 'f16') return Array.from(new Uint16Array(bytes), halfToFloat);
  return new Float32Array(bytes);
}

function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** max|got − want| / max(max|want|, 1e-6); non-finite values must match exactly. */
export function scaledError(got, want) {
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i], want[i]];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (!Object.is(g, w)) return Infinity;
      continue;
    }
    diff = Math.max(diff, Math.abs(g - w));
    scale = Math.max(scale, Math.abs(w));
  }
  return diff / scale;
}
