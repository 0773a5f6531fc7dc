#!/usr/bin/env bash
# Build the serving images and test them for real, offline, on this machine:
#   1 tools (buildah/podman/debootstrap from Debian packages if missing)   2 wheelhouse
#   3 base images (cached)   4 export a real PACT model + a float model on the host
#   5 buildah bud: the default image and the `kserve` target (shares every layer but one)
#   6 static checks (non-root user, no torch, HEALTHCHECK; kserve: CMD = the ServingRuntime's args)
#   7 run `steport serve` inside the image (buildah run --isolation=chroot) on 127.0.0.1
#   8 real requests: health, metadata, infer over HTTP and gRPC (checked against the host's
#     outputs), bad requests, HEALTHCHECK command   9 SIGTERM -> graceful exit 0
#   10 the kserve image run with deploy/manifests/kserve-servingruntime.yaml's args (host and
#     ports moved to 127.0.0.1 and free ports): tritonclient HTTP (JSON + binary) and gRPC
#     results bit-identical to steport.session inside the image, errors, /metrics,
#     HEALTHCHECK, SIGTERM -> exit 0   11 clean up
# Every phase is time-bounded; the script prints per-phase seconds and says exactly why it
# fails. Env: IMAGE, KSERVE_IMAGE (tags), KEEP_IMAGE=1, PORT, STEPORT_PYTHON (host python
# with torch), STEPORT_SKIP_KSERVE_IMAGE=1 (phases 5-10 for the default image only).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-localhost/steport-serve:test}"
KSERVE_IMAGE="${KSERVE_IMAGE:-$IMAGE-kserve}"
WITH_KSERVE=$([ "${STEPORT_SKIP_KSERVE_IMAGE:-0}" = 1 ] && echo "" || echo 1)
HOSTPY="${STEPORT_PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
T_START=$(date +%s); T_PHASE=$T_START
work=$(mktemp -d /var/tmp/steport-image-test.XXXXXX)
ctr=""; srv_pid=""; kctr=""
say() { echo "[test_image] $*" >&2; }
die() { say "FAIL: $*"; exit 1; }
# The environment cannot run the test (no root, no Debian mirror or PyPI): exit 3 so CI can
# report it as "could not run here" rather than as a broken image.
cannot() { say "CANNOT RUN HERE: $*"; exit 3; }
phase() { local now; now=$(date +%s); say "-- $1 (previous phase $((now - T_PHASE))s, total $((now - T_START))s)"; T_PHASE=$now; }
cleanup() {
  if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then kill -TERM -- "-$srv_pid" 2>/dev/null || true; sleep 1; kill -KILL -- "-$srv_pid" 2>/dev/null || true; fi
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
  [ -n "$kctr" ] && buildah rm "$kctr" >/dev/null 2>&1 || true
  if [ -z "${KEEP_IMAGE:-}" ] && [ -n "${BUILT:-}" ]; then
    buildah rmi "$IMAGE" >/dev/null 2>&1 || true; buildah rmi "$KSERVE_IMAGE" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { "$HOSTPY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_ready PID LOG PORT SECONDS WHAT: poll /v2/health/ready every 0.5 s while PID lives.
wait_ready() {
  local pid=$1 log=$2 port=$3 secs=$4 what=$5 _
  for _ in $(seq 1 $((secs * 2))); do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$what exited early (log above)"; }
    if "$HOSTPY" -c "import urllib.request as u,sys; sys.exit(u.urlopen('http://127.0.0.1:$port/v2/health/ready',timeout=1).status!=200)" 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  cat "$log" >&2; die "$what not ready on 127.0.0.1:$port within ${secs}s"
}

phase "1/11 tools"
[ "$(id -u)" = 0 ] || cannot "needs root (debootstrap, buildah --isolation=chroot); run as root or in CI's root shell"
for t in buildah podman debootstrap; do
  command -v $t >/dev/null && continue
  command -v apt-get >/dev/null || cannot "$t missing and no apt-get to install it"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q buildah podman debootstrap >&2 \
    || { timeout 300 apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q buildah podman debootstrap >&2; } \
    || cannot "apt-get install buildah podman debootstrap failed (no Debian mirror reachable?)"
  break
done
"$HOSTPY" -c "import torch, steport.export, tritonclient.http, tritonclient.grpc" 2>/dev/null \
  || die "$HOSTPY lacks torch/steport/tritonclient[http,grpc]: run scripts/bootstrap.sh first (host side exports the test model)"

phase "2/11 wheelhouse"
PYTHON="$HOSTPY" timeout 900 bash deploy/build_wheelhouse.sh >&2 || cannot "deploy/build_wheelhouse.sh failed (PyPI unreachable?)"

phase "3/11 base images"
timeout 1200 bash deploy/make_base_image.sh >&2 || cannot "deploy/make_base_image.sh failed (debootstrap needs a reachable Debian mirror)"

phase "4/11 export test models on the host"
mkdir -p "$work/models"
timeout 300 "$HOSTPY" - "$work" <<'PY' || die "exporting the test models failed"
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, ".")
from tests.deploy.models import FAMILY_MODELS
import steport
out = Path(sys.argv[1]); expect = {}
for fam in ("pact", "float"):
    path, x, _ = FAMILY_MODELS[fam](out / "models")
    sess = steport.session(str(path))
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    expect[fam] = {"input": sess.get_inputs()[0].name, "output": sess.get_outputs()[0].name,
                   "x": x.tolist(), "shape": list(x.shape), "y": y.tolist()}
(out / "expect.json").write_text(json.dumps(expect))
PY
chmod -R a+rX "$work/models"

phase "5/11 buildah bud"
BUILT=1
timeout 1800 buildah bud --isolation=chroot --format docker --layers -t "$IMAGE" . >&2 \
  || die "buildah bud failed (see the build log above)"
if [ -n "$WITH_KSERVE" ]; then
  say "the kserve target (layers up to the runtime stage come from the build above)"
  timeout 1200 buildah bud --isolation=chroot --format docker --layers --target kserve -t "$KSERVE_IMAGE" . >&2 \
    || die "buildah bud --target kserve failed (see the build log above)"
fi

phase "6/11 static checks"
hc=$(buildah inspect --type image --format '{{.Docker.Config.Healthcheck}}' "$IMAGE")
case "$hc" in *health/ready*) ;; *) die "image has no HEALTHCHECK on /v2/health/ready: $hc";; esac
ctr=$(buildah from "$IMAGE") || die "buildah from $IMAGE failed"
uid=$(timeout 60 buildah run --isolation=chroot "$ctr" -- id -u) || die "buildah run id -u failed"
[ "$uid" != 0 ] || die "image runs as root"
if timeout 60 buildah run --isolation=chroot "$ctr" -- python -c "import torch" 2>/dev/null; then die "torch is in the runtime image"; fi
timeout 60 buildah run --isolation=chroot "$ctr" -- python -c "import shutil, sys; sys.exit(bool(shutil.which('g++') or shutil.which('cmake')))" \
  || die "a compiler is in the runtime image (or python does not run in it)"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo "?")
