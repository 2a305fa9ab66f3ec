#!/usr/bin/env bash
# compose-plugin.sh installs the `docker compose` v2 CLI plugin when it is
# missing, by building it from its Go module (this machine has no package or
# release download for it, but the Go module proxy answers).
#
# Why v2.40.3 (the newest v2 on the proxy): it negotiates the API version
# down to old engines (this machine runs Docker 20.10, API 1.41), and it keeps
# compose's internal builder, so without the buildx plugin it still builds
# with the engine's own BuildKit (or the classic builder, DOCKER_BUILDKIT=0);
# no buildx plugin and no registry are needed. The v5 line needs a newer Go
# than this machine's (v5.7.0: go >= 1.26.10) and dropped the internal
# BuildKit builder in favour of bake through the buildx plugin.
#
# Usage: .ci/compose-plugin.sh   (idempotent: a no-op when the plugin answers)
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

version=${COMPOSE_VERSION:-v2.40.3}
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
plugin="$plugin_dir/docker-compose"

if have=$(docker compose version --short 2>/dev/null) && [ -n "$have" ]; then
	echo "docker compose $have is installed; not building"
	exit 0
fi

echo "building docker compose $version from github.com/docker/compose/v2"
dir=$(go mod download -json "github.com/docker/compose/v2@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] && [ -d "$dir" ] || ci_die "go mod download github.com/docker/compose/v2@$version gave no module directory"

mkdir -p "$plugin_dir"
tmp=$(mktemp "$plugin_dir/.docker-compose.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# The module cache is read-only, but building in place only reads it.
(
	cd "$dir"
	CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local go build -trimpath \
		-ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$version" \
		-o "$tmp" ./cmd
)
chmod 0755 "$tmp"
mv -f "$tmp" "$plugin"
docker compose version
