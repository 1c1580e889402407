ARG BASE
FROM ${BASE} AS context
RUN true
