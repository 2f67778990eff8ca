#!/usr/bin/env bash
# Where a run on lavapipe spends its time, by kind of machine code (storage loads lane by lane,
# arithmetic, shuffles, spills, …). For deciding what a kernel change on lavapipe can buy: a
# timing says how long, this says on what.
#
#   bash benches/lavapipe_profile.sh [--delay S] [--seconds S] [--show N] -- COMMAND...
#
# e.g. bash benches/lavapipe_profile.sh --delay 8 --seconds 20 -- \
#        target/release/vpt bench --preset vit-b --batch 8 --filter "train step" --reps 1
#
# It starts COMMAND, waits --delay seconds (past pipeline creation), samples it with `perf record`
# for --seconds, stops it, copies its run-time-compiled code (the anonymous executable mappings,
# where lavapipe puts its kernels) out with gdb, kills it, disassembles that code with objdump,
# and hands the samples and the code to benches/lavapipe_profile.py, which prints the split (its
# docstring says how each kind is recognised and on which Mesa the rules were written).
#
# Needs perf, gdb and objdump (Debian: linux-perf, gdb, binutils), and permission to trace the
# command (root, or kernel.perf_event_paranoid ≤ 1 and ptrace allowed). COMMAND runs with
# WGPU_BACKEND=vulkan unless the environment says otherwise. Stopping COMMAND midway is the
# point: it must still be running when the sampling ends (the script says so when it is not).
set -euo pipefail

delay=5
seconds=10
show=0
while [[ $# -gt 0 && $1 != "--" ]]; do
    case $1 in
        --delay) delay=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --show) show=$2; shift 2 ;;
        *) echo "lavapipe_profile.sh: unknown option $1 (options: --delay S, --seconds S, --show N, then -- COMMAND)" >&2; exit 2 ;;
    esac
done
if [[ $# -lt 2 ]]; then
    echo "usage: bash benches/lavapipe_profile.sh [--delay S] [--seconds S] [--show N] -- COMMAND..." >&2
    exit 2
fi
shift
for tool in perf gdb objdump python3; do
    command -v "$tool" >/dev/null || { echo "lavapipe_profile.sh: $tool not found (Debian: apt-get install linux-perf gdb binutils python3)" >&2; exit 1; }
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /tmp/lavapipe_profile.XXXXXX)
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}

"$@" >"$work/command.log" 2>&1 &
pid=$!
sleep "$delay"
kill -0 "$pid" 2>/dev/null || { echo "lavapipe_profile.sh: the command ended within --delay $delay s; see $work/command.log" >&2; exit 1; }
perf record -e cpu-clock -F 4000 -p "$pid" -o "$work/perf.data" -- sleep "$seconds" >/dev/null 2>&1
kill -STOP "$pid" 2>/dev/null || { echo "lavapipe_profile.sh: the command ended while perf sampled it; give a shorter --seconds (log: $work/command.log)" >&2; exit 1; }
# Copy every anonymous executable mapping (no file behind it: lavapipe's compiled kernels).
dumps=()
while read -r range perms _ _ _ path; do
    if [[ $perms == r-x* && -z ${path:-} ]]; then
        lo=0x${range%-*}
        hi=0x${range#*-}
        dumps+=(-ex "dump memory $work/jit.$lo.bin $lo $hi")
    fi
done <"/proc/$pid/maps"
gdb -p "$pid" -batch "${dumps[@]}" >"$work/gdb.log" 2>&1 || true
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
for bin in "$work"/jit.*.bin; do
    [[ -e $bin ]] || { echo "lavapipe_profile.sh: no JIT code copied (gdb: $work/gdb.log)" >&2; exit 1; }
    lo=${bin#"$work/jit."}
    lo=${lo%.bin}
    objdump -D -b binary -m i386:x86-64 --adjust-vma="$lo" "$bin" | grep -E '^ +[0-9a-f]+:' >"${bin%.bin}.s"
done
perf script -i "$work/perf.data" -F ip 2>/dev/null | awk '{print $1}' | sort | uniq -c >"$work/samples.txt"
echo "command: $*"
echo "sampled ${seconds} s after ${delay} s; files in $work"
python3 "$here/lavapipe_profile.py" "$work" --show "$show"
