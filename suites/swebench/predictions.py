"""`python -m m1bench.suites.swebench.predictions RUN_DIR`: the official SWE-bench predictions file
(JSONL: instance_id, model_name_or_path, model_patch) from a run's records, for the swebench
harness or sb-cli: the latest finished record of each instance (one sample of each)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from m1bench.harness.core.records import read_records
from m1bench.suites.swebench.suite import SWEbenchVerified


def write_predictions(records: Path, out: Path, model: str | None = None, sample: int = 0) -> int:
    """Write the predictions file; returns how many instances it holds. `model` defaults to the
    records' model identity."""
    latest: dict[str, dict] = {}
    for r in read_records(records):
        if r.get("suite") == SWEbenchVerified.name and r.get("sample") == sample and r.get("status") == "ok":
            latest[r["problem_id"]] = r
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for iid, r in sorted(latest.items()):
            f.write(json.dumps({"instance_id": iid, "model_name_or_path": model or r["model_id"],
                                "model_patch": r["completion"]["text"]}) + "\n")
    return len(latest)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m m1bench.suites.swebench.predictions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run output directory (holding records.jsonl) or a records.jsonl file")
    p.add_argument("-o", "--output", help="predictions file to write (default: RUN/predictions.jsonl)")
    p.add_argument("--model", help="model_name_or_path to write (default: the records' model identity)")
    p.add_argument("--sample", type=int, default=0, help="which sample of each instance (default 0)")
    args = p.parse_args(argv)
    run = Path(args.run)
    records = run / "records.jsonl" if run.is_dir() else run
    if not records.is_file():
        print(f"error: {records}: no records file", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else records.parent / "predictions.jsonl"
    n = write_predictions(records, out, args.model, args.sample)
    print(f"{n} predictions -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
