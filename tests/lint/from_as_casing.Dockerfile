ARG BASE
FROM ${BASE} as base
RUN true
from base AS final
run true
