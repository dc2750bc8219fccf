#!/usr/bin/env bash
# The original algorithm this project replaces, reproduced for the benchmark only
# (not part of the product). Usage: seed.sh IMAGE:TAG BRANCH [docker build args...]
# - pull BRANCH-builder and BRANCH (retagged builder and the bare name), else the
#   same for master, else the unprefixed builder and latest; a tier counts only if
#   both pulls succeed
# - build --target builder with --cache-from builder, then the final build with
#   --cache-from both
# - on exit: push BRANCH-builder, BRANCH, builder, latest (errors ignored); then
#   tag and push the deploy image
set -uo pipefail
image_tag="$1"
branch="$2"
shift 2
repo="${image_tag%:*}"

pull_tier() {
  docker pull "$repo:$1" >/dev/null 2>&1 && docker pull "$repo:$2" >/dev/null 2>&1 || return 1
  docker tag "$repo:$1" "$repo:builder"
  docker tag "$repo:$2" "$repo:latest"
}
pull_tier "$branch-builder" "$branch" || pull_tier master-builder master || pull_tier builder latest || true

push_all() {
  for tag in "$branch-builder" "$branch" builder latest; do
    docker push "$repo:$tag" >/dev/null 2>&1 || true
  done
}
trap push_all EXIT

docker build --target builder --cache-from "$repo:builder" -t "$repo:builder" -t "$repo:$branch-builder" "$@" . || exit 1
docker build --cache-from "$repo:builder" --cache-from "$repo:latest" -t "$repo:latest" -t "$repo:$branch" "$@" . || exit 1
push_all
trap - EXIT
docker tag "$repo:latest" "$image_tag"
docker push "$image_tag" >/dev/null
