#!/usr/bin/env python3
"""Counts perf's samples by source line of a JITed BPF program.

    jit-samples.py LINES IPS TITLE

LINES is jit-lines' output for the program (a "function ADDRESS LENGTH" row per function, then an address and a
source line per row); IPS has one sampled instruction address (hexadecimal) per row, from `perf script -F ip`.
A sample outside the program's functions (another BPF program's, on the same CPU) is left out; the others go to
the last line that starts at or below their address. Prints the 30 lines with the most samples.
"""
import bisect
import collections
import sys

lines_path, ips_path, title = sys.argv[1:4]
lines, functions = [], []
for row in open(lines_path):
    if row.startswith("function"):
        _, address, length = row.split()
        functions.append((int(address, 16), int(length)))
    else:
        address, rest = row.split(" ", 1)
        lines.append((int(address, 16), rest.rstrip()))
lines.sort()
starts = [address for address, _ in lines]
counts = collections.Counter()
for row in open(ips_path):
    ip = int(row, 16)
    if not any(start <= ip < start + length for start, length in functions):
        continue
    i = bisect.bisect_right(starts, ip) - 1
    if i >= 0:
        counts[lines[i][1][:140]] += 1
print(f"samples in {title}: {sum(counts.values())}")
for line, n in counts.most_common(30):
    print(f"{n:6d} {line}")
