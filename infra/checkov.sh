#!/usr/bin/env bash
# Static analysis of the deployment artifacts with checkov, offline: the terraform under terraform/
# and infra/Dockerfile. Exits non-zero on any failed check. Every accepted finding is skipped inline
# (#checkov:skip=CKV_…:reason) in the resource it concerns, so the reason is reviewed with the code.
#
# checkov is installed (once, pinned) into a virtualenv under the user's cache directory.
set -euo pipefail

CHECKOV_VERSION=3.3.30
venv="${XDG_CACHE_HOME:-$HOME/.cache}/riposte/checkov"
checkov="$venv/bin/checkov"

if [ ! -x "$checkov" ] || [ "$("$checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
    echo "== installing checkov $CHECKOV_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

cd "$(dirname "$0")/.."

status=0
echo "== checkov: terraform"
"$checkov" -d terraform --framework terraform --skip-download --quiet --compact || status=1
echo "== checkov: infra/Dockerfile"
"$checkov" -f infra/Dockerfile --framework dockerfile --skip-download --quiet --compact || status=1
exit "$status"
