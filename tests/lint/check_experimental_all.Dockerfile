# check=experimental=all;skip=InvalidDefaultArgInFrom
# BASE base
ARG BASE
# wrong
FROM ${BASE} AS build