say "user $uid, no torch, no compiler, HEALTHCHECK set, size $size bytes"

phase "7/11 run the server inside the image"
PORT="${PORT:-$(free_port)}"
GPORT="${GPORT:-$(free_port)}"
setsid buildah run --isolation=chroot -v "$work/models:/models:ro" "$ctr" -- \
  steport serve /models --host 127.0.0.1 --port "$PORT" --max-delay-ms 1 --grpc-port "$GPORT" > "$work/server.log" 2>&1 &
srv_pid=$!
wait_ready "$srv_pid" "$work/server.log" "$PORT" 60 "the server"

phase "8/11 requests"
timeout 120 "$HOSTPY" - "$PORT" "$work/expect.json" "$GPORT" <<'PY' || { cat "$work/server.log" >&2; die "request checks failed (above)"; }
import json, sys, urllib.request, urllib.error
import numpy as np
import tritonclient.grpc as tg
import tritonclient.http as tc
from tritonclient.utils import InferenceServerException
port, expect, gport = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
base = f"http://127.0.0.1:{port}"
c = tc.InferenceServerClient(url=f"127.0.0.1:{port}")
assert c.is_server_live() and c.is_server_ready()
for fam, e in expect.items():
    meta = c.get_model_metadata(fam)
    assert meta["inputs"][0]["name"] == e["input"] and meta["inputs"][0]["shape"][0] == -1, meta
    x = np.asarray(e["x"], np.float32)
    for binary in (True, False):
        i = tc.InferInput(e["input"], list(x.shape), "FP32"); i.set_data_from_numpy(x, binary_data=binary)
        y = c.infer(fam, [i], outputs=[tc.InferRequestedOutput(e["output"], binary_data=binary)]).as_numpy(e["output"])
        np.testing.assert_allclose(y, np.asarray(e["y"], np.float32), rtol=1e-5, atol=1e-6)
    g = tg.InferenceServerClient(f"127.0.0.1:{gport}")
    i = tg.InferInput(e["input"], list(x.shape), "FP32"); i.set_data_from_numpy(x)
    y = g.infer(fam, [i], client_timeout=30).as_numpy(e["output"])
    np.testing.assert_allclose(y, np.asarray(e["y"], np.float32), rtol=1e-5, atol=1e-6)
    print(f"{fam}: metadata and infer (HTTP JSON + binary, gRPC) match the host", file=sys.stderr)
