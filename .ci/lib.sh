# shellcheck shell=bash
# Helpers shared by the .ci scripts: logging, phase timing, and the Debian
# sources of the machine CI runs on. Sourced, never executed.

ci_log() { printf '\n==> %s\n' "$*" >&2; }
ci_die() { printf '\nCI FAILED: %s\n' "$*" >&2; exit 1; }

# ci_phase NAME CMD... runs CMD and records how long it took, so every run
# prints a table of phase durations even when a later phase fails. Bash
# ignores `set -e` inside a command run as a condition, so phase functions
# chain their steps with && themselves.
CI_PHASES=()
ci_phase() {
	local name=$1 start rc=0
	shift
	ci_log "phase: $name"
	start=$(date +%s)
	"$@" || rc=$?
	CI_PHASES+=("$(printf '%-28s %5ss  %s' "$name" "$(($(date +%s) - start))" "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED ($rc)")")")
	printf '<== phase %s: %ss (%s)\n' "$name" "$(($(date +%s) - start))" "$([ "$rc" -eq 0 ] && echo ok || echo "exit $rc")" >&2
	return "$rc"
}

ci_phase_summary() {
	local line
	printf '\nphase durations:\n' >&2
	for line in "${CI_PHASES[@]}"; do printf '  %s\n' "$line" >&2; done
}

# ci_debian_sources DIR writes the machine's active Debian bookworm apt
# sources into DIR (one-line entries to debian.list, deb822 stanzas to
# debian.sources) and prints the paths of the non-empty ones, which are the
# MIRROR arguments for mmdebstrap. Mirrors come from /etc/apt at run time and
# are never written into the repository.
ci_debian_sources() {
	local dir=$1 f
	: >"$dir/debian.list"
	: >"$dir/debian.sources"
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		grep -E '^[[:space:]]*deb[[:space:]]' "$f" |
			grep -E '[[:space:]]bookworm(-updates|-security)?[[:space:]]' >>"$dir/debian.list" || true
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# Keep only enabled stanzas for bookworm suites: Debian itself, not
		# third-party repositories that need keys of their own.
		awk 'BEGIN { RS = ""; ORS = "\n\n" }
			/(^|\n)Suites:[^\n]*[[:space:]]bookworm/ && !/(^|\n)Enabled:[[:space:]]*no/' "$f" >>"$dir/debian.sources"
	done
	for f in "$dir/debian.list" "$dir/debian.sources"; do
		[ -s "$f" ] && printf '%s\n' "$f"
	done
	[ -s "$dir/debian.list" ] || [ -s "$dir/debian.sources" ] ||
		ci_die "no Debian bookworm apt sources found in /etc/apt; cannot build base images"
}

# ci_hash FILE... prints a short content hash of the given files, used to tag
# images so they are rebuilt exactly when their inputs change.
ci_hash() {
	cat "$@" | sha256sum | cut -c1-12
}
