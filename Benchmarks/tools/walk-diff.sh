#!/bin/bash
# Do two trees' header walks find the same in every message?
#
#   Benchmarks/tools/walk-diff.sh BASE [CASES] [SEED]
#   Benchmarks/tools/walk-diff.sh --self [CASES] [SEED]
#
# Builds walk-probe.bpf.c (the header walk alone, lib/scanner.h) against the BPF tree of commit BASE and against
# the working tree, loads both (bpftool prog loadall, no interface), and sends the same messages through each with
# BPF_PROG_TEST_RUN (walk-diff.py). Exits 1 if any message is walked differently. For a change to the walk that
# must not change what it finds. With --self, the working tree's walk is compared with itself, the buffer the
# message is copied into filled with a different byte on each side: a difference is a walk whose result depends
# on bytes past the message. Needs root, bpftool, clang (the toolchain's) and libbpf-dev. The pins and the
# base tree are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
base=$1
tools=Benchmarks/tools
work=$(mktemp -d)
pins=/sys/fs/bpf/fg-walkdiff-$$
cleanup() { rm -rf "$pins-base" "$pins-tree" "$work"; }
trap cleanup EXIT
clang=$(dirname "$(readlink -f "$(command -v swift)")")/clang
[ -x "$clang" ] || clang=clang
sides="base tree"
if [ "$base" = --self ]; then
    sides=tree
else
    git archive "$base" BPF | tar -x -C "$work"
fi
for side in $sides; do
    bpf=$PWD/BPF
    [ "$side" = base ] && bpf=$work/BPF
    "$clang" -target bpf -mcpu=v3 -O2 -g -I/usr/include/"$(uname -m)"-linux-gnu -I "$bpf" \
        -c "$tools/walk-probe.bpf.c" -o "$work/$side.o"
    bpftool prog loadall "$work/$side.o" "$pins-$side" type xdp
done
if [ "$base" = --self ]; then
    python3 "$tools/walk-diff.py" "$pins-tree" "$pins-tree" "${2:-2000}" "${3:-1}" apart
else
    python3 "$tools/walk-diff.py" "$pins-base" "$pins-tree" "${2:-2000}" "${3:-1}" same
fi
