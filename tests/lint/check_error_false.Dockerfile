# check=error=false
ARG BASE
FROM ${BASE} AS Foo
