ARG BASE
ARG TAG=Bad:tag
FROM ${BASE}
RUN true
FROM busybox:${TAG} AS two
RUN true
