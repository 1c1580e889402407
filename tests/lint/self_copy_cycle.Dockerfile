ARG BASE
FROM ${BASE}
COPY --from=0 ignored.log /x
