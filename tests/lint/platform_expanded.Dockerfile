ARG BASE
ARG PLAT=linux/amd64
FROM --platform=$PLAT ${BASE}
RUN true
FROM --platform=${BUILDPLATFORM} ${BASE} AS b
FROM --platform=$NOPE_PLATFORM ${BASE} AS c
