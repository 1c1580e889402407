ARG BASE
FROM ${BASE}
COPY ignored.txt /x
