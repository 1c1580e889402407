# check=skip=InvalidDefaultArgInFrom;error=true
ARG BASE
FROM ${BASE} AS one
CMD echo hi
FROM ${BASE} AS one
