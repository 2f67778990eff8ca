#!/usr/bin/env bash
# One script for a machine with a real GPU: prove the kernels correct there, measure which
# variants win there, and time a ViT-B/16 training step, all into one JSON file.
#
#   bash benches/gpu.sh [OUT.json] [BATCH]      (defaults: gpu-report.json, 32)
#
# Steps: `vpt check` (every kernel against PyTorch fixtures and f64; the script stops if any
# fails), `vpt tune` at the ViT-B/16 preset (writes this adapter's tune cache, which the benches
# then use; f16 weights are tuned too where the adapter has SHADER_F16), then `vpt bench --preset
# vit-b --json` with f32 weights, with f16 weights (where the adapter has them), and the training
# step with the unfused attention. Set PEAK_GFLOPS to the adapter's FP32 peak (data sheet) for a
# "% of peak" per matmul. WGPU_BACKEND picks the API (vulkan, metal, dx12, gl).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-report.json}"
batch="${2:-32}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
vpt=target/release/vpt
peak=()
[ -n "${PEAK_GFLOPS:-}" ] && peak=(--peak-gflops "$PEAK_GFLOPS")

"$vpt" info > "$work/info.txt"
echo "== vpt check"; "$vpt" check | tee "$work/check.txt" | tail -n 1
echo "== vpt tune --preset vit-b --batch $batch"; "$vpt" tune --preset vit-b --batch "$batch" | tee "$work/tune.txt"
echo "== vpt bench --preset vit-b --batch $batch"
"$vpt" bench --preset vit-b --batch "$batch" --json "${peak[@]}" > "$work/bench.json"
# f16 weights need SHADER_F16; without it vpt says so, and the report records why it was skipped.
if ! "$vpt" bench --preset vit-b --batch "$batch" --json --precision f16 --filter "f16 W,train step" "${peak[@]}" > "$work/bench_f16.json" 2> "$work/f16.err"; then
    python3 -c 'import json, sys; print(json.dumps({"skipped": open(sys.argv[1]).read().strip()}))' "$work/f16.err" > "$work/bench_f16.json"
fi
"$vpt" bench --preset vit-b --batch "$batch" --json --attention unfused --filter "train step" > "$work/bench_unfused.json"

# One JSON: the text outputs as strings, the benchmarks as they are.
python3 - "$work" "$out" <<'PY'
import json, sys, pathlib
work, out = pathlib.Path(sys.argv[1]), sys.argv[2]
report = {
    "info": (work / "info.txt").read_text(),
    "check": (work / "check.txt").read_text(),
    "tune": (work / "tune.txt").read_text(),
    "bench": json.loads((work / "bench.json").read_text()),
    "bench_f16_weights": json.loads((work / "bench_f16.json").read_text()),
    "bench_unfused_attention_step": json.loads((work / "bench_unfused.json").read_text()),
}
pathlib.Path(out).write_text(json.dumps(report, indent=1) + "\n")
print(f"wrote {out}")
PY
