# Sourced by run.sh and test.sh: creates .venv (Python 3.11) and installs the project into it.
# Usage: install_project "<extras>"   e.g. install_project "ml" or install_project "ml,dev"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

install_project() {
    local extras="$1"
    if [ ! -x "$PY" ]; then
        local base="${PYTHON:-$(command -v python3.11 || command -v python3)}"
        echo "==> creating $VENV with $("$base" --version)"
        "$base" -m venv "$VENV"
        "$PY" -m pip install -q --upgrade pip
    fi
    # torch is required by the `ml` extra. On a machine without torch, take the CPU build explicitly: a bare
    # `torch` requirement would download a multi-GB CUDA build. GPU users install their CUDA torch first.
    if ! "$PY" -c "import torch" >/dev/null 2>&1; then
        echo "==> installing torch==2.13.0 (CPU build)"
        "$PY" -m pip install -q "torch==2.13.0"
    fi
    # Reinstall only when pyproject.toml or the extras changed.
    local stamp="$VENV/.spatiallab-installed"
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "==> installing spatiallab[$extras]"
        "$PY" -m pip install -q -e ".[$extras]"
        echo "$want" > "$stamp"
    fi
}
