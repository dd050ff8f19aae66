# Shared by the bench/ scripts: the release binary, a scratch home removed on exit, and a median timer.
# Source it from the repository root.

cargo build --release --quiet
bin=$PWD/target/release/jobs
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT

# Median wall time in microseconds of running "$@" N times: median_us N command...
median_us() {
  local n=$1
  shift
  local times=()
  for ((i = 0; i < n; i++)); do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    times+=($(((end - start) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$((n / 2 + 1))p"
}
