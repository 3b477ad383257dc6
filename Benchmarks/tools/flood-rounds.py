#!/usr/bin/env python3
"""Two builds of Floodgate beside each other in one flood, round by round, each going first in half the rounds.

    Benchmarks/tools/flood-rounds.py A B SCENARIO [ROUNDS] [--calls N]

A and B are `floodgate` binaries (two builds: say this tree's .build/release/floodgate and a copy of another
commit's). Each round runs `A flood --scenario SCENARIO --filter floodgate --seconds 2 --json`, the same with B,
and the oracle (`--filter oracle`, from A), the two builds in the order A, B in odd rounds and B, A in even ones
(ROUNDS, default 10, is rounded up to even). With --calls N, each run has N calls and registrations beside it
(`floodgate flood --calls`). Prints every run's Mpps, then each build's median, its cost over the oracle's median
(1/Mpps - 1/Mpps of the oracle), the rounds it was ahead in, and each build's median by place in the round: where a
build stands moved it by as much as a change did (Benchmarks/README.md, "The drop cache's tags in the per-CPU
state"), so a comparison that always runs one build first measures the order as much as the builds.

Needs root (the flood makes namespaces of its own and removes them). Each run is bounded by the flood's own
--seconds and by a timeout here; a run that fails stops the script with its error.
"""
import json
import statistics
import subprocess
import sys

RUN_TIMEOUT_S = 240


def usage():
    sys.exit(__doc__.strip().split("\n\n")[1])


def flood(binary, scenario, filter_name, calls):
    command = [binary, "flood", "--scenario", scenario, "--filter", filter_name, "--seconds", "2", "--json"]
    if calls:
        command += ["--calls", str(calls)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if done.returncode != 0:
        sys.exit(f"{binary} {filter_name}: exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    return float(json.loads(done.stdout)["mpps"])


def main():
    args = sys.argv[1:]
    calls = 0
    if "--calls" in args:
        at = args.index("--calls")
        if at + 1 >= len(args) or not args[at + 1].isdigit():
            usage()
        calls = int(args[at + 1])
        del args[at:at + 2]
    if len(args) not in (3, 4):
        usage()
    a, b, scenario = args[:3]
    if len(args) == 4 and not args[3].isdigit():
        usage()
    rounds = int(args[3]) if len(args) == 4 else 10
    if not 1 <= rounds <= 100:
        sys.exit("ROUNDS: 1 to 100")
    rounds += rounds % 2
    runs = {"A": [], "B": [], "oracle": []}
    by_place = {("A", 1): [], ("A", 2): [], ("B", 1): [], ("B", 2): []}
    for r in range(rounds):
        order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
        for place, who in enumerate(order, 1):
            mpps = flood(a if who == "A" else b, scenario, "floodgate", calls)
            runs[who].append(mpps)
            by_place[(who, place)].append(mpps)
            print(f"round {r + 1:2} {who} ({'first' if place == 1 else 'second'}) {mpps:.3f} Mpps", flush=True)
        mpps = flood(a, scenario, "oracle", calls)
        runs["oracle"].append(mpps)
        print(f"round {r + 1:2} oracle {mpps:.3f} Mpps", flush=True)
    oracle = statistics.median(runs["oracle"])
    print(f"\n{scenario}{f', {calls} calls beside' if calls else ''}: {rounds} rounds, A = {a}, B = {b}")
    print(f"oracle {oracle:.3f} Mpps (range {min(runs['oracle']):.3f}-{max(runs['oracle']):.3f})")
    for who, other in (("A", "B"), ("B", "A")):
        m = statistics.median(runs[who])
        ahead = sum(x > y for x, y in zip(runs[who], runs[other]))
        first = statistics.median(by_place[(who, 1)])
        second = statistics.median(by_place[(who, 2)])
        print(f"{who} {m:.3f} Mpps (range {min(runs[who]):.3f}-{max(runs[who]):.3f}), "
              f"{1e3 / m - 1e3 / oracle:+.1f} ns over the oracle, {m / oracle:.2f}x it, ahead in {ahead} of "
              f"{rounds} rounds; first {first:.3f}, second {second:.3f} Mpps")
    ma, mb = statistics.median(runs["A"]), statistics.median(runs["B"])
    print(f"A - B: {1e3 / ma - 1e3 / mb:+.1f} ns a packet")


if __name__ == "__main__":
    main()
