ARG BASE
FROM ${BASE}
COPY ignored.txt /x
COPY kept.txt /y
ADD secret/ /s
COPY . /all
