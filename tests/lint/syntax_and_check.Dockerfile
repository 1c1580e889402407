# syntax=docker/dockerfile:1
# check=skip=InvalidDefaultArgInFrom
ARG BASE
FROM ${BASE}
CMD echo hi
