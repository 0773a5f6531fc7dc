# steport serving image. Multi-stage:
#   builder  compiles ort_ops (C++; CUDA with --build-arg STEPORT_CUDA=ON on a base with nvcc)
#            and builds the steport wheel
#   runtime  Python + onnxruntime + numpy + onnx + grpcio/tritonclient[grpc]/prometheus-client
#            + the server + the .so; no torch, no compiler
#   kserve   runtime + steport[kserve]: KServe's ModelServer with the steport predictor is the
#            entry point (`steport serve /mnt/models --engine kserve`, REST 8080, gRPC 8081),
#            as deploy/manifests/kserve-servingruntime.yaml runs it; still no torch
#   (last)   the runtime stage again, so a build without --target gives the built-in engine
# Offline: Python packages come from wheelhouse/ (deploy/build_wheelhouse.sh, run on the host),
# bind-mounted while pip runs (no layer keeps it), and the bases are local images
# (deploy/make_base_image.sh). Build and test:
#   deploy/build_wheelhouse.sh && deploy/make_base_image.sh
#   buildah bud --isolation=chroot --format docker -t steport-serve .
#   buildah bud --isolation=chroot --format docker --target kserve -t steport-serve-kserve .
#   podman run -p 8000:8000 -v $PWD/models:/models:ro steport-serve
#   podman run -p 8080:8080 -p 8081:8081 -v $PWD/models:/mnt/models:ro steport-serve-kserve
ARG BASE=localhost/steport-base:bookworm
ARG RUNTIME_BASE=localhost/steport-base:bookworm-runtime

FROM ${BASE} AS builder
ARG STEPORT_CUDA=OFF
WORKDIR /src
COPY wheelhouse/ /wheelhouse/
COPY pyproject.toml README.md ./
COPY src/ src/
COPY bench/ bench/
COPY train/ train/
COPY export/ export/
COPY ort_ops/ ort_ops/
COPY deploy/ deploy/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install -q --no-index --find-links /wheelhouse scikit-build-core \
 && STEPORT_CUDA=${STEPORT_CUDA} STEPORT_ORT_INCLUDE_DIR=/wheelhouse/ort-include \
    /opt/build/bin/pip wheel -q --no-index --no-deps --no-build-isolation -w /dist /src \
 && ls -l /dist

FROM ${RUNTIME_BASE} AS runtime
COPY --from=builder /dist/ /dist/
RUN --mount=type=bind,source=wheelhouse,target=/wheelhouse \
    python3 -m venv /opt/steport \
 && /opt/steport/bin/pip install -q --no-index --find-links /wheelhouse /dist/steport-*.whl \
 && rm -rf /dist /root/.cache \
 && /opt/steport/bin/python -c "import steport, steport.deploy, steport.ort_ops as o; print(o.library_path(), o.build_info())" \
 && ! /opt/steport/bin/python -c "import torch" 2>/dev/null \
 && (useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin steport 2>/dev/null \
     || echo "steport:x:10001:10001::/nonexistent:/usr/sbin/nologin" >> /etc/passwd) \
 && mkdir -p /models
ENV PATH=/opt/steport/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1
USER 10001
WORKDIR /tmp
# 8000 HTTP, 8001 gRPC (the v2 GRPCInferenceService)
EXPOSE 8000 8001
# Mount models at /models (no VOLUME: an anonymous volume would hide a bind mount in buildah run)
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('STEPORT_PORT', '8000'), timeout=2).status == 200 else 1)"]
ENTRYPOINT ["steport"]
CMD ["serve", "/models", "--host", "0.0.0.0", "--port", "8000", "--grpc-port", "8001"]

FROM runtime AS kserve
USER root
# the same steport wheel again, now with its kserve extra (kserve==0.21.0 and its deps)
COPY --from=builder /dist/ /dist/
RUN --mount=type=bind,source=wheelhouse,target=/wheelhouse \
    /opt/steport/bin/pip install -q --no-index --find-links /wheelhouse "$(ls /dist/steport-*.whl)[kserve]" \
 && rm -rf /dist /root/.cache \
 && /opt/steport/bin/python -c "import steport.deploy.kserve" \
 && ! /opt/steport/bin/python -c "import torch" 2>/dev/null
USER 10001
# KServe's ports: 8080 REST (and /metrics), 8081 gRPC; KServe mounts the models at /mnt/models
ENV STEPORT_PORT=8080
EXPOSE 8080 8081
CMD ["serve", "/mnt/models", "--engine", "kserve", "--host", "0.0.0.0", "--port", "8080", "--grpc-port", "8081"]

# A build without --target gives the built-in engine (the runtime stage). The LABEL gives the
# stage a step: buildah 1.28 leaves the working container of a step-less final stage behind.
FROM runtime
LABEL org.opencontainers.image.title="steport-serve"
