# check=error=true
ARG BASE
FROM ${BASE}
RUN true
