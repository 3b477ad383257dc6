#!/bin/bash
# Where floodgate_xdp spends its time under a flood, by source line.
#
#   Benchmarks/tools/profile-flood.sh [SCENARIO] [floodgate flood options...]
#
# Runs `floodgate flood` (release build) against Floodgate for 5 s, samples every CPU with perf for 1.5 s in
# the middle, and maps the samples that fell in the JITed program to source lines with jit-lines (built here
# on first use). Needs root, perf, libbpf-dev and a C compiler. Everything runs in the flood's own lab.
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario=${1:-single-source}
shift || true
tools=Benchmarks/tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ "$tools/jit-lines" -nt "$tools/jit-lines.c" ] || cc -O1 -o "$tools/jit-lines" "$tools/jit-lines.c" -lbpf
[ -n "${FLOODGATE_NO_BUILD:-}" ] || swift build -c release --product floodgate >/dev/null
.build/release/floodgate flood --scenario "$scenario" --filter floodgate --seconds 5 --packets 1000000000 "$@" 2>/dev/null &
flood=$!
# The program shows once the flood's lab has loaded it (the verifier takes seconds on a slow machine); then the
# flood has 5 s to run, and perf samples its middle.
id=
for _ in $(seq 60); do
    id=$(bpftool prog show name floodgate_xdp 2>/dev/null | awk -F: 'NR == 1 {print $1}' || true)  # awk reads it all: head would end bpftool with SIGPIPE, which pipefail makes fatal
    [ -z "$id" ] || break
    sleep 0.5
done
[ -n "$id" ] || { echo "floodgate_xdp was not loaded within 30 s" >&2; kill "$flood" 2>/dev/null; exit 1; }
sleep 1.5
"$tools/jit-lines" "$id" > "$work/lines"
perf record -a -o "$work/perf.data" -- sleep 1.5 2>/dev/null
wait "$flood"
perf report -i "$work/perf.data" --no-children --stdio 2>/dev/null | grep '%' | head -8 || true
perf script -i "$work/perf.data" -F ip,sym 2>/dev/null | awk '/bpf_prog_/ && !/floodgate_flood/ {print $1}' > "$work/ips" || true
python3 "$tools/jit-samples.py" "$work/lines" "$work/ips" "floodgate_xdp"
