#!/usr/bin/env bash
# The test suite again under Python 3.10, the one JetPack 6 ships on Jetsons: pip resolves other versions
# there (ONNX Runtime 1.23 at most), which the main run cannot show (INT8 export once failed on 3.10 alone).
# In a virtualenv of its own; skipped, said, where no Python 3.10 is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
is310() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; }
py=""
# a pyenv shim named python3.10 exists even where it cannot run, so each candidate is tried
pyenv_310=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python 2>/dev/null)
for candidate in "${PYTHON310:-}" "$(command -v python3.10)" $pyenv_310; do
  if is310 "$candidate"; then py=$candidate; break; fi
done
if [ -z "$py" ]; then
  echo "Python 3.10 run: skipped (no Python 3.10 here; set PYTHON310)"
  exit 0
fi
echo "Python 3.10 run: $("$py" --version) ($py)"
venv=${PY310_VENV:-.py310-venv}
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv" || { echo "Python 3.10 venv failed"; exit 1; }
"$venv/bin/pip" install -q -e ".[train,dev]" || { echo "Python 3.10 install failed"; exit 1; }
"$venv/bin/python" -m pytest -q
rc=$?
[ "$rc" -eq 5 ] && { echo "Python 3.10 run: pytest ran no test"; exit 1; }
exit "$rc"