try:
    g.infer("nope", [i], client_timeout=30)
    raise SystemExit("gRPC: unknown model answered")
except InferenceServerException as err:
    assert "NOT_FOUND" in err.status(), err
bad = json.dumps({"inputs": [{"name": expect["float"]["input"], "datatype": "FP32", "shape": [1, 5],
                              "data": [float("nan")] * 5}]}).encode()
try:
    urllib.request.urlopen(urllib.request.Request(base + "/v2/models/float/infer", bad), timeout=10)
    raise SystemExit("a NaN request was accepted")
except urllib.error.HTTPError as err:
    body = json.loads(err.read())
    assert err.code == 400 and "NaN" in body["error"], (err.code, body)
try:
    urllib.request.urlopen(base + "/v2/models/nope", timeout=10)
    raise SystemExit("unknown model answered 200")
except urllib.error.HTTPError as err:
    assert err.code == 404
m = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
from prometheus_client.parser import text_string_to_metric_families
ok200 = [s.value for f in text_string_to_metric_families(m) for s in f.samples
         if s.name == "steport_requests_total" and s.labels == {"model": "pact", "status": "200"}]
assert ok200 == [3.0], (ok200, m[:2000])  # 2 HTTP + 1 gRPC
print("bad requests: 400/404 with JSON errors; metrics counted", file=sys.stderr)
PY
hc_script=$(buildah inspect --type image --format '{{index .Docker.Config.Healthcheck.Test 3}}' "$IMAGE")
timeout 60 buildah run --isolation=chroot --env STEPORT_PORT="$PORT" "$ctr" -- python -c "$hc_script" \
  || die "the image's HEALTHCHECK command failed against the running server"
say "HEALTHCHECK command passes"

phase "9/11 SIGTERM -> graceful exit"
spid=$(pgrep -f -n "steport serve /models --host 127.0.0.1 --port $PORT" || true)
[ -n "$spid" ] || die "cannot find the server process inside the run"
kill -TERM "$spid"
for _ in $(seq 1 60); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$srv_pid" 2>/dev/null; then die "server still running 30s after SIGTERM"; fi
rc=0; wait "$srv_pid" || rc=$?
grep -q '"event":"stopped","clean":true' "$work/server.log" || { cat "$work/server.log" >&2; die "no clean stop in the server log"; }
[ "$rc" = 0 ] || die "buildah run exited $rc after SIGTERM"
srv_pid=""
say "server drained and exited 0"

