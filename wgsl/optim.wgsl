// Optimizer updates, run on the GPU, in place. Exactly torch.optim's arithmetic so a training run
// can be compared with PyTorch step by step.
//
//   sgd_step (torch.optim.SGD, dampening 0):
//       g   = grad + wd·p
//       buf = momentum·buf + g            (buf starts at 0, so the first step gives buf = g, as torch)
//       g   = nesterov ? g + momentum·buf : buf
//       p   = p − lr·g
//   adamw_step (torch.optim.AdamW):
//       p = p·(1 − lr·wd)
//       m = β1·m + (1 − β1)·g ;  v = β2·v + (1 − β2)·g²
//       p = p − (lr / bc1) · m / (√v / √bc2 + eps),   bc1 = 1 − β1^t, bc2 = 1 − β2^t (from the host)
//
// p, grad, buf/m/v: [n], one thread per element. These are the only kernels that write into an
// existing tensor.

struct Params {
    n: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,      // SGD
    nesterov: u32,      // SGD
    beta1: f32,         // AdamW
    beta2: f32,         // AdamW
    eps: f32,           // AdamW
    bias_correction1: f32,   // AdamW: 1 − β1^t
    bias_correction2: f32,   // AdamW: 1 − β2^t
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> state1: array<f32>;   // SGD: momentum buffer; AdamW: m
@group(0) @binding(4) var<storage, read_write> state2: array<f32>;   // AdamW: v

@compute @workgroup_size(WG)
fn sgd_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    var g = grad[i] + params.weight_decay * param[i];
    let buf = params.momentum * state1[i] + g;
    state1[i] = buf;
    if (params.nesterov == 1u) {
        g = g + params.momentum * buf;
    } else {
        g = buf;
    }
    param[i] = param[i] - params.lr * g;
}

@compute @workgroup_size(WG)
fn adamw_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    let g = grad[i];
    let p = param[i] * (1.0 - params.lr * params.weight_decay);
    let m = params.beta1 * state1[i] + (1.0 - params.beta1) * g;
    let v = params.beta2 * state2[i] + (1.0 - params.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let denom = sqrt(v) / sqrt(params.bias_correction2) + params.eps;
    param[i] = p - (params.lr / params.bias_correction1) * m / denom;
}
