# The one Kefu image: `kefu api`, `kefu worker`, `kefu media` and `kefu db upgrade` all run it
# with a different command (docs/operations.md, infra/terraform/).
FROM python:3.11-slim-bookworm

# espeak-ng speaks IVR and queue-announcement prompts written as text (kefu.webrtc.tts).
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY platform platform
COPY tenants tenants
COPY billing billing
COPY webrtc webrtc
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /var/lib/kefu --create-home kefu \
    && rm -rf /src

USER kefu
WORKDIR /var/lib/kefu
ENV KEFU_MODE=production \
    KEFU_HOST=0.0.0.0 \
    KEFU_PORT=8000 \
    KEFU_DATA_DIR=/var/lib/kefu
EXPOSE 8000
ENTRYPOINT ["kefu"]
CMD ["api"]