phase "10/11 the kserve image, run as the ServingRuntime runs it"
if [ -n "$WITH_KSERVE" ]; then
  kctr=$(buildah from "$KSERVE_IMAGE") || die "buildah from $KSERVE_IMAGE failed"
  kuid=$(timeout 60 buildah run --isolation=chroot "$kctr" -- id -u) || die "buildah run id -u (kserve) failed"
  [ "$kuid" != 0 ] || die "the kserve image runs as root"
  if timeout 60 buildah run --isolation=chroot "$kctr" -- python -c "import torch" 2>/dev/null; then die "torch is in the kserve image"; fi
  # the ServingRuntime's container args must be the image's entry point (what KServe runs);
  # run them with loopback and free ports (a shared CI host may use 8080/8081)
  buildah inspect --type image "$KSERVE_IMAGE" > "$work/kserve-image.json" || die "buildah inspect $KSERVE_IMAGE failed"
  KPORT=$(free_port)
  KGPORT=$(free_port)
  mapfile -t run_args < <("$HOSTPY" - "$work/kserve-image.json" "$KPORT" "$KGPORT" <<'PY'
import json, sys, yaml
config = json.load(open(sys.argv[1]))["Docker"]["config"]
ep = config.get("Entrypoint") or []
image_args = ep + (config.get("Cmd") or [])
rt = yaml.safe_load(open("deploy/manifests/kserve-servingruntime.yaml"))
c = rt["spec"]["containers"][0]
manifest_args = (c.get("command") or ep) + c["args"]
if manifest_args != image_args:
    sys.exit(f"ServingRuntime runs {manifest_args}, the kserve image runs {image_args}")
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
assert manifest_args[manifest_args.index("--port") + 1] == str(ports["http1"]), (manifest_args, ports)
local = {"--host": "127.0.0.1", "--port": sys.argv[2], "--grpc-port": sys.argv[3]}
run = [local.get(manifest_args[i - 1], a) if i else a for i, a in enumerate(manifest_args)]
print("\n".join(run))
PY
  ) || die "deploy/manifests/kserve-servingruntime.yaml does not run what the kserve image runs (above)"
  [ "${#run_args[@]}" -gt 1 ] || die "no args from the ServingRuntime (above)"
  say "kserve image: user $kuid, no torch; running ${run_args[*]}"
  # reference outputs from steport.session inside the image (the library the server uses)
  mkdir -p "$work/ref" && cp "$work/expect.json" "$work/ref/" && chmod -R a+rX "$work/ref"
  timeout 120 buildah run --isolation=chroot -v "$work/models:/mnt/models:ro" -v "$work/ref:/ref:ro" "$kctr" -- \
    python -c "
import json, numpy as np, steport
e = json.load(open('/ref/expect.json')); out = {}
for fam, v in e.items():
    s = steport.session('/mnt/models/%s.onnx' % fam)
    y = s.run(None, {v['input']: np.asarray(v['x'], np.float32)})[0]
    out[fam] = {'dtype': str(y.dtype), 'shape': list(y.shape), 'hex': y.tobytes().hex()}
print(json.dumps(out))" > "$work/session_in_image.json" || die "steport.session inside the kserve image failed"
  setsid buildah run --isolation=chroot -v "$work/models:/mnt/models:ro" "$kctr" -- \
    "${run_args[@]}" > "$work/kserve.log" 2>&1 &
  srv_pid=$!
  wait_ready "$srv_pid" "$work/kserve.log" "$KPORT" 90 "the KServe server"
  timeout 120 "$HOSTPY" - "$KPORT" "$KGPORT" "$work/expect.json" "$work/session_in_image.json" <<'PY' || { cat "$work/kserve.log" >&2; die "KServe request checks failed (above)"; }
