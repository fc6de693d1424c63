#!/usr/bin/env bash
# Verify the datacenter baseline's CUDA/TensorRT + NVML path on a GPU host, in under 5 minutes.
# Needs onnxruntime-gpu and nvidia-ml-py installed (pip install -e '.[all,nvidia]' onnxruntime-gpu).
# Run from the repository root: bash benchmarks/gpu_baseline_check.sh   (OUT=dir to keep the outputs)
set -uo pipefail
OUT=${OUT:-/tmp/baseline-gpu-check}; mkdir -p "$OUT"
export XDG_DATA_HOME="$OUT/xdg" XDG_CACHE_HOME="$OUT/cache" PYTHONPATH=.
nvidia-smi --query-gpu=index,name,driver_version,power.draw,power.limit --format=csv | tee "$OUT/nvidia-smi.csv" || exit 2
python - <<'PY' || exit 2
import onnxruntime as ort, sys
p = ort.get_available_providers(); print("onnxruntime", ort.__version__, p)
sys.exit(0 if "CUDAExecutionProvider" in p else "no CUDAExecutionProvider: pip install onnxruntime-gpu")
PY
cat > "$OUT/fmnist.yaml" <<YAML
name: fmnist
profile: smoke
scenarios: [SingleStream, Offline]
modes: [performance, accuracy]
accuracy_dataset: fashion-mnist:subset
overrides: {min_duration_s: 1.0}
models:
  - name: fashion-mnist-cnn
    variants:
      - {artifact: "zoo:fashion-mnist-cnn/int8.tflite", name: int8-tflite}
      - {artifact: "zoo:fashion-mnist-cnn/int8.onnx"}
      - {artifact: "zoo:fashion-mnist-cnn/fp32.onnx", batch_size: 32}
YAML
rc=0
timeout 270 python - "$OUT" <<'PY' || rc=$?
import json, sys
from pathlib import Path
import onnxruntime as ort
from controller import baseline
from controller.fleet import campaign
from controller.store.database import Store
out = Path(sys.argv[1]); spec = campaign.load(out / "fmnist.yaml"); store = Store(out / "controller.db")
trt = "TensorrtExecutionProvider" in ort.get_available_providers()
runs = {"default": None, "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
summary, bad = {}, []
for label, providers in runs.items():
    cid = baseline.run_baseline(spec, store, providers=providers, progress=print, idle_s=1.0)
    jobs, docs = store.jobs(cid), store.documents(cid)  # the documents as stored: the summary copies whole blocks
    summary[label] = {"campaign": cid, "jobs": {j.key: [j.state, j.error] for j in jobs}, "results": [
        {k: d[k] for k in ("model", "runtime", "scenario", "mode", "valid", "invalid_reasons", "baseline")}
        | {"kpis": {k: d["kpis"].get(k) for k in ("latency_ms", "throughput_sps", "accuracy", "load_time_ms")},
           "energy": {k: (d["kpis"]["energy"] or {}).get(k) for k in
                      ("source", "measured", "avg_power_w", "idle_power_w", "energy_per_inference_mj", "warnings")}}
        for d in docs]}
    first = (["TensorrtExecutionProvider"] if trt and providers is None else []) + ["CUDAExecutionProvider"]
    bad += [f"{label}: {j.key} {j.state}: {j.error}" for j in jobs if j.state != "done"]
    for d in docs:
        b, e, name = d["baseline"], d["kpis"]["energy"], d["model"]["name"]
        checks = {"device": d["device"]["id"].startswith("host-gpu:"), "kind": b["kind"] == "gpu",
                  "providers": b["providers"][0] == first[0], "accelerator": d["runtime"]["accelerator"] == first[0],
                  "gpus": bool(b.get("gpus")) and bool(b["gpus"][0]["name"]),
                  "nvml": e is not None and e["source"] == "nvml" and e["measured"] is True and (e["avg_power_w"] or 0) > 0,
                  "format": d["model"]["format"] == "onnx",
                  "substituted": (b.get("substituted_for") == "zoo:fashion-mnist-cnn/int8.tflite") == name.endswith("int8-tflite")}
        bad += [f"{label}: {name} {d['scenario']} {d['mode']}: {k}" for k, ok in checks.items() if not ok]
    acc = {d["model"]["name"].split("/")[1]: d["kpis"]["accuracy"]["top1"] for d in docs if d["mode"] == "accuracy"}
    print(label, "accuracy", acc)
    if acc.get("int8-tflite") != acc.get("int8.onnx"):
        bad.append(f"{label}: tflite's sibling scored {acc.get('int8-tflite')} vs int8.onnx {acc.get('int8.onnx')}")
    if abs(acc.get("fp32.onnx", 0) - 0.885) > 0.01:  # fp16/TF32 off: the CPU's answer within noise
        bad.append(f"{label}: fp32 accuracy {acc.get('fp32.onnx')} far from the manifest's 0.885")
(out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
print("\n".join(bad) or "GPU BASELINE OK"); sys.exit(1 if bad else 0)
PY
ls -la "$XDG_CACHE_HOME/edgeperf/tensorrt" 2>/dev/null | head
exit $rc
