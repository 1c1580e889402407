# check=bogus=1
ARG BASE
FROM ${BASE}
CMD echo hi
