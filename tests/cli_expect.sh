# Shared by the tests/cli_*tests.sh scripts: a scratch folder, pass/fail counts, and
#   expect NAME EXIT_CODE TEXT -- COMMAND...   the command exits with EXIT_CODE ("nonzero":
#                                             any failure) and prints TEXT
#   check NAME CONDITION...                   the condition command succeeds
#   finish LABEL                              prints "LABEL: N passed, N failed"; fails if any did
# Source it after setting `bin`.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

expect() {
  local name=$1 code=$2 text=$3
  shift 4
  local out
  out=$("$@" 2>&1)
  local got=$?
  if { [ "$code" = nonzero ] && [ "$got" -ne 0 ] || [ "$got" = "$code" ]; } &&
    grep -qF -- "$text" <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name (exit $got, expected $code; expected output containing: $text)"
    echo "$out" | head -20 | sed 's/^/    /'
  fi
}

check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name"
  fi
}

finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
