# check=error=true
ARG BASE
FROM ${BASE} AS one
RUN true
FROM ${BASE} AS one
RUN true
