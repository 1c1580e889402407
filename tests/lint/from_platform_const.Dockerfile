ARG BASE
FROM --platform=linux/amd64 ${BASE}
RUN true
FROM --platform=linux/amd64 ${BASE} AS build-amd64
RUN true
