"""What the official harness needs of a SWE-bench row, built by the pinned swebench (4.1.0) from its own tables.

Rows as princeton-nlp publishes them (SWE-bench Verified, the set the M1 paper ran) carry the tests and
the patches only. swebench 4.1.0 derives the rest from the row's (repo, version): MAP_REPO_VERSION_TO_SPECS
gives the environment, install steps and test command, MAP_REPO_TO_PARSER the log parser. (5.x dropped
both tables and reads image, eval_script and log_parser from the row, which these rows do not have.)
`official` builds that spec for the checks before a run and for the local mode's test command; in docker
mode the harness builds its own from the same row. `grading_spec` is what swebench's grading reads.

A row of a repository outside the tables (an instance of one's own, local mode only) carries its
`test_cmd`, and may name one of swebench's parsers in `log_parser` (default parse_log_pytest);
`register_own_row` enters it into swebench's tables, so that swebench's grading reads its log like any other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from m1bench.suites.source import DataError

NAMESPACE = "swebench"  # Docker Hub namespace of the published instance images, which the harness pulls
ARCH = "x86_64"  # the published images' architecture
# Where swebench's images hold the conda environment and the repository (its make_test_spec's values).
ENV_NAME, REPO_DIR = "testbed", "/testbed"
OWN_ROW_PARSER = "parse_log_pytest"
_registered: set[tuple[str, str]] = set()  # (repo, version) of rows of one's own entered into swebench's tables


class SpecError(DataError):
    pass


@dataclass(frozen=True)
class Official:
    image: str  # the published instance image the harness runs the tests in
    eval_script: str  # the harness's eval.sh: reset the test files, apply the test patch, run the tests
    test_cmd: str  # the command eval.sh runs between the log markers: the spec's command + the test files
    log_parser: str  # swebench's parser of the repository's test log


def _tests(value: Any) -> list[str]:
    return json.loads(value) if isinstance(value, str) else list(value)


def _version(row: dict[str, Any]) -> str:
    return str(row.get("version"))


def in_tables(row: dict[str, Any]) -> bool:
    """Whether swebench's own tables have the row's repository and version."""
    from swebench.harness.constants import MAP_REPO_VERSION_TO_SPECS

    key = (row["repo"], _version(row))
    return key not in _registered and key[1] in MAP_REPO_VERSION_TO_SPECS.get(key[0], {})


def grading_spec(row: dict[str, Any], eval_script_list: list[str] | None = None) -> Any:
    """swebench's TestSpec with what its grading reads (instance, repository, version, the tests) and
    the published image's name. The environment script stays empty: grading does not read it, and
    swebench writes it from requirement files it fetches from GitHub (for django, matplotlib, xarray,
    pylint and flask among others), which only image building needs."""
    from swebench.harness.test_spec.test_spec import TestSpec

    return TestSpec(instance_id=row["instance_id"], repo=row["repo"], version=_version(row), repo_script_list=[],
                    eval_script_list=eval_script_list or [], env_script_list=[], arch=ARCH,
                    FAIL_TO_PASS=_tests(row["FAIL_TO_PASS"]), PASS_TO_PASS=_tests(row["PASS_TO_PASS"]),
                    language="py", docker_specs={}, namespace=NAMESPACE)


def official(row: dict[str, Any], source: str) -> Official:
    """The official spec of a row in swebench's tables, by swebench's own builders; errors name the instance."""
    from swebench.harness.constants import END_TEST_OUTPUT, MAP_REPO_VERSION_TO_SPECS, START_TEST_OUTPUT
    from swebench.harness.log_parsers import MAP_REPO_TO_PARSER
    from swebench.harness.test_spec.create_scripts import make_eval_script_list

    iid, repo, version = row["instance_id"], row["repo"], _version(row)
    if not in_tables(row):
        raise SpecError(f"{source}: instance {iid}: swebench's MAP_REPO_VERSION_TO_SPECS has no {repo} version "
                        f"{version}, so its harness cannot build the environment or the test command")
    try:
        script = make_eval_script_list({**row, "version": version}, MAP_REPO_VERSION_TO_SPECS[repo][version],
                                       ENV_NAME, REPO_DIR, row["base_commit"], row["test_patch"])
    except Exception as e:  # e.g. a test patch unidiff cannot read
        raise SpecError(f"{source}: instance {iid}: swebench cannot build its eval script: {type(e).__name__}: {e}") from None
    start, end = script.index(f": '{START_TEST_OUTPUT}'"), script.index(f": '{END_TEST_OUTPUT}'")
    spec = grading_spec(row, script)
    return Official(image=spec.instance_image_key, eval_script=spec.eval_script, test_cmd="\n".join(script[start + 1:end]),
                    log_parser=MAP_REPO_TO_PARSER[repo].__name__)


def register_own_row(row: dict[str, Any], source: str) -> None:
    """Enter a row of one's own (its repository and version not in swebench's tables) into them, with its
    test command and log parser, for this process: swebench's grading looks both up by repository and version."""
    from swebench.harness.constants import MAP_REPO_VERSION_TO_SPECS
    from swebench.harness.log_parsers import MAP_REPO_TO_PARSER
    from swebench.harness.log_parsers import python as parsers

    name = row.get("log_parser") or OWN_ROW_PARSER
    parser = getattr(parsers, name, None) if name.startswith("parse_log_") else None
    if parser is None:
        raise SpecError(f"{source}: instance {row['instance_id']}: log_parser {name!r} is not one of swebench's "
                        f"Python log parsers")
    MAP_REPO_VERSION_TO_SPECS.setdefault(row["repo"], {})[_version(row)] = {"test_cmd": row["test_cmd"]}
    _registered.add((row["repo"], _version(row)))
    if row["repo"] not in parsers.MAP_REPO_TO_PARSER_PY:  # a repository of swebench's keeps its own parser
        MAP_REPO_TO_PARSER[row["repo"]] = parser
