"""`m1bench demo`: the README's main job on its embedded default (tiny model, CPU, no network)."""
from types import SimpleNamespace

from .model_cmd import cmd_generate, console, model_facts, print_facts, resolve_model

DEMO_PROMPT = "What is the sum of the first 10 positive integers? Put the answer in \\boxed{}."


def cmd_demo(args):
    from ..model.config import M1Config
    path = resolve_model(args.model)
    console.print(f"checkpoint: {path}")
    print_facts(f"model facts ({path.name})", model_facts(M1Config.load(path)))
    cmd_generate(SimpleNamespace(model=str(path), prompt=DEMO_PROMPT, system=None, raw=False, dtype="float32",
                                 device="cpu", max_new_tokens=args.max_new_tokens, temperature=1.0, top_p=0.95,
                                 top_k=0, seed=0, stop=[]))


def add_parser(sub):
    demo = sub.add_parser("demo", help="create the tiny checkpoint if missing, print its facts, generate from a chat prompt")
    demo.add_argument("--model", help="checkpoint directory (default: the tiny checkpoint)")
    demo.add_argument("--max-new-tokens", type=int, default=48)
    demo.set_defaults(func=cmd_demo)
