#!/usr/bin/env bash
# The model-dependent tests under other kernels and numerics than the machine's defaults, and
# with sampled generation defaults (issue 25: a verdict never depends on the CPU's kernels, on
# batching, on the prefix cache or on greedy decoding). `make test-kernels` runs it.
#
#   scripts/test_kernels.sh [pytest args ...]     (default: the model-dependent test folders)
#   SETTINGS="f32 avx2" ROUNDS=3 scripts/test_kernels.sh
#
# Settings:
#   default  the machine's own kernels and precision (bf16 where the CPU has it)
#   f32      INFERENCE_PRECISION_HINT f32: int8 weights run the dynamic-quantization kernels,
#            whose numbers change with the batch
#   bf16     INFERENCE_PRECISION_HINT bf16 (emulated where the CPU lacks it)
#   avx2     oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA), f32 without dynamic quantization: the
#            only precision OpenVINO's int8 kernels accept under that cap
#   sampled  generation defaults sampled ({"temperature": 0.8, "seed": 2}), not greedy
set -uo pipefail
cd "$(dirname "$0")/.."
SETTINGS=${SETTINGS:-"default f32 bf16 avx2 sampled"}
ROUNDS=${ROUNDS:-1}
if [ $# -eq 0 ]; then
    set -- tests/engine tests/nodes tests/servables tests/toolchain tests/transport tests/examples
fi

run() {  # NAME ENV... -- runs pytest with ENV
    local name=$1; shift
    echo "=== $name (round $round of $ROUNDS): $*"
    env "$@" .venv/bin/pytest -q -p no:cacheprovider "${TESTS[@]}" > "$LOGS/$name-$round.log" 2>&1
    local rc=$?
    echo "$name round $round: $(tail -1 "$LOGS/$name-$round.log") (exit $rc)" | tee -a "$LOGS/summary"
    [ $rc -eq 0 ] || failed=1
}

TESTS=("$@")
LOGS=${LOGS:-build/test-kernels}
mkdir -p "$LOGS" && : > "$LOGS/summary"
failed=0
for round in $(seq 1 "$ROUNDS"); do
    for setting in $SETTINGS; do
        case $setting in
            default) run default -u OVSERVE_PLUGIN_CONFIG -u OVSERVE_OVERRIDE_GENERATION_CONFIG ;;
            f32) run f32 'OVSERVE_PLUGIN_CONFIG={"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}' ;;
            bf16) run bf16 'OVSERVE_PLUGIN_CONFIG={"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}}' ;;
            avx2) run avx2 ONEDNN_MAX_CPU_ISA=AVX2 'OVSERVE_PLUGIN_CONFIG={"CPU": {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}}' ;;
            sampled) run sampled 'OVSERVE_OVERRIDE_GENERATION_CONFIG={"temperature": 0.8, "seed": 2}' ;;
            *) echo "unknown setting $setting"; exit 2 ;;
        esac
    done
done
echo "--- summary (logs in $LOGS)"; cat "$LOGS/summary"
exit $failed
