#!/usr/bin/env bash
# The project's one test command, for a newcomer and for CI alike:
#   bash tests/run.sh [pytest args]
# It installs what the tests need (Debian's redis-server, chromium and a CJK font, the package with its test extras),
# then checks lint, formatting and types (ruff check, ruff format --check, mypy) and runs the whole suite.
# pytest's exit 5 (no tests collected) counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# A CJK font, so that the dashboard's Chinese labels render in the browser test's screenshot.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing Debian packages: ${missing[*]}"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "ruff check, ruff format --check, mypy"
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy

set +e
python3 -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "tests/run.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$rc"
