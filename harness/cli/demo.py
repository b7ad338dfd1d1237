"""`m1bench demo`: the README's main job on its embedded default (tiny model, CPU, no network):
model facts, one chat generation, then `m1bench run` of the embedded AIME + LiveCodeBench demo."""
import sys
from types import SimpleNamespace

from m1bench.harness.cli.model import cmd_generate, console, model_facts, print_facts, resolve_model

DEMO_PROMPT = "What is the sum of the first 10 positive integers? Put the answer in \\boxed{}."


def cmd_demo(args):
    from m1bench.harness.cli import build_parser
    from m1bench.harness.cli.run import cmd_run
    from m1bench.model.config import M1Config
    path = resolve_model(args.model)
    console.print(f"checkpoint: {path}")
    print_facts(f"model facts ({path.name})", model_facts(M1Config.load(path)))
    cmd_generate(SimpleNamespace(model=str(path), prompt=DEMO_PROMPT, prompt_file=None, system=None, raw=False,
                                 dtype="float32", device="cpu", max_new_tokens=args.max_new_tokens, temperature=1.0,
                                 top_p=0.95, top_k=0, seed=0, stop=[], save_state=None, resume_state=None, json=None))
    run_args = ["run", "--model", str(path)] + (["--output", args.output] if args.output else [])
    return cmd_run(build_parser().parse_args(run_args))


def add_parser(sub):
    demo = sub.add_parser("demo", help="the quickstart: tiny checkpoint facts, a generation, the embedded evaluation run")
    demo.add_argument("--model", help="checkpoint directory (default: the tiny checkpoint, created if missing)")
    demo.add_argument("--max-new-tokens", type=int, default=48)
    demo.add_argument("-o", "--output", help="run output directory (default: runs/demo)")
    demo.set_defaults(func=_main)


def _main(args):
    code = cmd_demo(args)
    if code:
        sys.exit(code)
