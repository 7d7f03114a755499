#!/usr/bin/env bash
# Build the project's three images from their unchanged Dockerfiles with buildah, for the
# contract tests in tests/images (`make images`). Usage: images/build.sh [serving|training|mlflow ...]
#
# The FROM line of each Dockerfile names the official Python image on ECR Public, pinned by
# digest: what CodeBuild pulls. No registry is reachable here, so `--from` hands buildah the
# local stand-in (images/build-base.sh) in its place; nothing in the Dockerfile changes.
# `--format docker` keeps HEALTHCHECK (the OCI format silently drops it). The result is
# tagged $MLOPS_IMAGE_PREFIX/<name>:test: a test image, never pushed.
set -euo pipefail
cd "$(dirname "$0")/.."
source images/env.sh

declare -A DOCKERFILES=([serving]=serving/Dockerfile [training]=training/Dockerfile [mlflow]=infra/mlflow/Dockerfile)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(serving training mlflow)
bash images/build-base.sh
mkdir -p build/images
for name in "${names[@]}"; do
  dockerfile="${DOCKERFILES[$name]:?unknown image $name (serving, training or mlflow)}"
  tag="$MLOPS_IMAGE_PREFIX/$name:test"
  start=$EPOCHREALTIME
  # MLOPS_BUILD_NO_CACHE=1 (benchmarks/images.py --cold) rebuilds every layer.
  buildah build --quiet --layers ${MLOPS_BUILD_NO_CACHE:+--no-cache} --format docker --pull=never --network host \
    --from "$MLOPS_BASE_STANDIN" -f "$dockerfile" -t "$tag" . >/dev/null
  seconds=$(awk "BEGIN {print $EPOCHREALTIME - $start}")
  size=$(podman image inspect --format '{{.Size}}' "$tag")
  printf '%s\t%s\t%.1f\t%s\n' "$name" "$tag" "$seconds" "$size" | tee -a build/images/builds.tsv
done
