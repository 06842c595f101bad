#!/usr/bin/env bash
# Build ovserve's serving image. The wheels come from the host (pip, with the host's index and
# certificates), so the Docker build itself needs no network and works air-gapped:
#
#   deploy/docker/build_image.sh [--tag ovserve:latest] [--target baked|serve] [--base IMAGE]
#
# --base defaults to the Dockerfile's public python:3.11-slim-bookworm; tests pass a local
# Debian 12 made by deploy/docker/debian_base.sh (no registry is reachable here). The `baked`
# target copies models/ (run `make model` first); `serve` expects models mounted.
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=ovserve:latest TARGET=baked BASE=
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) TAG=$2; shift 2 ;;
        --target) TARGET=$2; shift 2 ;;
        --base) BASE=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
PY=${PYTHON_FOR_WHEELS:-.venv/bin/python}
mkdir -p build/wheels
rm -f build/wheels/ovserve-*.whl
echo "wheels for the serving stack -> build/wheels"
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    -w build/wheels .
"$PY" -m pip wheel --quiet --disable-pip-version-check -w build/wheels \
    -c requirements/constraints.txt -r requirements/serve.txt 2>&1 \
    | grep -v "^WARNING: Location" || true
if [ "$TARGET" = baked ]; then
    for model in models/*/; do
        [ -f "$model/graph.pbtxt" ] || { echo "error: $model has no graph.pbtxt: run make model" >&2; exit 1; }
    done
fi
args=(--network host -f Dockerfile --target "$TARGET" -t "$TAG")
[ -n "$BASE" ] && args+=(--build-arg "BASE=$BASE")
echo "docker build ${args[*]} ."
DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build "${args[@]}" .
docker image ls "$TAG"
