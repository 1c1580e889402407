# check=skip=all
ARG BASE
FROM ${BASE} AS Foo
MAINTAINER me
CMD echo hi
