#!/usr/bin/env bash
# The core install (`pip install .`, no extra) in a fresh venv: it must not pull torch, transformers, trl,
# accelerate or peft, and must run `lidr sql`, `inspect`, `versions` and `verify` on a version that the full
# install (the caller's venv, `python` on PATH) makes with `lidr demo`; a command that needs an extra must say
# which one to install.
#
#   LIDR_CORE_VENV  where the core venv lives (default /tmp/lidr-core-venv; rebuilt each time)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LIDR_CORE_VENV:-/tmp/lidr-core-venv}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 HF_HOME="$WORK/hf"

# A small version, made with the full install.
lidr demo --workdir "$WORK/demo" --no-progress --format csv >/dev/null 2>"$WORK/demo.log" \
    || { cat "$WORK/demo.log" >&2; exit 1; }
VERSION="$WORK/demo/store/demo/iter-1"

rm -rf "$VENV"
python3 -m venv "$VENV"
{ "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location"; } || true
{ "$VENV/bin/python" -m pip install -q . 2>&1 | grep -v "^WARNING: Location"; } || true
"$VENV/bin/python" -m pip check
"$VENV/bin/python" - <<'PY'
import importlib.util, sys
present = [m for m in ("torch", "transformers", "tokenizers", "trl", "accelerate", "peft", "vllm", "ray")
           if importlib.util.find_spec(m)]
sys.exit(f"the core install pulled {', '.join(present)}" if present else 0)
PY

# Outside the checkout, so the installed package (not the source folder) is what runs.
cd "$WORK"
LIDR="$VENV/bin/lidr"
"$LIDR" sql "$VERSION" "SELECT lang, direction, count(*) AS n FROM pairs GROUP BY ALL ORDER BY ALL" --format csv
"$LIDR" sql "$VERSION" "SELECT stage, reason, count(*) AS n FROM dropped GROUP BY ALL ORDER BY ALL" --format csv
"$LIDR" inspect "$VERSION" --html "$WORK/report.html" >/dev/null
test -s "$WORK/report.html"
"$LIDR" audit "$VERSION" --judge length --sample 3 --no-progress --format csv  # beside the version, not in it
"$LIDR" sql "$VERSION" "SELECT lang, direction, outcome, count(*) AS n FROM audit GROUP BY ALL ORDER BY ALL" --format csv
"$LIDR" versions "$WORK/demo/store/demo" --format csv
"$LIDR" verify "$VERSION"

# A command that needs an extra: exit 2 and a one-line error naming it.
set +e
"$LIDR" tiny-model "$WORK/tiny" 2>"$WORK/err"
status=$?
set -e
cat "$WORK/err" >&2
[ "$status" -eq 2 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] && grep -qF "pip install 'lidr-data[generate]'" "$WORK/err" \
    || { echo "core install: lidr tiny-model did not name the [generate] extra (exit $status)" >&2; exit 1; }
echo "core install: ok (no torch; lidr sql, inspect, audit --judge length, versions, verify ran; missing extra named)"