import json, sys, urllib.request, urllib.error
import numpy as np
import tritonclient.grpc as tg
import tritonclient.http as tc
from tritonclient.utils import InferenceServerException
port, gport, expect, ref = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
c = tc.InferenceServerClient(url=f"127.0.0.1:{port}")
g = tg.InferenceServerClient(f"127.0.0.1:{gport}")
assert c.is_server_live() and c.is_server_ready() and g.is_server_ready()
for fam, e in expect.items():
    meta = c.get_model_metadata(fam)
    assert meta["inputs"][0]["name"] == e["input"] and meta["inputs"][0]["shape"][0] == -1, meta
    want = ref[fam]
    # the image's session agrees with the host's within float rounding (different compiler)
    w = np.frombuffer(bytes.fromhex(want["hex"]), want["dtype"]).reshape(want["shape"])
    np.testing.assert_allclose(w, np.asarray(e["y"], np.float32), rtol=1e-5, atol=1e-6)
    x = np.asarray(e["x"], np.float32)
    got = {}
    for binary in (False, True):
        i = tc.InferInput(e["input"], list(x.shape), "FP32"); i.set_data_from_numpy(x, binary_data=binary)
        # KServe reads a body without Content-Type: application/json as binary tensors
        r = c.infer(fam, [i], headers=None if binary else {"Content-Type": "application/json"},
                    outputs=[tc.InferRequestedOutput(e["output"], binary_data=binary)])
        got[f"HTTP binary={binary}"] = r.as_numpy(e["output"])
    i = tg.InferInput(e["input"], list(x.shape), "FP32"); i.set_data_from_numpy(x)
    got["gRPC"] = g.infer(fam, [i], client_timeout=30).as_numpy(e["output"])
    for how, y in got.items():
        assert y.dtype == w.dtype and y.shape == w.shape and y.tobytes() == w.tobytes(), (fam, how, y, w)
    print(f"{fam}: metadata; HTTP JSON, HTTP binary and gRPC bit-identical to steport.session in the image", file=sys.stderr)
try:
    g.infer("nope", [i], client_timeout=30)
    raise SystemExit("gRPC: unknown model answered")
except InferenceServerException as err:
    assert "NOT_FOUND" in err.status(), err
x = np.full((1, 5), np.nan, np.float32)
i = tg.InferInput(expect["float"]["input"], [1, 5], "FP32"); i.set_data_from_numpy(x)
try:
    g.infer("float", [i], client_timeout=30)
    raise SystemExit("gRPC: a NaN request was accepted")
except InferenceServerException as err:
    assert "INVALID_ARGUMENT" in err.status(), err
try:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/nope", timeout=10)
    raise SystemExit("unknown model answered 200")
except urllib.error.HTTPError as err:
    assert err.code == 404, err.code
m = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
assert m.status == 200 and b"# TYPE" in m.read(), "no Prometheus exposition on /metrics"
assert c.is_server_ready()
print("bad requests: 404 / NOT_FOUND / INVALID_ARGUMENT; /metrics answers; still ready", file=sys.stderr)
PY
  hc_script=$(buildah inspect --type image --format '{{index .Docker.Config.Healthcheck.Test 3}}' "$KSERVE_IMAGE")
  timeout 60 buildah run --isolation=chroot --env STEPORT_PORT="$KPORT" "$kctr" -- python -c "$hc_script" \
    || die "the kserve image's HEALTHCHECK command failed against the running server"
  spid=$(pgrep -f -n -- "--engine kserve --host 127.0.0.1 --port $KPORT" || true)
  [ -n "$spid" ] || die "cannot find the KServe server process inside the run"
  kill -TERM "$spid"
  for _ in $(seq 1 80); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$srv_pid" 2>/dev/null; then cat "$work/kserve.log" >&2; die "KServe server still running 40s after SIGTERM"; fi
  rc=0; wait "$srv_pid" || rc=$?
  srv_pid=""
  [ "$rc" = 0 ] || { cat "$work/kserve.log" >&2; die "buildah run (kserve) exited $rc after SIGTERM"; }
  say "kserve image: HEALTHCHECK passes; SIGTERM -> exit 0"
else
  say "skipped (STEPORT_SKIP_KSERVE_IMAGE=1)"
fi

phase "11/11 clean up"
say "PASS in $(( $(date +%s) - T_START ))s"
