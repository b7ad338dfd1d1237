"""Child process for the kill -9 test: a run over the demo data with a slow scripted client.
Prints one line per sent request to stdout (flushed) so the parent knows what was in flight."""
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `tests` is a package

from rich.console import Console  # noqa: E402

from m1bench.harness.eval.config import load_config  # noqa: E402
from m1bench.harness.eval.runner import Runner  # noqa: E402
from tests.support.scripted_client import ScriptedClient, even_right  # noqa: E402


def main(out_dir: str, delay: float) -> None:
    def edit(raw):
        raw["run"].update(output_dir=out_dir, concurrency=4)
        raw["suites"]["aime2024"]["samples"] = 12
        raw["suites"]["livecodebench"]["samples"] = 4

    cfg = load_config(None, edit)

    def answer(req):
        print("SENT", req.key, flush=True)
        return even_right(req)

    client = ScriptedClient(answer, delay=delay)
    asyncio.run(Runner(cfg, client=client, console=Console(file=open("/dev/null", "w"))).run())
    print("FINISHED", len(client.calls), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
