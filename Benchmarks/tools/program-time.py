#!/usr/bin/env python3
"""The filter's own time per packet in a flood, from perf's samples, beside the Mpps the flood reports.

    Benchmarks/tools/program-time.py BINARY SCENARIO [ROUNDS] [FILTER[@BINARY]...]

Runs `BINARY flood --scenario SCENARIO --filter F --seconds 6 --json` for each FILTER (default: oracle floodgate;
FILTER@OTHER runs it from another build's binary, so that two builds of Floodgate can be set beside each other),
in turn, ROUNDS times (default 3; the filters' order turns each round). Once the flood's generator is loaded (its
programs show in `bpftool prog show`), it samples every CPU with perf for 3 s, and splits the samples that fell in
BPF programs into the generator's (`floodgate_flood`, `floodgate_flood_fixed`) and the filter's (every other
program: floodgate_xdp and the global functions it calls, the oracle, the floor, the trivial program). Both the
start and the samples are the whole machine's: run nothing else that floods or runs BPF meanwhile (the test suite
does). Each share becomes nanoseconds per packet the filter saw:

    share of all samples x CPUs x 1e3 / Mpps

Why: the Mpps a flood reaches is the generator's, the kernel's and the filter's work together, and on this VM the
kernel's part moves with what the filter does. In a flood of one fixed frame (single source), the oracle and
Floodgate reached the same Mpps while their own times were 4.6 and 20.6 ns a packet; in the random-source floods
the Mpps showed most of the difference (Benchmarks/README.md, "The
filter's own time in a flood"). The samples say what the filter itself costs; the Mpps, what it costs the flood.

Prints each run, then each filter's medians and the median of the filter's time over the first FILTER's. perf
samples with the CPU clock here (no hardware counters), about 4,000 a second per CPU: a filter's figure in one run
rests on a few hundred samples, so it carries a few per cent of sampling noise.

Needs root, perf and bpftool; the flood makes its namespaces and removes them. Each run is bounded by the flood's
--seconds and a timeout here (a flood past it is killed, and may leave its lab behind); a run that fails stops the
script with its error.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

FLOOD_SECONDS = 6
START_TIMEOUT_S = 60
SETTLE_S = 0.5
SAMPLE_SECONDS = 3
RUN_TIMEOUT_S = 240
SYMBOL = re.compile(r"^\s*([\d.]+)%.*\[k\]\s+(\S+)")
# perf names a JITed program bpf_prog_<tag>_<name>, the name the whole of its BTF function name.
PROGRAM = re.compile(r"^bpf_prog_[0-9a-f]+_(\w+)$")
GENERATOR_PROGRAMS = ("floodgate_flood", "floodgate_flood_fixed")


def usage():
    sys.exit(__doc__.strip().split("\n\n")[1])


def shares(report):
    """The generator's and the filter's percentages of all samples, from `perf report --sort sym`."""
    generator = filt = 0.0
    for line in report.splitlines():
        m = SYMBOL.match(line)
        program = m and PROGRAM.match(m.group(2))
        if not program:
            continue
        if program.group(1) in GENERATOR_PROGRAMS:
            generator += float(m.group(1))
        else:
            filt += float(m.group(1))
    if filt == 0:
        sys.exit("no sample fell in the filter's programs: is perf resolving BPF symbols (root, kallsyms)?")
    return generator, filt


def generator_loaded():
    """Whether the flood's generator programs are loaded, that is, whether the flood has started."""
    shown = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, timeout=30)
    return shown.returncode == 0 and any(p.get("name") in GENERATOR_PROGRAMS for p in json.loads(shown.stdout or "[]"))


