#!/usr/bin/env bash
# Static checks: ruff (lint), ruff format --check, mypy --strict on the package and on the tests.
# Every step runs even when an earlier one fails; a summary lists each step's result and the script
# exits 1 when any step found something. Configuration: [tool.ruff] and [tool.mypy] in pyproject.toml.
#
#   bash scripts/lint.sh                 # all steps
#   bash scripts/lint.sh --no-format     # skip `ruff format --check` (or LINT_FORMAT=0)
#
# Tools come from the project venv (.venv, `pip install -e '.[test]'`), else from PATH.
set -uo pipefail
cd "$(dirname "$0")/.."

format=${LINT_FORMAT:-1}
for arg in "$@"; do
    case $arg in
        --no-format) format=0 ;;
        -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "lint.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

bin=.venv/bin
[[ -x $bin/ruff && -x $bin/mypy ]] || bin=$(dirname "$(command -v ruff || echo /nonexistent/ruff)")
for tool in ruff mypy; do
    if [[ ! -x $bin/$tool ]]; then
        echo "lint.sh: $tool not found: python3 -m venv .venv && .venv/bin/pip install -e '.[test]'" >&2
        exit 2
    fi
done

summary=()
failed=0
step() {
    local name=$1
    shift
    printf '\n== %s: %s\n' "$name" "$*" >&2
    if "$@"; then
        summary+=("ok    $name")
    else
        summary+=("FAIL  $name")
        failed=1
    fi
}

step "ruff check" "$bin/ruff" check --output-format concise .
if [[ $format == 1 ]]; then
    step "ruff format" "$bin/ruff" format --check .
else
    summary+=("skip  ruff format (--no-format / LINT_FORMAT=0)")
fi
step "mypy composekit" "$bin/mypy" composekit
step "mypy tests" "$bin/mypy" tests

printf '\nlint.sh summary:\n' >&2
printf '  %s\n' "${summary[@]}" >&2
exit "$failed"
