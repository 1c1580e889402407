ARG BASE
FROM ${BASE}
CMD echo hi
ENTRYPOINT echo hi
FROM ${BASE} AS shelled
SHELL ["/bin/sh", "-c"]
CMD echo hi
