#!/usr/bin/env python3
"""Per-file table of a cargo-mutants run (bench/mutants.sh calls it).

    python3 bench/mutants_table.py target/mutants/mutants.out [TEST ...]

Prints caught / missed / timeout / unviable per file and every survivor.
With TEST names, prints the same mutants a second time as if those tests did
not exist: a caught mutant stays caught only if another test failed on it.
That is exact for tests that were only added (libtest runs every test of the
binary, so each log names every test that failed).
"""

import collections
import json
import pathlib
import re
import sys

KINDS = {"CaughtMutant": "caught", "MissedMutant": "missed", "Timeout": "timeout", "Unviable": "unviable"}
COLS = ["caught", "missed", "timeout", "unviable"]


def mutants(out):
    for o in json.loads((out / "outcomes.json").read_text())["outcomes"]:
        scenario = o["scenario"]
        if isinstance(scenario, dict) and "Mutant" in scenario:
            yield o, scenario["Mutant"]


def failing_tests(out, outcome):
    text = (out / outcome["log_path"]).read_text(errors="replace")
    return set(re.findall(r"^---- (\S+) stdout ----$", text, re.M))


def table(out, title, kind_of):
    rows = collections.defaultdict(collections.Counter)
    survivors = []
    for o, m in mutants(out):
        kind = kind_of(o)
        rows[m["file"]][kind] += 1
        if kind in ("missed", "timeout"):
            survivors.append(f"{kind}: {m['name']}")
    print(title)
    print()
    print(f"| file | {' | '.join(COLS)} | caught / (caught + missed + timeout) |")
    print("| --- |" + " --- |" * (len(COLS) + 1))
    total = collections.Counter()
    for file in sorted(rows):
        total.update(rows[file])
    for name, c in sorted(rows.items()) + [("all", total)]:
        viable = c["caught"] + c["missed"] + c["timeout"]
        share = f"{100 * c['caught'] / viable:.1f}%" if viable else "-"
        print(f"| {name} | {' | '.join(str(c[k]) for k in COLS)} | {share} |")
    print()
    for line in survivors:
        print(line)
    print()


def main():
    out = pathlib.Path(sys.argv[1])
    without = set(sys.argv[2:])
    table(out, "With every unit test:", lambda o: KINDS.get(o["summary"], o["summary"]))
    if without:

        def kind_without(o):
            kind = KINDS.get(o["summary"], o["summary"])
            if kind == "caught" and not (failing_tests(out, o) - without):
                return "missed"
            return kind

        table(out, "Without " + ", ".join(sorted(without)) + ":", kind_without)


if __name__ == "__main__":
    main()
