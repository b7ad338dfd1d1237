"""OpenAI-MRCR data in the openai/mrcr layout, made here (the hub is out of reach): generated rows at
chosen o200k lengths, and short hand-written rows a tiny CPU model can answer in seconds."""
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from m1bench.suites.mrcr_data import FIELDS
from m1bench.suites.mrcr_generator import Measure, SampleSpec, write_sample

SCHEMA = pa.schema([("prompt", pa.string()), ("answer", pa.string()), ("random_string_to_prepend", pa.string()),
                    ("n_needles", pa.int64()), ("desired_msg_index", pa.int64()), ("total_messages", pa.int64()),
                    ("n_chars", pa.int64())])


def generated_row(counter, target: int, needles: int, seed: int) -> dict:
    buf = io.StringIO()
    write_sample(buf, SampleSpec(target, needles, seed), Measure(counter, "content"))
    row = json.loads(buf.getvalue())
    return {k: row[k] for k in FIELDS}  # exactly the official columns


def short_row(needles: int, i: int) -> dict:
    """A few hundred characters: 'write a poem about owls' asked `needles` times."""
    prefix = f"Zq{i}x{needles}Ab7Kp"[:10]
    msgs, needle_at = [], []
    for k in range(needles):
        msgs += [{"role": "user", "content": "write a haiku about rain"},
                 {"role": "assistant", "content": f"grey rain number {k} taps the roof"},
                 {"role": "user", "content": "write a poem about owls"},
                 {"role": "assistant", "content": f"owl poem {k}: the night keeps {k + i} quiet eyes open"}]
        needle_at.append(len(msgs) - 1)
    want = 1 + i % needles
    msgs.append({"role": "user", "content": f"Prepend {prefix} to the owl poem number {want}. Nothing else."})
    return {"prompt": json.dumps(msgs), "answer": prefix + msgs[needle_at[want - 1]]["content"],
            "random_string_to_prepend": prefix, "n_needles": needles, "desired_msg_index": needle_at[want - 1],
            "total_messages": len(msgs), "n_chars": sum(len(m["content"]) for m in msgs)}


def write_layout(root: Path, rows: list[dict]) -> Path:
    """Write rows as the hub repository lays them out: {n}needle/{n}needle_0.parquet."""
    for n in sorted({r["n_needles"] for r in rows}):
        d = root / f"{n}needle"
        d.mkdir(parents=True, exist_ok=True)
        part = [r for r in rows if r["n_needles"] == n]
        pq.write_table(pa.Table.from_pylist(part, schema=SCHEMA), d / f"{n}needle_0.parquet")
    return root
