"""`python -m moldau.chaos`: run scenarios x seeds, print one line per run and a table.

    python -m moldau.chaos --list
    python -m moldau.chaos --scenario leader-killed --seed 7          # reproduce one run
    python -m moldau.chaos --seeds 20 --fault-s 5 --out chaos-results.json

Exit status: 0 when every run is as expected (clean, or showing its scenario's known
bug), 1 otherwise, 2 when this machine cannot run the harness (not root, no iptables).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from moldau.chaos.netns import check_support
from moldau.chaos.runner import RunOptions, run
from moldau.chaos.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so every `finally` kills what
    # the run started and removes its namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(prog="python -m moldau.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--scenario", action="append", help="a scenario to run (repeatable; default: all)")
    parser.add_argument("--seed", type=int, action="append", help="a seed to run (repeatable)")
    parser.add_argument("--seeds", type=int, default=1, help="run seeds 0..N-1 (default 1)")
    parser.add_argument("--fault-s", type=float, default=3.0, help="how long one fault lasts (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="repeats of a repeated fault (default 2)")
    parser.add_argument("--out", type=Path, help="write every run's summary here (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep every run's directory, not only failed ones")
    args = parser.parse_args(argv)

    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.name:28} {s.description}" + (f"  [known bug: {s.known_bug}]" if s.known_bug else ""))
        return 0
    reason = check_support()
    if reason is not None:
        print(f"cannot run the chaos suite here: {reason}", file=sys.stderr)
        return 2
    names = args.scenario or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; --list shows them")
    seeds = args.seed or list(range(args.seeds))
    summaries = []
    unexpected = 0
    for name in names:
        scenario = SCENARIOS[name]
        for seed in seeds:
            outcome = run(scenario, RunOptions(seed=seed, fault_s=args.fault_s, rounds=args.rounds, keep=args.keep))
            summary = outcome.summary()
            expected = scenario.expected(outcome)
            summary["expected"] = expected
            summaries.append(summary)
            unexpected += 0 if expected else 1
            status = "ok" if outcome.ok else ("KNOWN BUG" if expected else "FAIL")
            if outcome.ok and not expected:
                status = "NOT SEEN"  # a known bug that this run did not reproduce
            detail = "" if outcome.ok else f" anomalies={summary['anomalies']} problems={outcome.problems[:3]}"
            kept = "" if outcome.ok and not args.keep else f" dir={outcome.workdir}"
            print(f"{status:9} {name:28} seed={seed:<3} {outcome.seconds:5.1f}s{detail}{kept}", flush=True)
            if args.out:
                args.out.write_text(json.dumps(summaries, indent=2, default=str) + "\n")
    print(f"{len(summaries)} runs, {unexpected} unexpected")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
