# Sourced by native.sh, inlong.sh and faces.sh (which set $shared):
# `compare URL LUA SECONDS` runs ../shared/bench/compare.sh. Its exit trap
# stops at reaping the baseline it killed (143 under its `set -e`), so its
# GBs of scratch log would stay behind: it runs in a scratch TMPDIR removed
# here, and 143 is not a failure.
compare() {
  local scratch status=0
  scratch=$(mktemp -d)
  TMPDIR=$scratch "$shared/bench/compare.sh" "$@" || status=$?
  rm -rf "$scratch"
  [ "$status" = 0 ] || [ "$status" = 143 ]
}
