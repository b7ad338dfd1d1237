"""Keeping the harness's secrets out of what a run writes. Model-generated programs run with an
environment of their own (core/sandbox.py), but a secret can still reach their output another way
(a world-readable token file, a tool result); records, reports and logs are files people commit
and share, so every value of a secret-looking variable is replaced before anything is written."""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$|^(HF_TOKEN|HUGGING_FACE_HUB_TOKEN)$")
MIN_LENGTH = 8  # shorter values ("1", "true", a port) would redact ordinary text


class Redactor:
    """Replaces each secret value with `[redacted $NAME]` in strings and nested JSON-like data."""

    def __init__(self, secrets: Mapping[str, str]):
        values = {v: k for k, v in secrets.items() if v and len(v) >= MIN_LENGTH}
        self.names = dict(sorted(values.items(), key=lambda kv: -len(kv[0])))  # longest first: no partial hits
        self._pattern = re.compile("|".join(map(re.escape, self.names))) if self.names else None

    @classmethod
    def from_environ(cls, extra_names: tuple[str, ...] = (), environ: Mapping[str, str] | None = None) -> "Redactor":
        """The secret-looking variables of the environment (`*_KEY`, `*_TOKEN`, `*_SECRET`, ...)
        and the variables named in `extra_names` (an endpoint's key variable, whatever its name)."""
        env = os.environ if environ is None else environ
        return cls({k: v for k, v in env.items() if SECRET_NAME.search(k.upper()) or k in extra_names})

    def text(self, s: str) -> tuple[str, int]:
        if self._pattern is None or not s:
            return s, 0
        count = 0

        def sub(m: re.Match) -> str:
            nonlocal count
            count += 1
            return f"[redacted ${self.names[m.group(0)]}]"
        return self._pattern.sub(sub, s), count

    def scrub(self, obj: Any) -> tuple[Any, int]:
        """A copy of `obj` (str, list, tuple, dict, scalars) with every secret replaced, and how many were."""
        if self._pattern is None:
            return obj, 0
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            out, n = {}, 0
            for k, v in obj.items():
                out[k], m = self.scrub(v)
                n += m
            return out, n
        if isinstance(obj, (list, tuple)):
            items = [self.scrub(v) for v in obj]
            return type(obj)(v for v, _ in items), sum(m for _, m in items)
        return obj, 0
