# check=error=maybe
ARG BASE
FROM ${BASE}
