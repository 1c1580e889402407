ARG BASE
FROM ${BASE} AS deps
RUN true
FROM ${BASE}
RUN --mount=from=deps,target=/d,source=/$SRCDIR true
RUN --mount=type=secret,id=$SECRET_ID true
