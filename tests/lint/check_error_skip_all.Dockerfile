# check=skip=all;error=true
ARG BASE
FROM ${BASE} AS one
FROM ${BASE} AS one
