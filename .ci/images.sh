#!/usr/bin/env bash
# images.sh builds, offline, the container images that docker-compose.yml and
# the tests need on a machine whose Docker engine cannot pull from a registry:
#
#   bankwire-ci/postgres:15    PostgreSQL 15 from Debian, with an entrypoint
#                              that behaves like the official postgres image
#   bankwire-ci/golang:1.26    Debian + this machine's Go toolchain + a module
#                              cache pre-filled for go.mod (GOPROXY=off)
#   bankwire-ci/static:nonroot CA certificates, tzdata and a nonroot user
#                              (uid 65532), like distroless/static:nonroot
#
# and, for the high-availability stack (store/ha/compose.yml; target "ha",
# not part of "all"):
#
#   bankwire-ci/patroni:15     PostgreSQL 15 + Debian's patroni and
#                              python3-etcd, like store/ha/patroni/Dockerfile
#   bankwire-ci/etcd:3.4       Debian's etcd-server
#   bankwire-ci/haproxy:2.6    Debian's haproxy
#
# Root file systems come from Debian packages (mmdebstrap, using the machine's
# own apt sources) and become images with `docker import`. Each image carries
# a label with a hash of its inputs and is rebuilt only when that changes, so a
# re-run costs a few `docker image inspect` calls.
#
# Usage: .ci/images.sh [postgres|golang|static|all|ha]   (run as root)
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

POSTGRES_CI_IMAGE=${POSTGRES_CI_IMAGE:-bankwire-ci/postgres:15}
GO_CI_IMAGE=${GO_CI_IMAGE:-bankwire-ci/golang:1.26}
PATRONI_CI_IMAGE=${PATRONI_CI_IMAGE:-bankwire-ci/patroni:15}
ETCD_CI_IMAGE=${ETCD_CI_IMAGE:-bankwire-ci/etcd:3.4}
HAPROXY_CI_IMAGE=${HAPROXY_CI_IMAGE:-bankwire-ci/haproxy:2.6}
RUNTIME_CI_IMAGE=${RUNTIME_CI_IMAGE:-bankwire-ci/static:nonroot}
LABEL=org.bankwire.ci.inputs

[ "$(id -u)" = 0 ] || ci_die "images.sh must run as root (mmdebstrap root mode, docker import)"
command -v mmdebstrap >/dev/null || ci_die "mmdebstrap is missing (apt-get install mmdebstrap)"

