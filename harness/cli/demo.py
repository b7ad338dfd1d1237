"""`m1bench demo`: the whole pipeline on a model that learned something, on CPU, offline, in
seconds: the gate model that ships in reports/baselines/tiny/ (the tiny preset trained to repeat a
two-digit number as `\\boxed{nn}`). Its facts, one greedy generation, then `m1bench run` of the
regression gate's config (AIME's prompt and math-verify grading), a few of its answers, the report,
and what to try next."""
import json
import sys
from importlib import resources
from pathlib import Path

from m1bench.harness.cli.model import console, model_facts, print_facts

OUTPUT = "runs/demo"
PROMPT = "Repeat this number: 42"


def gate_dir() -> Path:
    """reports/baselines/tiny: the gate model (tiny-gate/), its run config and the committed baseline."""
    return Path(str(resources.files("m1bench.reports").joinpath("baselines", "tiny")))


def shown(path: Path) -> str:
    """A path as the user would type it from here."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_demo(args) -> int:
    from m1bench.harness.cli import build_parser
    from m1bench.harness.cli.model import cmd_generate
    from m1bench.harness.cli.run import cmd_run
    from m1bench.harness.core.records import read_records
    from m1bench.model.config import M1Config
    from m1bench.suites.aime.suite import MATH_SYSTEM_PROMPT

    gate = gate_dir()
    model = Path(args.model) if args.model else gate / "tiny-gate"
    training = model / "TRAINING.json"
    what = json.loads(training.read_text())["what"] if training.exists() else "a checkpoint"
    console.print(f"[bold]checkpoint[/]: {shown(model)}\n  {what}", highlight=False)
    print_facts(f"model facts ({model.name})", model_facts(M1Config.load(model)))

    console.print(f"\n[bold]generate[/] (greedy), system: {MATH_SYSTEM_PROMPT!r}, user: {PROMPT!r}", highlight=False)
    cmd_generate(build_parser("generate").parse_args(
        ["generate", "--model", str(model), "--system", MATH_SYSTEM_PROMPT, "--prompt", PROMPT,
         "--temperature", "0", "--max-new-tokens", str(args.max_new_tokens)]))

    config = gate / "gate.toml"
    console.print(f"\n[bold]m1bench run {shown(config)}[/] (T=1.0, top_p=0.95, 2 samples per problem)", highlight=False)
    code = cmd_run(build_parser("run").parse_args(["run", str(config), "--model", str(model), "-o", args.output]))
    if code:
        return code
    console.print("\n[bold]answers[/] (the first sample of the first 3 problems):")
    firsts = [r for r in read_records(Path(args.output) / "records.jsonl") if r["sample"] == 0]
    for record in sorted(firsts, key=lambda r: r["problem_id"])[:3]:
        question = record["request"]["messages"][-1]["content"]
        verdict = "correct" if record["score"]["correct"] else "wrong"
        console.print(f"  {question} -> {record['completion']['text']}  ({verdict})", markup=False, highlight=False)
    console.print("\n[bold]next[/]:", *next_commands(shown(gate / "baseline"), args.output), sep="\n",
                  highlight=False, soft_wrap=True)  # whole lines: they are for copying
    return 0


def next_commands(baseline: str, run_dir: str) -> list[str]:
    return ["  # this run against the committed baseline, as CI gates it (exit 0 pass, 1 regression):",
            f"  m1bench compare {baseline} {run_dir}",
            "  # the paper's suites (AIME, LiveCodeBench, SWE-bench Verified, TAU-bench, MRCR) and their options:",
            "  m1bench suites",
            "  # the paper's protocol against a served model:",
            "  m1bench run harness/eval/configs/paper.toml --endpoint http://HOST:8000/v1 --model MiniMax-M1-80k"]


def add_parser(sub):
    demo = sub.add_parser("demo", help="the quickstart: the gate model's facts, a generation, an evaluation run "
                                       "and its report", description=__doc__)
    demo.add_argument("--model", help="checkpoint directory (default: the gate model, "
                                      "reports/baselines/tiny/tiny-gate)")
    demo.add_argument("--max-new-tokens", type=int, default=16, help="of the generation")
    demo.add_argument("-o", "--output", default=OUTPUT, help="run output directory")
    demo.set_defaults(func=_main)


def _main(args):
    code = cmd_demo(args)
    if code:
        sys.exit(code)
