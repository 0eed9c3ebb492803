#!/usr/bin/env python
"""Check that a finished pipeline produced every output it promises: Snakemake's summary lists each
output of the DAG; all must exist and be non-empty, and a dry run must find nothing left to do."""

import argparse
import subprocess
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configfile", action="append", default=[])
    args = parser.parse_args(argv)
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "1"]
    for cf in args.configfile:
        snakemake += ["--configfile", cf]
    summary = subprocess.run(snakemake + ["--summary"], capture_output=True, text=True, check=True)
    lines = [ln.split("\t") for ln in summary.stdout.splitlines() if "\t" in ln]
    header, rows = lines[0], lines[1:]
    outputs = [row[header.index("output_file")] for row in rows]
    missing = [p for p in outputs if not Path(p).exists() or Path(p).stat().st_size == 0]
    dry = subprocess.run(snakemake + ["-n"], capture_output=True, text=True, check=True)
    pending = "Nothing to be done" not in dry.stdout + dry.stderr
    print(f"{len(outputs)} outputs promised, {len(missing)} missing or empty")
    for p in missing:
        print(f"  missing: {p}")
    if pending:
        print("a dry run still plans jobs:\n" + dry.stdout[-2000:])
    return 1 if missing or pending else 0


if __name__ == "__main__":
    sys.exit(main())
