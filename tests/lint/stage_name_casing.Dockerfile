ARG BASE
FROM ${BASE} AS Builder
RUN true