work=$(mktemp -d /tmp/bankwire-images.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# current_hash IMAGE prints the input hash an existing image was built from.
current_hash() {
	docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true
}

mapfile -t mirrors < <(ci_debian_sources "$work")
[ "${#mirrors[@]}" -gt 0 ] || ci_die "no Debian bookworm apt sources found in /etc/apt; cannot build base images"
# The Go toolchain's version and the mirror list are inputs too: a new Go or
# a new Debian snapshot means a new image.
debian_inputs="$work/debian-inputs"
{
	cat "${mirrors[@]}"
	printf 'mmdebstrap %s\n' "$(mmdebstrap --version)"
} >"$debian_inputs"

# Trimming docs, man pages and translations keeps the images small; nothing
# in them reads those files.
slim=(
	# dpkg's fsync per file is what makes a root file system slow to build
	# on a busy disk; a crash here just means building it again.
	--dpkgopt='force-unsafe-io'
	--aptopt='Acquire::Languages "none"'
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/doc/*'
	--dpkgopt='path-include=/usr/share/doc/*/copyright'
	--dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-exclude=/usr/share/info/*'
)

build_postgres() {
	local hash
	hash=$(ci_hash "$debian_inputs" "$here/images.sh" "$here/images/postgres/docker-entrypoint.sh")
	if [ "$(current_hash "$POSTGRES_CI_IMAGE")" = "$hash" ]; then
		echo "$POSTGRES_CI_IMAGE is up to date ($hash)"
		return
	fi
	echo "building $POSTGRES_CI_IMAGE ($hash) from Debian packages"
	# mmdebstrap splits special hooks on spaces, so copy from a path without.
	install -m 0755 "$here/images/postgres/docker-entrypoint.sh" "$work/docker-entrypoint.sh"
	# postgresql-common creates a "main" cluster on install; the entrypoint
	# initialises $PGDATA itself on first start, so that cluster is removed.
	mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
		--include=postgresql-15,ca-certificates,tzdata "${slim[@]}" \
		--customize-hook='rm -rf "$1"/var/lib/postgresql/15 "$1"/etc/postgresql/15' \
		--customize-hook="copy-in $work/docker-entrypoint.sh /usr/local/bin" \
		--customize-hook='chmod 0755 "$1"/usr/local/bin/docker-entrypoint.sh' \
		--customize-hook='mkdir -p "$1"/docker-entrypoint-initdb.d "$1"/var/lib/postgresql/data "$1"/var/run/postgresql' \
		--customize-hook='chroot "$1" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql' \
		--customize-hook='chmod 0700 "$1"/var/lib/postgresql/data; chmod 3777 "$1"/var/run/postgresql' \
		--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
		bookworm "$work/postgres.tar" "${mirrors[@]}"
	docker import \
		--change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV PGDATA=/var/lib/postgresql/data' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'VOLUME /var/lib/postgresql/data' \
		--change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
		--change 'CMD ["postgres"]' \
		--change 'EXPOSE 5432' \
		--change "LABEL $LABEL=$hash" \
		--message "bankwire CI: PostgreSQL 15 from Debian bookworm" \
		"$work/postgres.tar" "$POSTGRES_CI_IMAGE" >/dev/null
	rm -f "$work/postgres.tar"
}

# The minimal Debian root shared by the Go and runtime images.
base_rootfs() {
	[ -d "$work/base" ] && return
	mmdebstrap --quiet --variant=minbase --mode=root --format=directory \
		--include=ca-certificates,tzdata "${slim[@]}" \
		--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
		bookworm "$work/base" "${mirrors[@]}"
}

build_golang() {
	local goroot hash
	goroot=$(go env GOROOT)
	hash=$(
		{
			cat "$debian_inputs" "$here/images.sh" "$repo/go.mod" "$repo/go.sum"
			go version
		} | sha256sum | cut -c1-12
	)
	if [ "$(current_hash "$GO_CI_IMAGE")" = "$hash" ]; then
		echo "$GO_CI_IMAGE is up to date ($hash)"
		return
	fi
	echo "building $GO_CI_IMAGE ($hash): Debian + $(go version | cut -d' ' -f3) + module cache for go.mod"
	base_rootfs
	# Fill a fresh module cache with exactly what go.mod needs. The host's
	# own cache is tried first as a file proxy, so this is mostly a copy.
	local modcache="$work/base/go/pkg/mod"
	mkdir -p "$modcache"
	(
		cd "$repo"
		GOMODCACHE="$modcache" GOFLAGS=-mod=mod \
			GOPROXY="file://$(go env GOMODCACHE)/cache/download,$(go env GOPROXY)" \
			go mod download
	)
	rm -rf "$work/base/usr/local/go"
	cp -a "$goroot" "$work/base/usr/local/go"
	local raw="$GO_CI_IMAGE-raw" cid
	tar -C "$work/base" -c . | docker import \
		--change 'ENV PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV GOPATH=/go' \
		--change 'ENV GOMODCACHE=/go/pkg/mod' \
		--change 'ENV GOPROXY=off' \
		--change 'ENV GOSUMDB=off' \
		--change 'ENV GOFLAGS=-mod=mod' \
		--change 'ENV GOTOOLCHAIN=local' \
		--change 'WORKDIR /go' \
		--change 'CMD ["bash"]' \
		--change "LABEL $LABEL=$hash" \
		--message "bankwire CI: Go build image with a pre-filled module cache" \
		- "$raw" >/dev/null
	rm -rf "$work/base/go" "$work/base/usr/local/go"

	# Warm the build cache with every non-bankwire package the two binaries
	# need, compiled exactly as the Dockerfiles compile (CGO off, -trimpath):
	# the classic builder has no cache mounts, and compiling pgx, chi and
	# the standard library from scratch for each image costs minutes on two
	# cores. Imports added later still build, only less warm.
	mkdir -p "$work/warm"
	cp "$repo/go.mod" "$repo/go.sum" "$work/warm/"
	(
		cd "$repo"
		go list -e -deps -f '{{if not (and .Module .Module.Main)}}{{.ImportPath}}{{end}}' \
			./apptier/cmd/apptier ./webtier/cmd/webtier
	) | grep -v '^$' | sort -u >"$work/warm/packages"
	echo "warming the build cache with $(wc -l <"$work/warm/packages") packages"
	cid=$(docker create -v "$work/warm:/warm:ro" "$raw" bash -ec \
		'mkdir /tmp/warm && cp /warm/go.mod /warm/go.sum /tmp/warm/ && cd /tmp/warm &&
		 CGO_ENABLED=0 go build -trimpath $(cat /warm/packages) && rm -rf /tmp/warm')
	if ! docker start -a "$cid"; then
		docker rm -f "$cid" >/dev/null
		ci_die "warming the Go build cache failed"
	fi
	docker commit --change 'CMD ["bash"]' "$cid" "$GO_CI_IMAGE" >/dev/null
	docker rm "$cid" >/dev/null
	docker rmi "$raw" >/dev/null
}

build_static() {
	local hash root="$work/static"
	hash=$(ci_hash "$debian_inputs" "$here/images.sh")
	if [ "$(current_hash "$RUNTIME_CI_IMAGE")" = "$hash" ]; then
		echo "$RUNTIME_CI_IMAGE is up to date ($hash)"
		return
	fi
	echo "building $RUNTIME_CI_IMAGE ($hash): CA certificates, tzdata, user nonroot"
	base_rootfs
	rm -rf "$root"
	mkdir -p "$root/etc/ssl/certs" "$root/usr/share" "$root/tmp" "$root/home/nonroot" "$root/root"
	cp "$work/base/etc/ssl/certs/ca-certificates.crt" "$root/etc/ssl/certs/"
	cp -a "$work/base/usr/share/zoneinfo" "$root/usr/share/"
	cat >"$root/etc/passwd" <<-'PASSWD'
		root:x:0:0:root:/root:/sbin/nologin
		nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
		nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
	PASSWD
	cat >"$root/etc/group" <<-'GROUP'
		root:x:0:
		nobody:x:65534:
		nonroot:x:65532:
	GROUP
	printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
	chmod 1777 "$root/tmp"
	chmod 0700 "$root/root" "$root/home/nonroot"
	chown 65532:65532 "$root/home/nonroot"
	tar -C "$root" --numeric-owner -c . | docker import \
		--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
		--change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
		--change 'USER 65532:65532' \
		--change 'WORKDIR /home/nonroot' \
		--change "LABEL $LABEL=$hash" \
		--message "bankwire CI: static runtime (certificates, tzdata, nonroot)" \
		- "$RUNTIME_CI_IMAGE" >/dev/null
}

# build_debian_image NAME IMAGE PACKAGES IMPORT-CHANGES... builds IMAGE from
# a minimal Debian root with PACKAGES (comma-separated) installed, applying
# the given `docker import --change` instructions. Services are never
# started inside the root file system; the image's command starts them.
build_debian_image() {
	local name=$1 image=$2 packages=$3 hash change changes=()
	shift 3
	hash=$(ci_hash "$debian_inputs" "$here/images.sh")
	if [ "$(current_hash "$image")" = "$hash" ]; then
		echo "$image is up to date ($hash)"
		return
	fi
	echo "building $image ($hash) from Debian packages: $packages"
	for change in "$@"; do changes+=(--change "$change"); done
	mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
		--include="$packages,ca-certificates,tzdata" "${slim[@]}" \
		--customize-hook='rm -rf "$1"/var/lib/postgresql/15 "$1"/etc/postgresql/15 "$1"/var/lib/etcd/*' \
		--customize-hook='if [ -d "$1"/var/lib/postgresql ]; then mkdir -p "$1"/var/lib/postgresql/data && chroot "$1" chown -R postgres:postgres /var/lib/postgresql && chmod 0700 "$1"/var/lib/postgresql/data; fi' \
		--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
		bookworm "$work/$name.tar" "${mirrors[@]}"
	docker import "${changes[@]}" --change 'ENV LANG=C.UTF-8' --change "LABEL $LABEL=$hash" \
		--message "bankwire CI: $packages from Debian bookworm" \
		"$work/$name.tar" "$image" >/dev/null
	rm -f "$work/$name.tar"
}

# The Patroni image matches store/ha/patroni/Dockerfile (the official
# postgres image plus patroni): Patroni runs as postgres and owns the cluster.
build_patroni() {
	build_debian_image patroni "$PATRONI_CI_IMAGE" postgresql-15,patroni,python3-etcd \
		'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		'ENV PGDATA=/var/lib/postgresql/data' \
		'VOLUME /var/lib/postgresql/data' \
		'USER postgres' \
		'ENTRYPOINT ["patroni"]' \
		'CMD ["/etc/patroni/patroni.yml"]' \
		'EXPOSE 5432 8008'
}

# etcd and HAProxy images answer to the same command lines as the official
# ones (store/ha/compose.yml starts "etcd" and "haproxy -f ...").
build_etcd() {
	build_debian_image etcd "$ETCD_CI_IMAGE" etcd-server \
		'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
		'ENV ETCD_DATA_DIR=/var/lib/etcd' \
		'ENTRYPOINT ["etcd"]' \
		'EXPOSE 2379 2380'
}

build_haproxy() {
	build_debian_image haproxy "$HAPROXY_CI_IMAGE" haproxy \
		'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		'USER haproxy' \
		'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]'
}

case "${1:-all}" in
postgres) build_postgres ;;
golang) build_golang ;;
static) build_static ;;
all)
	# The PostgreSQL root file system is independent of the other two;
	# building it alongside them mostly overlaps network and disk waits.
	build_postgres >"$work/postgres.log" 2>&1 &
	pg=$!
	build_golang
	build_static
	pg_rc=0
	wait "$pg" || pg_rc=$?
	sed 's/^/[postgres] /' "$work/postgres.log"
	[ "$pg_rc" -eq 0 ] || ci_die "building $POSTGRES_CI_IMAGE failed"
	;;
ha)
	# Three independent root file systems; they overlap network and disk.
	build_etcd >"$work/etcd.log" 2>&1 &
	etcd=$!
	build_haproxy >"$work/haproxy.log" 2>&1 &
	haproxy=$!
	ha_rc=0
	build_patroni || ha_rc=$?
	wait "$etcd" || ha_rc=$?
	wait "$haproxy" || ha_rc=$?
	sed 's/^/[etcd] /' "$work/etcd.log"
	sed 's/^/[haproxy] /' "$work/haproxy.log"
	[ "$ha_rc" -eq 0 ] || ci_die "building the high-availability images failed"
	;;
*) ci_die "usage: $0 [postgres|golang|static|all|ha]" ;;
esac
