#!/bin/bash
# Where floodgate_xdp spends its time on one packet, by source line.
#
#   Benchmarks/tools/profile-packet.sh PAYLOAD [CLASS] [REPEAT]
#
# Attaches Floodgate (release build) to a veth of a lab namespace of its own, with the default policy but CLASS's
# per-source limit (default: register) and both prefix levels unlimited, so the packet takes the admitted path
# every time. Then runs one IPv4/UDP frame to port 5060 from 198.18.1.1, with the bytes of the file PAYLOAD (a SIP
# message), REPEAT times (default 3,000,000) with BPF_PROG_TEST_RUN on CPU 1, samples that CPU with perf, and maps
# the samples that fell in the JITed program to source lines with jit-lines (built here on first use). Needs root,
# perf, bpftool, libbpf-dev and a C compiler. The namespace, its veth and the pins are removed on exit.
set -euo pipefail
payload=$(realpath -e "$1")
cd "$(dirname "$0")/../.."
class=${2:-register}
repeat=${3:-3000000}
tools=Benchmarks/tools
ns=fg-profile-$$
pins=/sys/fs/bpf/fg-profile-$$
work=$(mktemp -d)
floodgate() { nsenter --net=/run/netns/$ns .build/release/floodgate "$@" --pin-root "$pins" >/dev/null; }
created=
cleanup() {
    if [ -n "$created" ]; then
        floodgate detach fgp0 2>/dev/null || true
        ip netns del $ns 2>/dev/null || true
        rm -rf "$pins"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
[ "$tools/jit-lines" -nt "$tools/jit-lines.c" ] || cc -O1 -o "$tools/jit-lines" "$tools/jit-lines.c" -lbpf
[ -n "${FLOODGATE_NO_BUILD:-}" ] || swift build -c release --product floodgate >/dev/null
ip netns add $ns
created=1
ip link add fgp0 netns $ns type veth peer name fgp1 netns $ns
ip -n $ns link set fgp0 up
ip -n $ns link set fgp1 up
mkdir -p "$pins"
# nsenter, not ip netns exec: that mounts a /sys of its own, without the bpffs the pins are on.
floodgate attach fgp0 --mode native
floodgate limit set "$class" --unlimited
floodgate prefix set --unlimited
floodgate prefix set --wide --unlimited
python3 - "$payload" "$work/frame" <<'PY'
import struct, sys
payload = open(sys.argv[1], 'rb').read()
udp = struct.pack('!HHHH', 40000, 5060, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes([198, 18, 1, 1]), bytes([198, 18, 0, 2]))
open(sys.argv[2], 'wb').write(bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]) + b'\x08\x00' + ip + udp)
PY
link=$(nsenter --net=/run/netns/$ns ip -j link show fgp0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["xdp"]["prog"]["id"])')
"$tools/jit-lines" "$link" > "$work/lines"
# The admitted path is the one profiled: the frame must pass (XDP_PASS, 2).
verdict=$(bpftool prog run id "$link" data_in "$work/frame" repeat 1000 | grep -io "return value.*")
echo "$verdict"
case "$verdict" in
[Rr]eturn\ value:\ 2,*) ;;
*) echo "the frame was not passed: its path is not the admitted one (another limit, or a scanner's signature?)" >&2; exit 1 ;;
esac
perf record -C 1 -o "$work/perf.data" -- taskset -c 1 bpftool prog run id "$link" data_in "$work/frame" repeat "$repeat" \
    2>/dev/null | grep -o "duration.*"
perf report -i "$work/perf.data" --no-children --stdio 2>/dev/null | grep '%' | head -8 || true
perf script -i "$work/perf.data" -F ip,sym 2>/dev/null | awk '/bpf_prog_/ {print $1}' > "$work/ips" || true
python3 "$tools/jit-samples.py" "$work/lines" "$work/ips" "the program"
