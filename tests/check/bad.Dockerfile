FROM {busybox} AS deps
ARG VERSION
RUN apt-get update
RUN --mount=type=cache,target=/var/cache/apt apt-get install -y gcc
COPY . .
RUN pip install -r requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip pip install --no-cache-dir -r requirements.txt
RUN npm ci
ADD https://example.com/tool.tgz /opt/
RUN echo $VERSION > /version
from deps as final
