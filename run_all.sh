#!/usr/bin/env bash
# Execute the notebook suite headlessly with papermill (GPU when present, never required).
#
#   ./run_all.sh [--profile smoke|quick|full] [--data synthetic|hanco|freihand|ho3d]
#                [--data-root PATH] [--mano PATH] [--from NN]
#
# Executed notebooks go to results/<profile>/notebooks/, figures and tables beside them.
# Stops at the first failing notebook (naming it and the failing cell) and keeps what
# finished; --from NN resumes at the notebook whose name starts with NN.
set -euo pipefail
cd "$(dirname "$0")"

profile=quick data=synthetic data_root="" mano="" from=""
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    --mano) mano="$2"; shift 2 ;;
    --from) from="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_all.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case "$profile" in smoke|quick|full) ;; *) echo "run_all.sh: --profile must be smoke, quick or full (got '$profile')" >&2; exit 2 ;; esac
case "$data" in synthetic|hanco|freihand|ho3d) ;; *) echo "run_all.sh: --data must be synthetic, hanco, freihand or ho3d (got '$data')" >&2; exit 2 ;; esac
if [ "$data" != synthetic ] && [ -z "$data_root" ]; then
  echo "run_all.sh: --data $data needs --data-root PATH (the dataset's top folder)" >&2; exit 2
fi
if [ -n "$mano" ] && [ ! -e "$mano" ]; then
  echo "run_all.sh: --mano $mano does not exist (give MANO_RIGHT.pkl or its folder)" >&2; exit 2
fi

source tools/bootstrap_venv.sh
export MPLBACKEND=Agg PYTHONHASHSEED=0
python -m ipykernel install --sys-prefix --name hand_lib --display-name "hand_lib (.venv)" >/dev/null

exec python -m hand_lib.suite --profile "$profile" --data "$data" --data-root "$data_root" \
  --mano "$mano" --from "$from"
