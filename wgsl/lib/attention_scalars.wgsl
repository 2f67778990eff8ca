// The fused attention's [T, hd] matrices bound as f32s, for any head width hd: quad j of row
// `row` (of [B·H·T, hd]) is four loads of columns 4j … 4j + 3, those past hd read as 0 (so they
// add nothing to any score or sum) and never written. Prepended to wgsl/attention.wgsl where hd
// is not a multiple of 4 (`kernels::attention`); attention_quads.wgsl is the same with one vec4
// load per quad, and gives the same bits.

@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;   // forward output
@group(0) @binding(6) var<storage, read> o_saved: array<f32>;   // backward: the forward's O
@group(0) @binding(8) var<storage, read> dout: array<f32>;      // backward: dO
@group(0) @binding(12) var<storage, read_write> dk: array<f32>;
@group(0) @binding(13) var<storage, read_write> dv: array<f32>;
@group(0) @binding(14) var<storage, read_write> dq: array<f32>;

// Quads per row: hd / 4 rounded up (the last one partial where hd is not a multiple of 4).
fn head_quads() -> u32 {
    return (params.head_dim + 3u) / 4u;
}

// Which of columns 4j … 4j + 3 lie inside the row.
fn inside(j: u32) -> vec4<bool> {
    return vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(params.head_dim);
}

// Where quad j's values are, each clamped into the row (a column past hd reads the row's last
// value, which `inside` then replaces by 0).
fn quad_index(row: u32, j: u32) -> vec4<u32> {
    let hd = params.head_dim;
    return vec4<u32>(row * hd) + min(vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(hd - 1u));
}

fn q_at(row: u32, j: u32) -> vec4<f32> {
    let i = quad_index(row, j);
    return select(vec4<f32>(), vec4<f32>(q[i.x], q[i.y], q[i.z], q[i.w]), inside(j));
}
fn k_at(row: u32, j: u32) -> vec4<f32> {
    let i = quad_index(row, j);
    return select(vec4<f32>(), vec4<f32>(k[i.x], k[i.y], k[i.z], k[i.w]), inside(j));
}
fn v_at(row: u32, j: u32) -> vec4<f32> {
    let i = quad_index(row, j);
    return select(vec4<f32>(), vec4<f32>(v[i.x], v[i.y], v[i.z], v[i.w]), inside(j));
}
fn o_saved_at(row: u32, j: u32) -> vec4<f32> {
    let i = quad_index(row, j);
    return select(vec4<f32>(), vec4<f32>(o_saved[i.x], o_saved[i.y], o_saved[i.z], o_saved[i.w]), inside(j));
}
fn dout_at(row: u32, j: u32) -> vec4<f32> {
    let i = quad_index(row, j);
    return select(vec4<f32>(), vec4<f32>(dout[i.x], dout[i.y], dout[i.z], dout[i.w]), inside(j));
}

// The columns of quad j that lie inside the row, written.
fn o_put(row: u32, j: u32, value: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        if (4u * j + c < params.head_dim) { o[row * params.head_dim + 4u * j + c] = value[c]; }
    }
}
fn dk_put(row: u32, j: u32, value: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        if (4u * j + c < params.head_dim) { dk[row * params.head_dim + 4u * j + c] = value[c]; }
    }
}
fn dv_put(row: u32, j: u32, value: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        if (4u * j + c < params.head_dim) { dv[row * params.head_dim + 4u * j + c] = value[c]; }
    }
}
fn dq_put(row: u32, j: u32, value: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        if (4u * j + c < params.head_dim) { dq[row * params.head_dim + 4u * j + c] = value[c]; }
    }
}
