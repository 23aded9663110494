#!/usr/bin/env bash
# Dependencies of the cluster-sweep tests (tests/test_slurm.py, tests/test_executors.py):
# a real single-node Slurm with munge (Debian packages) and the ray/submitit extras.
# The tests start and stop the daemons themselves, in a temporary folder; nothing here
# enables a service. Run as root (slurmd must be root to start jobs), then run the tests
# with EVALSUITE_REQUIRE_SLURM=1 EVALSUITE_REQUIRE_RAY=1 so that a missing piece fails
# instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
# the versions the tests ran with are pinned in pyproject.toml's [slurm] and [ray] extras;
# they change neither torch, transformers nor numpy
read -r -a pins < <(python -c 'import tomllib; e = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; print(" ".join(e["slurm"] + e["ray"]))')
python -m pip install -q "${pins[@]}"
slurmd -V
python -c "import ray, submitit; print('ray', ray.__version__, 'submitit', submitit.__version__)"
