# Forget me: the Gradio app in a container.
#   docker build -t forget-me .
#   docker run --rm --gpus all -p 127.0.0.1:7860:7860 forget-me           # NVIDIA GPU (CUDA)
#   docker run --rm -p 127.0.0.1:7860:7860 forget-me                      # no GPU: the same image runs on the CPU
# Galleries: LFW is downloaded by scikit-learn on first use; offline, mount a scikit-learn data
# folder (holding lfw_home/ or olivetti_py3.pkz):  -v /path/to/sklearn_data:/data/sklearn:ro
# Build with --build-arg BAKE_LFW=1 (needs internet at build time) to bake LFW into the image.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ARG BAKE_LFW=0
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    SCIKIT_LEARN_DATA=/data/sklearn \
    UNLEARN_CACHE=/data/cache \
    GRADIO_TEMP_DIR=/tmp/gradio \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential libgl1 libglib2.0-0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv $VIRTUAL_ENV

# Dependencies first (cached layer). PyPI's Linux torch wheels carry their own CUDA libraries and
# fall back to the CPU when no GPU is visible, so one image serves both.
COPY requirements.txt /app/requirements.txt
RUN pip install --upgrade pip && pip install -r /app/requirements.txt

# A non-root user (uid 1000, as on Hugging Face Spaces) owning the writable folders only.
RUN (id -u 1000 >/dev/null 2>&1 && userdel -r "$(id -nu 1000)" || true) \
 && useradd -m -u 1000 app && mkdir -p /data/sklearn /data/cache /tmp/gradio && chown -R app /data /tmp/gradio
WORKDIR /app
COPY --chown=app unlearn_core /app/unlearn_core
COPY --chown=app checkpoints /app/checkpoints
COPY --chown=app assets /app/assets
COPY --chown=app app.py /app/app.py
USER app

# Check the baked-in face-embedder checkpoint and the MTCNN weights load offline; optionally fetch LFW.
RUN python -c "from unlearn_core.backbones import create_backbone; from unlearn_core.faces import FaceDetector; create_backbone('dlib_resnet'); FaceDetector('cpu')" \
 && if [ "$BAKE_LFW" = "1" ]; then python -c "from unlearn_core.data import load_lfw; print(len(load_lfw()), 'LFW images')"; fi

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ['GRADIO_SERVER_PORT'], timeout=4)"
CMD ["python", "app.py"]