def run(binary, scenario, filter_name, cpus):
    if "@" in filter_name:
        filter_name, binary = filter_name.split("@", 1)
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "perf.data")
        flood = subprocess.Popen(
            [binary, "flood", "--scenario", scenario, "--filter", filter_name, "--seconds", str(FLOOD_SECONDS),
             "--packets", "1000000000", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampled = None
        try:
            # The lab is built and the filter loaded (Floodgate's verifier takes a second or two) before the flood
            # starts: sample once the generator is loaded and the flood has settled, within its 6 s.
            deadline = time.monotonic() + START_TIMEOUT_S
            while flood.poll() is None and not generator_loaded() and time.monotonic() < deadline:
                time.sleep(0.1)
            if flood.poll() is None and time.monotonic() < deadline:
                time.sleep(SETTLE_S)
                sampled = subprocess.run(["perf", "record", "-a", "-q", "-o", data, "--", "sleep", str(SAMPLE_SECONDS)],
                                         capture_output=True, text=True, timeout=SAMPLE_SECONDS + 60)
        finally:
            # The flood ends by itself (--seconds) and removes its lab: wait for it rather than kill it, which
            # would leave the lab's namespaces behind.
            try:
                out, err = flood.communicate(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                flood.kill()
                flood.wait()
                sys.exit(f"{filter_name}: the flood did not end within {RUN_TIMEOUT_S} s; killed")
        if flood.returncode != 0:
            sys.exit(f"{filter_name}: exit {flood.returncode}: {err.strip()[-2000:]}")
        if sampled is None:
            sys.exit(f"{filter_name}: the flood's generator did not show within {START_TIMEOUT_S} s")
        if sampled.returncode != 0:
            sys.exit(f"perf record: exit {sampled.returncode}: {sampled.stderr.strip()[-2000:]}")
        mpps = float(json.loads(out)["mpps"])
        if mpps <= 0:
            sys.exit(f"{filter_name}: the filter saw no packet")
        report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "sym", "--stdio"],
                                capture_output=True, text=True, timeout=120, check=True).stdout
    generator, filt = shares(report)
    per_packet = lambda share: share * cpus * 10 / mpps  # share/100 x cpus x 1e9 ns / (mpps x 1e6)
    return mpps, per_packet(filt), per_packet(generator)


def main():
    args = sys.argv[1:]
    if len(args) < 2 or args[0] in ("-h", "--help"):
        usage()
    binary, scenario = args[0], args[1]
    rounds = 3
    rest = args[2:]
    if rest and rest[0].isdigit():
        rounds = int(rest[0])
        rest = rest[1:]
    filters = rest or ["oracle", "floodgate"]
    if rounds < 1:
        sys.exit("ROUNDS must be 1 or more")
    cpus = os.cpu_count()
    results = {f: [] for f in filters}
    print(f"{scenario}, {rounds} rounds, perf over {cpus} CPUs; ns a packet the filter saw")
    print(f"{'round':>5} {'filter':10} {'Mpps':>6} {'1/Mpps':>7} {'filter':>7} {'generator':>9}")
    for r in range(rounds):
        order = filters[r % len(filters):] + filters[:r % len(filters)]
        for f in order:
            mpps, filt, generator = run(binary, scenario, f, cpus)
            results[f].append((mpps, filt, generator))
            print(f"{r + 1:>5} {f:10} {mpps:6.3f} {1000 / mpps:7.1f} {filt:7.1f} {generator:9.1f}", flush=True)
    print(f"\nmedians{'':3} {'Mpps':>6} {'1/Mpps':>7} {'filter':>7} {'generator':>9}   over {filters[0]}: "
          "1/Mpps, the filter's time")
    base = results[filters[0]]
    for f in filters:
        rows = results[f]
        mpps = statistics.median(m for m, _, _ in rows)
        filt = statistics.median(x for _, x, _ in rows)
        generator = statistics.median(g for _, _, g in rows)
        line = f"{f:10} {mpps:6.3f} {1000 / mpps:7.1f} {filt:7.1f} {generator:9.1f}"
        if f != filters[0]:
            # Round by round, against the first filter's run of the same round.
            gap = statistics.median(1000 / a[0] - 1000 / b[0] for a, b in zip(rows, base))
            own = statistics.median(a[1] - b[1] for a, b in zip(rows, base))
            line += f"   {gap:+6.1f} ns, {own:+6.1f} ns"
        print(line)


if __name__ == "__main__":
    main()
