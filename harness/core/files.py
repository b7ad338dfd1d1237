"""Reading the JSON and JSONL files m1bench is given (configs, data rows, records, reports):
errors name the file and the line, in the exception type of the caller's domain (ConfigError,
DataError, RecordsError, ReportError: InputErrors all), so a bad input is one clear line, never a
traceback."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator


class InputError(ValueError):
    """Something m1bench was given is malformed or missing: a model file, a config, a data row, a
    flag. The message is one line naming the file and the line or field; `hint`, when set, says
    what to do about it. The `m1bench` command prints both without a traceback and exits 2."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint



def read_json(path: str | Path, error: type[Exception] = ValueError) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise error(f"{path}: not a JSON file ({type(e).__name__})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def iter_jsonl(path: str | Path, error: type[Exception] = ValueError, *,
               partial_tail: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line. partial_tail: a last line without its
    newline that does not parse (a writer killed mid-line) ends the file instead of failing."""
    path = Path(path)
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                if partial_tail and not line.endswith("\n"):
                    return
                raise error(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, row
