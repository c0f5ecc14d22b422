#!/usr/bin/env bash
# Installs the system programs that some tests drive, from Debian's packages, when this machine
# can (root with apt-get). Elsewhere it only says what is missing: those tests then skip with the
# same hint, unless TRAXO_REQUIRE_SYSTEM_TOOLS=1 (CI), where a missing program fails them.
set -euo pipefail

# program -> Debian package
declare -A PACKAGES=(
  [chromium]=chromium
)

missing=()
for program in "${!PACKAGES[@]}"; do
  command -v "$program" >/dev/null 2>&1 || missing+=("${PACKAGES[$program]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: missing system packages (their tests will skip): ${missing[*]}"
  echo "      install them with: sudo apt-get install ${missing[*]}"
fi
