# escape=`
ARG BASE
FROM ${BASE}
ENV A b
COPY $NOPE `
  /x
