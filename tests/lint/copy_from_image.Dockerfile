ARG BASE
FROM ${BASE}
COPY --from=127.0.0.1:5555/busybox:latest /bin/sh /sh
COPY --from=127.0.0.1:5555/busybox:latest /bin/ls /ls
