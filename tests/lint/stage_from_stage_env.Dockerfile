ARG BASE
FROM ${BASE} AS one
SHELL ["/bin/sh", "-c"]
ENV X=1
FROM one AS two
CMD echo $X
ENTRYPOINT echo
WORKDIR rel
