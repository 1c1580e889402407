ARG BASE
from ${BASE}
run true
RUN true
workdir /x
