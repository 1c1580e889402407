ARG BASE
FROM ${BASE} AS parent
ONBUILD COPY $UNDEF_TRIGGER /x
FROM parent AS unused_child
RUN true
FROM parent AS used_child
RUN true
FROM ${BASE}
COPY --from=used_child /x /x
