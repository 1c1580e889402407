ARG BASE
FROM ${BASE} AS first
COPY --from=second /x /x
FROM ${BASE} AS second
RUN true
