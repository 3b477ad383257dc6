#!/usr/bin/env python3
"""Counts perf's samples by source line of a JITed BPF program.

    jit-samples.py LINES IPS TITLE

LINES is jit-lines' output for the program (an address and a source line per row, after a "function" row per
function); IPS has one sampled instruction address (hexadecimal) per row, from `perf script -F ip`. Each sample
goes to the last line that starts at or below its address. Prints the 30 lines with the most samples.
"""
import bisect
import collections
import sys

lines_path, ips_path, title = sys.argv[1:4]
lines = []
for row in open(lines_path):
    if not row.startswith("function"):
        address, rest = row.split(" ", 1)
        lines.append((int(address, 16), rest.rstrip()))
lines.sort()
starts = [address for address, _ in lines]
counts = collections.Counter()
for row in open(ips_path):
    i = bisect.bisect_right(starts, int(row, 16)) - 1
    if i >= 0:
        counts[lines[i][1][:140]] += 1
print(f"samples in {title}: {sum(counts.values())}")
for line, n in counts.most_common(30):
    print(f"{n:6d} {line}")
