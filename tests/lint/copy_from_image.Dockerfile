ARG BASE
FROM ${BASE}
COPY --from={busybox} /bin/sh /sh
COPY --from={busybox} /bin/ls /ls
