# Sourced by .ci/run (issue 19): the unit tests again, each set in a venv of its own, on
# the newest release of every dependency the indexes serve (a break shows here before a
# user meets it) and on the lower bounds pyproject.toml names (.ci/lower_bounds.py), so
# each ">=" is a tested release. A set the main run tests anyway (a fresh machine gets the
# newest, this project's own machine the lower bounds) is not run twice. The slow
# registry, siege and fault-matrix tests run in the main run only.
#
# deps_start (after the main install, before the main tests) decides which sets to test
# and builds their venvs in the background; deps_finish (after the main tests) runs their
# unit tests (each on two pytest-xdist workers, as the main run), prints each log and fails
# when any failed.

deps_dir=""
deps_sets=()
deps_installs=()

deps_start() {
  deps_dir="$(mktemp -d)"
  python3 .ci/lower_bounds.py > "$deps_dir/lower-bounds.txt"
  if python3 .ci/lower_bounds.py --is-newest; then
    echo "== dependency releases: the main run has the newest of each: not tested twice"
  else
    deps_sets+=(newest)
  fi
  if python3 .ci/lower_bounds.py --is-lowest; then
    echo "== dependency releases: the main run has each at its lower bound: not tested twice"
  else
    deps_sets+=(lowest)
  fi
  local name
  for name in "${deps_sets[@]}"; do
    _deps_install "$name" > "$deps_dir/$name.log" 2>&1 &
    deps_installs+=("$!")
  done
}

_deps_install() {  # name
  local venv="$deps_dir/venv-$1"
  local how=(--upgrade --upgrade-strategy eager)
  [ "$1" = lowest ] && how=(-c "$deps_dir/lower-bounds.txt")
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${how[@]}" -e '.[test]'
  echo "== unit tests on the $1 dependency releases:" \
    "$("$venv/bin/python" -m pip freeze --disable-pip-version-check \
       | grep -iE '^(pyyaml|orjson|cryptography|pydantic|sigstore|msgspec)==' | tr '\n' ' ')"
}

_deps_test() {  # name
  "$deps_dir/venv-$1/bin/python" -m pytest -q -p no:cacheprovider -n 2 -m "not registry" \
    --ignore=tests/faults --ignore=tests/siege
}

deps_finish() {
  local failed="" i name runs=()
  for i in "${!deps_sets[@]}"; do
    name="${deps_sets[$i]}"
    if wait "${deps_installs[$i]}"; then
      _deps_test "$name" >> "$deps_dir/$name.log" 2>&1 &
      runs+=("$name:$!")
    else
      failed="$failed $name(install)"
      grep -v "^WARNING: Location 'file:" "$deps_dir/$name.log" || true
    fi
  done
  local run
  for run in "${runs[@]}"; do
    wait "${run#*:}" || failed="$failed ${run%%:*}"
    grep -v "^WARNING: Location 'file:" "$deps_dir/${run%%:*}.log" || true
  done
  rm -rf "$deps_dir"
  if [ -n "$failed" ]; then
    echo "== unit tests failed on the dependency releases:$failed"
    return 1
  fi
}
