#!/usr/bin/env bash
# Idempotent setup: system packages (Java 17, iproute2) where missing, then a project venv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
if ! java -version 2>&1 | grep -q 'version "17'; then need_apt+=(openjdk-17-jre-headless); fi
if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then need_apt+=(iproute2); fi
# sshd: `testbed up --ssh-hosts` (the Ansible path tried on this machine, and its tests)
if [ ! -x /usr/sbin/sshd ]; then need_apt+=(openssh-server); fi
if ! command -v xz >/dev/null; then need_apt+=(xz-utils); fi  # packs wheelhouses on every core
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing ${need_apt[*]}; install them as root (apt-get install ${need_apt[*]})" >&2
        exit 1
    fi
    echo "setup: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "edgeplace needs Python 3.11 (apache-flink 2.3)"'

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.edgeplace-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing edgeplace and its pinned dependencies into .venv (first time ~1 min)"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
fi
echo "setup: ready (.venv/bin/edgeplace)"
